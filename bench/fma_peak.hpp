// Measured FP32 peak: FMA throughput with many independent accumulators,
// one ISA at a time, on every thread.
#pragma once

#include <string>
#include <vector>

namespace sparkle::bench {

struct PeakResult {
  std::string isa;  // "avx512", "avx2", "portable"
  int threads = 0;
  double gflops = 0;
};

// Every ISA this CPU supports, best first. Runs for about seconds_each.
// cpu_time: per second of process CPU time (with one thread on a shared
// machine, the time it actually ran) instead of wall time.
std::vector<PeakResult> measure_fma_peaks(int threads, double seconds_each = 0.3,
                                          bool cpu_time = false);

}  // namespace sparkle::bench
