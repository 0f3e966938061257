// The auto-selector against simulated devices with known speeds, and on the
// real CPU + OpenGL (llvmpipe) devices of this machine.
#include <dlfcn.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_data.hpp"

using namespace sparkle;

namespace {

// A fresh cache folder, so that no learned profile leaks between cases.
std::string fresh_cache_dir() {
  static int counter = 0;
  auto dir = std::filesystem::temp_directory_path() /
             ("sparkle-select-" + std::to_string(getpid()) + "-" + std::to_string(++counter));
  std::filesystem::remove_all(dir);
  setenv("SPARKLE_CACHE_DIR", dir.c_str(), 1);
  return dir.string();
}

// Simulated rates are far below the real work the simulated plugin does, so
// that modelled device time, not the wall time of its reference loops, is
// what the selector sees.
struct SimEngine {
  explicit SimEngine(const std::string& devices) {
    setenv("SPARKLE_SIM_DEVICES", devices.c_str(), 1);
    EngineOptions o;
    o.plugin_paths = {SPARKLE_SIM_PLUGIN_DIR};
    o.use_default_paths = false;
    engine = std::make_unique<Engine>(o);
  }
  // Changes a simulated device's rate while the engine runs.
  void set_gflops(size_t index, double gflops) {
    const std::string path = std::string(SPARKLE_SIM_PLUGIN_DIR) + "/libsparkle-sim.so";
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
    REQUIRE(lib != nullptr);
    auto fn = reinterpret_cast<void (*)(size_t, double)>(dlsym(lib, "sparkle_sim_set_gflops"));
    REQUIRE(reinterpret_cast<void*>(fn) != nullptr);
    fn(index, gflops);
    dlclose(lib);
  }
  RunResult run(const Conv2dDesc& d) {
    std::vector<float> x(d.input_elements(), 0.5f), w(d.weight_elements(), 0.25f);
    std::vector<float> b(d.bias_elements(), 0.1f), y(d.output_elements());
    return engine->conv2d(d, x, w, b, y);
  }
  std::unique_ptr<Engine> engine;
};

Conv2dDesc conv3x3(int64_t c = 16, int64_t hw = 12, int64_t n = 1) {
  Conv2dDesc d;
  d.n = n, d.c = c, d.h = d.w = hw, d.k = c, d.r = d.s = 3;
  d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 1;
  return d;
}

Conv2dDesc conv1x1(int64_t c = 32, int64_t hw = 10) {
  Conv2dDesc d;
  d.c = c, d.h = d.w = hw, d.k = c;
  return d;
}

Conv2dDesc depthwise(int64_t c = 16) {
  Conv2dDesc d = conv3x3(c);
  d.groups = c;
  return d;
}

}  // namespace

TEST_CASE("selector converges to the fastest device") {
  fresh_cache_dir();
  SimEngine sim("slow:0.002:1;fast:0.01:1");
  int fast_after_warmup = 0;
  for (int i = 0; i < 60; ++i) {
    const auto r = sim.run(conv3x3());
    if (i >= 10 && r.device == "sim:1") ++fast_after_warmup;
  }
  CHECK(fast_after_warmup >= 48);  // exploration may revisit the slow one (<= 4%)
}

TEST_CASE("selector corrects a misleading prior from measurements") {
  fresh_cache_dir();
  // 'tricky' looks 3x faster in the probes but is 10x slower on strided ops.
  SimEngine sim("steady:0.01:1;tricky:0.03:1:strided_slow=10");
  Conv2dDesc strided = conv3x3(16, 24);
  strided.stride_h = strided.stride_w = 2;
  std::vector<std::string> chosen;
  for (int i = 0; i < 40; ++i) chosen.push_back(sim.run(strided).device);
  CHECK(chosen.front() == "sim:1");  // the prior's pick
  int steady = 0;
  for (int i = 10; i < 40; ++i) steady += chosen[i] == "sim:0";
  CHECK(steady >= 28);
}

