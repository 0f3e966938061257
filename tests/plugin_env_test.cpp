// A backend's environment variables are checked when the plugin starts: a
// bad value stops the Engine with one error naming the variable (the rule
// of the core's variables), and fixing the variable lets the next Engine
// load the plugin. A program of its own: plugins are shared per process and
// initialised once, so this must be the process's first Engine.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <string>

#include "common/test_data.hpp"

using namespace sparkle;

namespace {

EngineOptions cpu_only() {
  EngineOptions options;
  options.plugin_paths = {SPARKLE_CPU_PLUGIN_DIR};
  options.use_default_paths = false;
  return options;
}

}  // namespace

TEST_CASE("a bad backend variable stops the Engine, naming it; fixed, the plugin loads") {
  setenv("SPARKLE_CPU_KERNEL", "fastest", 1);
  try {
    Engine engine(cpu_only());
    FAIL("the Engine started with SPARKLE_CPU_KERNEL=fastest");
  } catch (const Error& e) {
    CAPTURE(e.what());
    CHECK(e.code() == ErrorCode::invalid_argument);
    CHECK(std::string(e.what()).find("SPARKLE_CPU_KERNEL=fastest") != std::string::npos);
    CHECK(std::string(e.what()).find("cpu backend") != std::string::npos);
  }
  unsetenv("SPARKLE_CPU_KERNEL");
  Engine engine(cpu_only());
  bool cpu = false;
  for (const auto& d : engine.devices()) cpu = cpu || d.backend == "cpu";
  CHECK(cpu);
  // The plugin is loaded now; a value set later is still refused where it
  // is read (check_supported), not ignored.
  setenv("SPARKLE_CPU_KERNEL", "fastest", 1);
  Conv2dDesc d;
  d.n = 1, d.c = 2, d.h = 4, d.w = 4, d.k = 2, d.r = 1, d.s = 1;
  std::vector<float> x(static_cast<size_t>(d.input_elements()), 1.0f);
  std::vector<float> w(static_cast<size_t>(d.weight_elements()), 1.0f);
  std::vector<float> y(static_cast<size_t>(d.output_elements()));
  RunOptions opts;
  opts.device = "cpu";
  CHECK_THROWS_WITH_AS(engine.conv2d(d, x, w, {}, y, opts),
                       doctest::Contains("SPARKLE_CPU_KERNEL=fastest"), Error);
  unsetenv("SPARKLE_CPU_KERNEL");
}
