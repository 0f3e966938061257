// Test data shared by the suites: fresh random tensors, poisoned outputs and
// the conformance descriptor list.
#pragma once

#include <cstdint>
#include <limits>
#include <random>
#include <sparkle/sparkle.hpp>
#include <vector>

namespace sparkle::test {

// A seed that differs on every run (logged by the tests, so a failure can be
// replayed with SPARKLE_TEST_SEED).
uint64_t fresh_seed();

inline std::vector<float> random_tensor(int64_t count, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::vector<float> poisoned(int64_t count) {
  return std::vector<float>(static_cast<size_t>(count), std::numeric_limits<float>::quiet_NaN());
}

// y against the float64 reference of (d, x, w, b); b may be empty when
// !d.has_bias. NaN/Inf elements (poison left unwritten) count as non-finite.
Comparison compare_with_reference(const Conv2dDesc& d, const std::vector<float>& x,
                                  const std::vector<float>& w, const std::vector<float>& b,
                                  const std::vector<float>& y);

// Hand-picked odd shapes plus `random_count` random valid descriptors drawn
// from a fixed seed (the data is fresh; the shapes are stable).
std::vector<Conv2dDesc> conformance_descriptors(int random_count = 40);

// Devices to test: SPARKLE_TEST_DEVICES (comma-separated names) or all.
std::vector<std::string> devices_under_test(const Engine& engine);

}  // namespace sparkle::test