TEST_CASE("selector re-learns when device speeds change") {
  fresh_cache_dir();
  SimEngine sim("a:0.01:1;b:0.0025:1");
  for (int i = 0; i < 30; ++i) sim.run(conv3x3());
  CHECK(sim.run(conv3x3()).device == "sim:0");
  sim.set_gflops(0, 0.0005);  // a becomes 5x slower than b
  int switched_at = -1;
  for (int i = 0; i < 20 && switched_at < 0; ++i)
    if (sim.run(conv3x3()).device == "sim:1") switched_at = i;
  CHECK(switched_at >= 0);
  CHECK(switched_at <= 5);
  int on_b = 0;
  for (int i = 0; i < 100; ++i) on_b += sim.run(conv3x3()).device == "sim:1";
  CHECK(on_b >= 95);
  sim.set_gflops(0, 0.01);  // a recovers; only exploration can notice
  // a is re-measured once 25 x (its estimate / the best) calls have passed:
  // about 125 here.
  int back_at = -1;
  for (int i = 0; i < 300 && back_at < 0; ++i)
    if (sim.run(conv3x3()).device == "sim:0") back_at = i;
  CHECK(back_at >= 0);
  CHECK(back_at <= 200);
  MESSAGE("switched after " << switched_at << " calls, back after " << back_at);
  int stays = 0;
  for (int i = 0; i < 20; ++i) stays += sim.run(conv3x3()).device == "sim:0";
  CHECK(stays >= 19);
}

TEST_CASE("selector regret over 200 calls is within 10% of the oracle") {
  fresh_cache_dir();
  // The fastest device depends on the op: a has the lowest latency, c the
  // highest rate except on strided ops, where the probes cannot warn of its
  // 20x slowdown, so the selector must learn it.
  SimEngine sim("a:0.005:2;b:0.02:50;c:0.04:5:strided_slow=20");
  Conv2dDesc strided = conv3x3(16, 20);
  strided.stride_h = strided.stride_w = 2;
  const std::vector<Conv2dDesc> ops = {conv3x3(8, 6), conv3x3(32, 28), conv1x1(64, 14),
                                       conv1x1(8, 4), depthwise(32),   strided};
  // The oracle's time of each op: run it on every device once, on a
  // separate engine so that the selector under test learns nothing from it.
  std::vector<double> oracle;
  {
    SimEngine probe("a:0.005:2;b:0.02:50;c:0.04:5:strided_slow=20");
    for (const auto& d : ops) {
      double best = 1e30;
      for (const char* dev : {"sim:0", "sim:1", "sim:2"}) {
        std::vector<float> x(d.input_elements()), w(d.weight_elements()), y(d.output_elements());
        RunOptions o;
        o.device = dev;
        best = std::min(best, probe.engine->conv2d(d, x, w, {}, y, o).device_ms);
      }
      oracle.push_back(best);
    }
  }
  double ours = 0, best = 0;
  for (int i = 0; i < 200; ++i) {
    const auto r = sim.run(ops[i % ops.size()]);
    ours += r.device_ms;
    best += oracle[i % ops.size()];
  }
  const double regret = ours / best - 1;
  MESSAGE("total " << ours << " ms vs oracle " << best << " ms: regret " << regret * 100 << "%");
  CHECK(regret <= 0.10);
}

TEST_CASE("selector never picks a device that does not support the op") {
  fresh_cache_dir();
  SimEngine sim("fastest:0.1:0.1:nodepthwise;slow:0.001:1");
  for (int i = 0; i < 200; ++i) {
    CHECK(sim.run(depthwise()).device == "sim:1");
    if (i % 10 == 0) CHECK(sim.run(conv3x3()).device == "sim:0");
  }
}

