// The OpenGL program cache through the engine: 16 threads running 8 distinct
// shapes on opengl:0 compile exactly 8 programs (single flight per context),
// and a second engine (fresh GL contexts, same disk cache) compiles none.
// Runs on a private SPARKLE_CACHE_DIR; exits 77 where no OpenGL device exists.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <atomic>
#include <common/test_data.hpp>
#include <cstdio>
#include <cstdlib>
#include <sparkle/cache.hpp>
#include <sparkle/sparkle.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace sparkle;

// Before the first engine and the first cache call: both read it once.
void private_cache_dir() {
  static const bool done = [] {
    char tmpl[] = "/tmp/sparkle-gl-engine-cache-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    setenv("SPARKLE_CACHE_DIR", tmpl, 1);
    // Mesa offers program binaries only with its shader cache on.
    unsetenv("MESA_SHADER_CACHE_DISABLE");
    unsetenv("SPARKLE_CACHE_DISABLE");
    setenv("MESA_SHADER_CACHE_DIR", (std::string(tmpl) + "/mesa").c_str(), 1);
    // One program per shape, also on GPUs that would pick split-K, and on
    // machines whose core count makes Winograd (four passes) the first guess.
    setenv("SPARKLE_GL_SPLIT_K", "1", 1);
    setenv("SPARKLE_GL_KERNEL", "tiled", 1);
    return true;
  }();
  (void)done;
}

bool has_opengl(const Engine& engine) {
  for (const auto& d : engine.devices())
    if (d.name == "opengl:0") return true;
  return false;
}

std::vector<Conv2dDesc> eight_shapes() {
  std::vector<Conv2dDesc> out;
  for (int i = 0; i < 8; ++i) {
    Conv2dDesc d;
    d.n = 1, d.c = 4 + i, d.h = d.w = 9 + i % 3, d.k = 16 + 8 * (i % 2), d.r = d.s = 3;
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 1;
    d.has_bias = i % 2 == 0;
    out.push_back(d);
  }
  return out;
}

// 16 threads, thread t runs shape t % 8 twice; returns failed checks.
int hammer(Engine& engine, const std::vector<Conv2dDesc>& shapes, uint64_t seed) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      const Conv2dDesc& d = shapes[static_cast<size_t>(t) % shapes.size()];
      std::mt19937_64 rng(seed + static_cast<uint64_t>(t));
      const auto x = test::random_tensor(d.input_elements(), rng);
      const auto w = test::random_tensor(d.weight_elements(), rng);
      const auto b = test::random_tensor(d.bias_elements(), rng);
      std::vector<double> want(static_cast<size_t>(d.output_elements())), mag(want.size());
      reference_conv2d(d, x.data(), w.data(), d.has_bias ? b.data() : nullptr, want.data(),
                       mag.data());
      RunOptions opts;
      opts.device = "opengl:0";
      for (int round = 0; round < 2; ++round) {
        auto y = test::poisoned(d.output_elements());
        try {
          engine.conv2d(d, x, w, b, y, opts);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "thread %d: %s\n", t, e.what());
          ++failures;
          continue;
        }
        const Comparison c = compare(y.data(), want.data(), mag.data(), d.output_elements());
        if (c.non_finite != 0 || c.max_rel_error > 1e-5) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  return failures.load();
}

TEST_CASE("16 threads, 8 shapes: 8 compiles, then 8 disk loads in a fresh engine") {
  private_cache_dir();
  const auto shapes = eight_shapes();
  const uint64_t seed = test::fresh_seed();
  INFO("SPARKLE_TEST_SEED=" << seed);
  const CacheStats before = cache_stats();
  {
    Engine engine;
    if (!has_opengl(engine)) {
      std::printf("SKIP: no OpenGL device\n");
      std::exit(77);
    }
    CHECK(hammer(engine, shapes, seed) == 0);
  }
  const CacheStats mid = cache_stats();
  CHECK(mid.compiles - before.compiles == 8);
  CHECK(mid.disk_hits - before.disk_hits == 0);
  const bool binaries = mid.entries > 0;  // a driver without binary formats stores none
  if (binaries) CHECK(mid.entries == 8);
  {
    Engine engine;
    CHECK(hammer(engine, shapes, seed + 100) == 0);
  }
  const CacheStats after = cache_stats();
  if (binaries) {
    CHECK(after.compiles - mid.compiles == 0);
    CHECK(after.disk_hits - mid.disk_hits == 8);
  } else {
    MESSAGE("the driver offers no program binaries: the disk level is off");
    CHECK(after.compiles - mid.compiles == 8);
  }
  // Every call past the first of each shape in an engine either found the
  // engine's plan or raced for it; a raced plan is a memory hit, never a
  // compile.
  CHECK(after.compiles + after.disk_hits - before.compiles - before.disk_hits == 16);
  cache_clear();
}

}  // namespace
