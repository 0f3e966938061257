// The fixed cost of one parallel region, TBB's parallel_for against OpenMP's
// parallel for (what oneDNN uses), on this machine's threads: regions of 64
// chunks of 0, 2 or 10 us of work, back to back or with a serial gap, as a
// batch-1 layer's loops are (docs/CPU.md, "What is open"). Not a test.
//   usage: sparkle-bench-regions
#include <omp.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>
static volatile float sink;
static void work(int us) {
  float x = 1.0f;
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() <
         us)
    for (int i = 0; i < 100; ++i) x = x * 1.0000001f + 1e-7f;
  sink = x;
}
int main() {
  const int chunks = 64, regions = 2000;
  for (int us : {0, 2, 10}) {
    for (int gap_us : {0, 50}) {
      std::vector<double> t_tbb, t_omp;
      for (int round = 0; round < 3; ++round) {
        auto t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < regions; ++r) {
          tbb::parallel_for(0, chunks, [&](int) { work(us); });
          if (gap_us) work(gap_us);
        }
        t_tbb.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count() /
            regions);
        t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < regions; ++r) {
#pragma omp parallel for schedule(static)
          for (int c = 0; c < chunks; ++c) work(us);
          if (gap_us) work(gap_us);
        }
        t_omp.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count() /
            regions);
      }
      std::sort(t_tbb.begin(), t_tbb.end());
      std::sort(t_omp.begin(), t_omp.end());
      const double ideal =
          static_cast<double>(chunks) * us / tbb::this_task_arena::max_concurrency() + gap_us;
      std::printf(
          "work %2d us x %d chunks, serial gap %2d us: per region TBB %.1f us, OpenMP %.1f us "
          "(ideal %.1f; %d TBB threads, %d OpenMP)\n",
          us, chunks, gap_us, t_tbb[1], t_omp[1], ideal, tbb::this_task_arena::max_concurrency(),
          omp_get_max_threads());
    }
  }
}
