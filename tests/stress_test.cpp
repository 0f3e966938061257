// The stress test the design asks for: many threads for a bounded time,
// mixed random shapes, every device under test plus "auto", host spans,
// device tensors and streams, engines made and destroyed, tiny plan and
// program caches that force eviction; every output checked against the
// float64 reference. SPARKLE_STRESS_SECONDS and SPARKLE_STRESS_THREADS
// bound it (CI shortens it under the sanitizers).
#include <dlfcn.h>
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

#include "common/test_data.hpp"

using namespace sparkle;

namespace {

constexpr double kTolerance = 1e-5;

double env_number(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtod(v, nullptr) : fallback;
}

// A small pool of shapes (so caches see hits) and, now and then, a fresh
// random one (so they evict).
Conv2dDesc pick_desc(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> coin(0, 9);
  if (coin(rng) < 8) {
    static const std::vector<Conv2dDesc> pool = [] {
      std::vector<Conv2dDesc> out;
      for (const auto& d : test::conformance_descriptors(12))
        if (d.flops() < 2e6 && d.input_elements() < 20000) out.push_back(d);
      return out;
    }();
    std::uniform_int_distribution<size_t> at(0, pool.size() - 1);
    return pool[at(rng)];
  }
  std::uniform_int_distribution<int64_t> small(1, 9), chans(1, 12), pad(0, 2), st(1, 2);
  Conv2dDesc d;
  d.n = small(rng) % 3 + 1, d.c = chans(rng), d.h = small(rng) + 4, d.w = small(rng) + 3;
  d.k = chans(rng), d.r = small(rng) % 3 + 1, d.s = small(rng) % 3 + 1;
  d.stride_h = st(rng), d.stride_w = st(rng);
  d.pad_top = pad(rng), d.pad_left = pad(rng), d.pad_bottom = pad(rng), d.pad_right = pad(rng);
  d.has_bias = coin(rng) < 5, d.relu = coin(rng) < 3;
  return d;
}

struct Tally {
  std::atomic<int64_t> checked{0}, failed{0}, errors{0};
  std::mutex mutex;
  std::string first_failure;
  std::set<std::string> gl_shapes;  // distinct shapes the OpenGL device planned
  void fail(const std::string& what) {
    ++failed;
    std::lock_guard lock(mutex);
    if (first_failure.empty()) first_failure = what;
  }
};

void check(Tally& t, const Conv2dDesc& d, const std::vector<float>& x, const std::vector<float>& w,
           const std::vector<float>& b, const std::vector<float>& y, const std::string& what) {
  const auto cmp = test::compare_with_reference(d, x, w, b, y);
  ++t.checked;
  if (cmp.non_finite != 0 || cmp.max_rel_error > kTolerance)
    t.fail(what + " " + d.to_string() + ": rel error " + std::to_string(cmp.max_rel_error) +
           ", non-finite " + std::to_string(cmp.non_finite));
}

// One random piece of work on `engine`.
void one_round(Engine& engine, const std::vector<std::string>& devices, std::mt19937_64& rng,
               Tally& t) {
  std::uniform_int_distribution<size_t> at(0, devices.size());  // == size: auto
  const size_t pick = at(rng);
  const std::string device = pick < devices.size() ? devices[pick] : "auto";
  const Conv2dDesc d = pick_desc(rng);
  const auto x = test::random_tensor(d.input_elements(), rng);
  const auto w = test::random_tensor(d.weight_elements(), rng);
  const auto b = test::random_tensor(d.bias_elements(), rng);
  RunOptions opts;
  opts.device = device;
  std::uniform_int_distribution<int> kind(0, 3);
  const int k = device == "auto" ? 0 : kind(rng);
  if (k == 0) {  // host spans, through submit
    auto y = test::poisoned(d.output_elements());
    const RunResult r = engine.submit(d, x, w, b, y, opts).wait();
    if (r.device.rfind("opengl", 0) == 0) {
      std::lock_guard lock(t.mutex);
      t.gl_shapes.insert(d.to_string());
    }
    check(t, d, x, w, b, y, "host spans on " + r.device);
  } else if (k == 1) {  // device tensors, a write-after-read in the middle
    Tensor tx = engine.tensor({d.n, d.c, d.h, d.w}, x, device);
    Tensor tw = engine.tensor({d.weight_elements()}, w, device);
    Tensor tb = d.has_bias ? engine.tensor({d.k}, b, device) : Tensor();
    Tensor ty = engine.tensor({d.n, d.k, d.out_h(), d.out_w()}, device);
    Future f = engine.submit(d, tx, tw, tb, ty, opts);
    const auto x2 = test::random_tensor(d.input_elements(), rng);
    tx.upload(x2);  // waits for the conv reading tx
    f.wait();
    std::vector<float> y(static_cast<size_t>(ty.elements()));
    ty.download(y);
    check(t, d, x, w, b, y, "tensors on " + device);
  } else if (k == 2) {  // a short stream
    StreamOptions so;
    so.run = opts;
    so.slots = 2;
    so.transfer = (rng() & 1) ? StreamTransfer::direct : StreamTransfer::copy;
    // The batches' memory outlives the stream (declared first): a stream
    // destroyed with batches in flight waits for them in its destructor.
    std::vector<std::vector<float>> xs, ys;
    std::vector<Future> fs;
    Stream s = engine.stream(d, w, b, so);
    for (int i = 0; i < 4; ++i) {
      xs.push_back(test::random_tensor(d.input_elements(), rng));
      ys.push_back(test::poisoned(d.output_elements()));
    }
    for (int i = 0; i < 4; ++i) fs.push_back(s.submit(xs[i], ys[i]));
    if (rng() & 1) return;  // destroyed with batches in flight: ~Stream waits
    for (int i = 0; i < 4; ++i) {
      fs[i].wait();
      check(t, d, xs[i], w, b, ys[i], "stream on " + device);
    }
  } else {  // a bad call in the mix: a clear error, nothing else breaks
    std::vector<float> short_y(static_cast<size_t>(d.output_elements()) + 1);
    try {
      engine.conv2d(d, x, w, b, short_y, opts);
      t.fail("a y of the wrong size was accepted");
    } catch (const Error&) {
      ++t.errors;
    }
  }
}

}  // namespace

