// Plugin registry: broken plugins are skipped with a reason naming the file,
// and the engine keeps working with the good ones.
#include <doctest/doctest.h>

#include <map>

#include "common/test_data.hpp"

using namespace sparkle;

TEST_CASE("broken plugins are rejected with their reason and the engine keeps working") {
  EngineOptions options;
  options.plugin_paths = {SPARKLE_FIXTURE_DIR, SPARKLE_CPU_PLUGIN_DIR};
  options.use_default_paths = false;
  Engine engine(options);

  std::map<std::string, PluginRecord> by_file;
  for (const auto& p : engine.plugins()) by_file[p.path.substr(p.path.rfind('/') + 1)] = p;

  const std::map<std::string, std::string> expected = {
      {"libsparkle-noentry.so", "missing entry point 'sparkle_plugin_entry'"},
      {"libsparkle-badabi.so", "wrong ABI version: plugin has 99.3, host expects 1." +
                                   std::to_string(SPARKLE_PLUGIN_ABI_MINOR)},
      {"libsparkle-small.so", "descriptor struct_size 24 too small"},
      {"libsparkle-throws.so", "init threw: fixture init failure"},
      {"libsparkle-initfails.so", "init failed: fixture refuses to start"},
      {"libsparkle-nullmember.so", "descriptor member 'enqueue_conv2d' is NULL"},
      {"libsparkle-notelf.so", "not a loadable shared object"},
  };
  for (const auto& [file, reason] : expected) {
    CAPTURE(file);
    REQUIRE(by_file.count(file) == 1);
    CHECK_FALSE(by_file[file].loaded);
    CHECK(by_file[file].reason.find(reason) != std::string::npos);
    CHECK(by_file[file].path.find(SPARKLE_FIXTURE_DIR) == 0);
  }
  // A valid plugin with no devices loads and says why it has none.
  REQUIRE(by_file.count("libsparkle-empty.so") == 1);
  CHECK(by_file["libsparkle-empty.so"].loaded);
  CHECK(by_file["libsparkle-empty.so"].reason == "fixture");

  REQUIRE(by_file.count("libsparkle-cpu.so") == 1);
  CHECK(by_file["libsparkle-cpu.so"].loaded);

  Conv2dDesc d;
  d.c = 3, d.h = 5, d.w = 5, d.k = 2, d.r = 3, d.s = 3;
  std::mt19937_64 rng(test::fresh_seed());
  const auto x = test::random_tensor(d.input_elements(), rng);
  const auto w = test::random_tensor(d.weight_elements(), rng);
  auto y = test::poisoned(d.output_elements());
  CHECK(engine.conv2d(d, x, w, {}, y).device == "cpu:0");
  CHECK(test::compare_with_reference(d, x, w, {}, y).max_rel_error < 1e-5);

  // Naming the device-less backend explains why it cannot run.
  RunOptions opts;
  opts.device = "empty";
  CHECK_THROWS_WITH_AS(engine.conv2d(d, x, w, {}, y, opts),
                       doctest::Contains("backend 'empty' has no devices: fixture"), Error);
}

TEST_CASE("the current directory is never searched implicitly") {
  EngineOptions options;
  options.use_default_paths = false;
  Engine engine(options);
  CHECK(engine.plugins().empty());
  CHECK(engine.devices().empty());
  Conv2dDesc d;
  std::vector<float> x(1), w(1), y(1);
  CHECK_THROWS_WITH_AS(engine.conv2d(d, x, w, {}, y), doctest::Contains("no devices loaded"),
                       Error);
}

TEST_CASE("a plugin built against the v1.2 header loads in a newer host and runs") {
  EngineOptions options;
  options.plugin_paths = {SPARKLE_OLD_ABI_PLUGIN_DIR};
  options.use_default_paths = false;
  Engine engine(options);
  REQUIRE(engine.plugins().size() == 1);
  CHECK(engine.plugins()[0].loaded);
  CHECK(engine.plugins()[0].reason.empty());
  REQUIRE(engine.devices().size() == 1);
  CHECK(engine.devices()[0].name == "oldabi:0");

  Conv2dDesc d;
  d.n = 2, d.c = 4, d.h = 7, d.w = 6, d.k = 3, d.r = 3, d.s = 2;
  d.pad_top = 1, d.pad_left = 0, d.pad_bottom = 2, d.pad_right = 1;
  d.stride_h = 2;
  d.has_bias = true;
  std::mt19937_64 rng(test::fresh_seed());
  const auto x = test::random_tensor(d.input_elements(), rng);
  const auto w = test::random_tensor(d.weight_elements(), rng);
  const auto b = test::random_tensor(d.bias_elements(), rng);
  auto y = test::poisoned(d.output_elements());
  RunOptions opts;
  opts.device = "oldabi";
  CHECK(engine.conv2d(d, x, w, b, y, opts).kernel == "old_abi_direct");
  CHECK(test::compare_with_reference(d, x, w, b, y).max_rel_error < 1e-5);
}
