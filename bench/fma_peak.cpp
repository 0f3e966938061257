// FMA-throughput micro-benchmark. Each thread runs chains of independent
// multiply-adds (more chains than FMA latency x FMA ports), so the figure
// is the core's issue rate, not its latency.
#include "fma_peak.hpp"

#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define SPARKLE_BENCH_X86 1
#else
#define SPARKLE_BENCH_X86 0
#endif

namespace sparkle::bench {
namespace {

std::atomic<float> sink{0};

#if SPARKLE_BENCH_X86
// 12 chains of 8 lanes: 4-cycle latency x 2 ports needs >= 8.
__attribute__((target("avx2,fma"))) double fma_avx2(int64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, c);
  }
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  sink.store(out[0], std::memory_order_relaxed);
  return static_cast<double>(iters) * 12 * 8 * 2;
}

// 24 chains of 16 lanes.
__attribute__((target("avx512f"))) double fma_avx512(int64_t iters) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, c);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 24; ++i) s = _mm512_add_ps(s, acc[i]);
  float out[16];
  _mm512_storeu_ps(out, s);  // (_mm512_reduce_add_ps trips GCC 12's -Wuninitialized)
  sink.store(out[0], std::memory_order_relaxed);
  return static_cast<double>(iters) * 24 * 16 * 2;
}
#endif

// What the portable kernels can reach: 4-lane vectors, multiply then add.
double fma_portable(int64_t iters) {
  typedef float v4 __attribute__((vector_size(16)));
  v4 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = v4{} + static_cast<float>(i);
  const v4 m = v4{} + 0.999999f, c = v4{} + 1e-6f;
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = acc[i] * m + c;
  }
  v4 s = acc[0];
  for (int i = 1; i < 12; ++i) s += acc[i];
  sink.store(s[0], std::memory_order_relaxed);
  return static_cast<double>(iters) * 12 * 4 * 2;
}

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// Runs fn on `threads` threads at once; returns total GFLOPS (per second of
// wall time, or of process CPU time divided by the threads).
double run_threads(double (*fn)(int64_t), int threads, double seconds, bool cpu_time) {
  // Calibrate one thread's iteration count for the wanted duration.
  int64_t iters = 1 << 16;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    fn(iters);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0.02) {
      iters = static_cast<int64_t>(static_cast<double>(iters) * seconds / s);
      break;
    }
    iters *= 4;
  }
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<double> flops(static_cast<size_t>(threads));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      flops[static_cast<size_t>(t)] = fn(iters);
    });
  while (ready.load() != threads) std::this_thread::yield();
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = process_cpu_seconds();
  go.store(true);
  for (auto& th : pool) th.join();
  const double s =
      cpu_time ? (process_cpu_seconds() - c0) / threads
               : std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double total = 0;
  for (double f : flops) total += f;
  return total / s * 1e-9;
}

}  // namespace

std::vector<PeakResult> measure_fma_peaks(int threads, double seconds_each, bool cpu_time) {
  std::vector<PeakResult> out;
#if SPARKLE_BENCH_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f"))
    out.push_back({"avx512", threads, run_threads(&fma_avx512, threads, seconds_each, cpu_time)});
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    out.push_back({"avx2", threads, run_threads(&fma_avx2, threads, seconds_each, cpu_time)});
#endif
  out.push_back({"portable", threads, run_threads(&fma_portable, threads, seconds_each, cpu_time)});
  return out;
}

}  // namespace sparkle::bench