TEST_CASE("selector splits a batch only when splitting is predicted faster") {
  fresh_cache_dir();
  {
    // Two equal devices with negligible latency: halves run in parallel.
    SimEngine sim("x:0.01:0.1;y:0.01:0.1");
    const auto d = conv3x3(16, 12, 8);
    std::mt19937_64 rng(test::fresh_seed());
    const auto x = test::random_tensor(d.input_elements(), rng);
    const auto w = test::random_tensor(d.weight_elements(), rng);
    auto split_y = test::poisoned(d.output_elements());
    RunOptions opts;
    opts.explain = true;
    const auto r = sim.engine->conv2d(d, x, w, {}, split_y, opts);
    CHECK(r.device == "sim:0+sim:1");
    CHECK(r.explanation.front().find("split: sim:0 x4 sim:1 x4") == 0);
    auto single_y = test::poisoned(d.output_elements());
    RunOptions one;
    one.device = "sim:0";
    sim.engine->conv2d(d, x, w, {}, single_y, one);
    CHECK(std::memcmp(split_y.data(), single_y.data(), split_y.size() * sizeof(float)) == 0);
    CHECK(sim.run(conv3x3(16, 12, 1)).device.find('+') == std::string::npos);  // n = 1
  }
  fresh_cache_dir();
  {
    // Latency dominates a small op: two calls cost more than one.
    SimEngine sim("x:0.01:2000;y:0.01:2000");
    for (int i = 0; i < 10; ++i)
      CHECK(sim.run(conv3x3(4, 6, 4)).device.find('+') == std::string::npos);
  }
}

TEST_CASE("a corrupt selector profile is ignored and rebuilt") {
  // Truncated, the wrong format, and a value that would steer the selector
  // (a negative rate): each is ignored and the file rewritten whole.
  for (const std::string& bad :
       {std::string("{\"format\":\"sparkle-selector-profile 3\",\"models\":{\"sim-a\":{"),
        std::string("{\"format\":\"sparkle-selector-profile 2\",\"models\":{},"
                    "\"transfers\":{},\"learned\":[]}"),
        std::string("{\"format\":\"sparkle-selector-profile 3\",\"models\":{\"sim-a\":"
                    "{\"latency_ms\":0.1,\"gflops\":-5,\"gbps\":1,\"overhead_ms\":0}},"
                    "\"transfers\":{},\"learned\":[]}")}) {
    CAPTURE(bad);
    const auto dir = fresh_cache_dir();
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/selector-profile-v3.json") << bad;
    {
      SimEngine sim("a:0.01:1");
      CHECK(sim.run(conv3x3()).device == "sim:0");
    }
    std::ifstream in(dir + "/selector-profile-v3.json");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto j = nlohmann::json::parse(text);  // throws if not whole JSON
    CHECK(j.at("format") == "sparkle-selector-profile 3");
    CHECK(j.at("models").contains("sim-a"));
    CHECK(j.at("models").at("sim-a").at("gflops").get<double>() > 0);
  }
}

// Under a sanitizer the CPU plugin is instrumented and Mesa's llvmpipe is
// not, so which device is faster there says nothing about the selector:
// llvmpipe's Winograd kernels overtook the instrumented CPU on 3x3 layers.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

TEST_CASE("after warm-up, ResNet-50 layers on this machine go to the CPU" *
          doctest::skip(kSanitized)) {
  fresh_cache_dir();
  unsetenv("SPARKLE_DEVICE");
  Engine engine;  // SPARKLE_PLUGIN_PATH: the real cpu and opengl plugins
  const auto layers = read_shapes_file(SPARKLE_SOURCE_ROOT "/bench/resnet50_v1_5.shapes", 1);
  std::mt19937_64 rng(1);
  for (const auto& l : layers) {
    const auto x = test::random_tensor(l.desc.input_elements(), rng);
    const auto w = test::random_tensor(l.desc.weight_elements(), rng);
    std::vector<float> y(l.desc.output_elements());
    for (int warm = 0; warm < 2; ++warm) engine.conv2d(l.desc, x, w, {}, y);
    CAPTURE(l.name);
    CHECK(engine.conv2d(l.desc, x, w, {}, y).device == "cpu:0");
  }
}
