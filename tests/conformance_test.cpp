// Conformance: every device under test against the float64 reference, on
// fresh random data with the output poisoned first.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/test_data.hpp"

using namespace sparkle;

namespace {
// Relative to |bias| + sum |x * w| (see sparkle::compare).
constexpr double kTolerance = 1e-5;

// SPARKLE_TEST_CONSTANT_WEIGHTS=1 runs every call with
// RunOptions::constant_weights (backends' packed-weight paths). Every call
// still has fresh weights, often in a buffer at a freed one's address, so
// this also checks that a reused address with new values is noticed.
bool constant_weights() {
  const char* v = std::getenv("SPARKLE_TEST_CONSTANT_WEIGHTS");
  return v != nullptr && std::strcmp(v, "1") == 0;
}
}  // namespace

TEST_CASE("every device matches the float64 reference on odd shapes") {
  Engine engine;
  const auto devices = test::devices_under_test(engine);
  REQUIRE_MESSAGE(!devices.empty(), "no devices loaded; is SPARKLE_PLUGIN_PATH set?");
  const auto descs = test::conformance_descriptors();
  REQUIRE(descs.size() >= 30);
  const uint64_t seed = test::fresh_seed();
  MESSAGE("data seed " << seed << " (replay with SPARKLE_TEST_SEED)");
  std::mt19937_64 rng(seed);
  for (const auto& device : devices) {
    int checked = 0;
    for (const auto& d : descs) {
      CAPTURE(device);
      CAPTURE(d.to_string());
      const auto x = test::random_tensor(d.input_elements(), rng);
      const auto w = test::random_tensor(d.weight_elements(), rng);
      const auto b = test::random_tensor(d.bias_elements(), rng);
      auto y = test::poisoned(d.output_elements());
      RunOptions opts;
      opts.device = device;
      opts.constant_weights = constant_weights();
      const auto result = engine.conv2d(d, x, w, b, y, opts);
      CHECK(result.device == (device.find(':') == std::string::npos ? device + ":0" : device));
      const auto cmp = test::compare_with_reference(d, x, w, b, y);
      CAPTURE(result.kernel);
      CAPTURE(cmp.worst_index);
      CHECK(cmp.non_finite == 0);
      CHECK(cmp.max_rel_error <= kTolerance);
      ++checked;
    }
    MESSAGE(device << ": " << checked << " descriptors checked");
  }
}

TEST_CASE("the same plan reused across calls gives fresh results") {
  // Guards against a backend caching outputs or packed inputs by shape.
  Engine engine;
  for (const auto& device : test::devices_under_test(engine)) {
    CAPTURE(device);
    Conv2dDesc d;
    d.n = 2, d.c = 5, d.h = 9, d.w = 7, d.k = 6, d.r = 3, d.s = 3, d.pad_top = d.pad_left = 1;
    d.pad_bottom = d.pad_right = 1;
    std::mt19937_64 rng(test::fresh_seed());
    for (int round = 0; round < 3; ++round) {
      const auto x = test::random_tensor(d.input_elements(), rng);
      const auto w = test::random_tensor(d.weight_elements(), rng);
      auto y = test::poisoned(d.output_elements());
      RunOptions opts;
      opts.device = device;
      opts.constant_weights = constant_weights();
      engine.conv2d(d, x, w, {}, y, opts);
      const auto cmp = test::compare_with_reference(d, x, w, {}, y);
      CHECK(cmp.non_finite == 0);
      CHECK(cmp.max_rel_error <= kTolerance);
    }
  }
}