TEST_CASE("many threads, every device, tiny caches: every output matches the reference") {
  const double seconds = env_number("SPARKLE_STRESS_SECONDS", 10);
  const int threads = static_cast<int>(env_number("SPARKLE_STRESS_THREADS", 16));
  const uint64_t seed = test::fresh_seed();
  MESSAGE("seed " << seed << ", " << threads << " threads, " << seconds << " s");
  const CacheStats before = cache_stats();
  Tally tally;
  std::vector<std::string> devices;
  {
    Engine probe;
    devices = test::devices_under_test(probe);
  }
  REQUIRE(!devices.empty());
  Engine shared;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(seconds * 1e3));
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&, i] {
      std::mt19937_64 rng(seed + static_cast<uint64_t>(i) * 7919);
      int round = 0;
      while (std::chrono::steady_clock::now() < deadline) {
        try {
          if (++round % 8 == 0) {
            // Engines come and go while others work.
            Engine own;
            one_round(own, devices, rng, tally);
          } else {
            one_round(shared, devices, rng, tally);
          }
        } catch (const std::exception& e) {
          tally.fail(std::string("unexpected exception: ") + e.what());
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  MESSAGE(tally.checked.load() << " outputs checked, " << tally.errors.load()
                               << " bad calls refused, " << tally.gl_shapes.size()
                               << " distinct shapes on opengl");
  CHECK(tally.failed == 0);
  CHECK(tally.first_failure == "");
  CHECK(tally.checked > threads);
  // Every program request is counted once, as a memory hit, a disk hit or a
  // compile; each distinct shape planned on the GL device asked for at
  // least one program.
  const CacheStats after = cache_stats();
  const int64_t requests = (after.memory_hits - before.memory_hits) +
                           (after.disk_hits - before.disk_hits) +
                           (after.compiles - before.compiles);
  CHECK(after.memory_hits >= before.memory_hits);
  CHECK(after.disk_hits >= before.disk_hits);
  CHECK(after.compiles >= before.compiles);
  CHECK(requests >= static_cast<int64_t>(tally.gl_shapes.size()));
}

TEST_CASE("the plan cache keeps at most its capacity and releases the plans it evicts") {
  // SPARKLE_PLAN_CACHE_CAPACITY is 4 in this test's environment.
  const std::string path = std::string(SPARKLE_SIM_PLUGIN_DIR) + "/libsparkle-sim.so";
  Engine engine;
  bool have_sim = false;
  for (const auto& d : engine.devices()) have_sim = have_sim || d.backend == "sim";
  if (!have_sim) {
    MESSAGE("no simulated device loaded");
    return;
  }
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  REQUIRE(lib != nullptr);
  auto live = reinterpret_cast<int64_t (*)()>(dlsym(lib, "sparkle_sim_live_plans"));
  REQUIRE(reinterpret_cast<void*>(live) != nullptr);
  const int64_t at_start = live();
  std::mt19937_64 rng(test::fresh_seed());
  RunOptions on;
  on.device = "sim:0";
  for (int i = 0; i < 20; ++i) {
    Conv2dDesc d;
    d.c = 2, d.h = 5 + i, d.w = 6, d.k = 3, d.r = d.s = 3;  // 20 distinct shapes
    const auto x = test::random_tensor(d.input_elements(), rng);
    const auto w = test::random_tensor(d.weight_elements(), rng);
    auto y = test::poisoned(d.output_elements());
    engine.conv2d(d, x, w, {}, y, on);
    CHECK(test::compare_with_reference(d, x, w, {}, y).max_rel_error <= kTolerance);
    CHECK(live() - at_start <= 4);
  }
  dlclose(lib);
}
