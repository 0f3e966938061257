// Shared test data (see test_data.hpp).
#include "test_data.hpp"

#include <cstdlib>
#include <sstream>
#include <string>

namespace sparkle::test {

uint64_t fresh_seed() {
  if (const char* env = std::getenv("SPARKLE_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

Comparison compare_with_reference(const Conv2dDesc& d, const std::vector<float>& x,
                                  const std::vector<float>& w, const std::vector<float>& b,
                                  const std::vector<float>& y) {
  std::vector<double> want(y.size()), magnitude(y.size());
  reference_conv2d(d, x.data(), w.data(), b.empty() ? nullptr : b.data(), want.data(),
                   magnitude.data());
  return compare(y.data(), want.data(), magnitude.data(), static_cast<int64_t>(y.size()));
}

namespace {

Conv2dDesc make(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t r, int64_t s,
                int64_t sh, int64_t sw, std::initializer_list<int64_t> pad, int64_t dh, int64_t dw,
                int64_t groups, bool bias, bool relu) {
  Conv2dDesc d;
  d.n = n, d.c = c, d.h = h, d.w = w, d.k = k, d.r = r, d.s = s;
  d.stride_h = sh, d.stride_w = sw;
  auto p = pad.begin();
  d.pad_top = p[0], d.pad_left = p[1], d.pad_bottom = p[2], d.pad_right = p[3];
  d.dilation_h = dh, d.dilation_w = dw;
  d.groups = groups;
  d.has_bias = bias;
  d.relu = relu;
  return d;
}

}  // namespace

std::vector<Conv2dDesc> conformance_descriptors(int random_count) {
  std::vector<Conv2dDesc> list = {
      make(1, 3, 8, 8, 4, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1, false, false),      // 1x1
      make(2, 3, 23, 19, 8, 7, 7, 2, 2, {3, 3, 3, 3}, 1, 1, 1, true, true),      // 7x7 s2
      make(1, 5, 17, 16, 6, 3, 3, 3, 3, {1, 1, 1, 1}, 1, 1, 1, true, false),     // stride 3
      make(3, 4, 11, 13, 5, 1, 7, 1, 1, {0, 3, 0, 3}, 1, 1, 1, false, true),     // 1x7
      make(1, 4, 13, 11, 5, 7, 1, 1, 1, {3, 0, 3, 0}, 1, 1, 1, false, false),    // 7x1
      make(2, 6, 10, 9, 7, 3, 2, 1, 2, {2, 0, 1, 3}, 1, 1, 1, true, false),      // asymmetric
      make(4, 8, 9, 9, 6, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 2, true, true),        // groups 2, N=4
      make(2, 16, 12, 12, 16, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 16, false, true),  // depthwise
      make(1, 8, 9, 9, 16, 5, 5, 2, 2, {2, 2, 2, 2}, 1, 1, 8, true, false),      // depthwise x2
      make(2, 4, 15, 14, 3, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 2, 1, false, false),    // dilation 2
      make(1, 6, 16, 17, 6, 3, 3, 2, 1, {1, 3, 2, 0}, 2, 3, 3, true, true),      // mixed
      make(1, 40, 13, 15, 37, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1, true, false),   // c*r*s > 256
      make(1, 64, 14, 14, 70, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1, false, false),  // K not /4
      make(1, 3, 1, 1, 2, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1, true, true),        // 1x1 image
      make(1, 2, 3, 3, 2, 5, 5, 1, 1, {2, 2, 2, 2}, 1, 1, 1, false, false),      // filter > image
      make(1, 300, 5, 5, 3, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1, false, false),    // long reduction
      make(1, 2, 40, 41, 3, 3, 3, 1, 1, {0, 0, 0, 0}, 1, 1, 1, false, false),    // pixels > tile
      make(2, 12, 7, 5, 9, 2, 4, 2, 3, {0, 1, 1, 2}, 3, 1, 3, true, true),       // everything
  };
  std::mt19937_64 rng(20261124);
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  while (static_cast<int>(list.size()) < 18 + random_count) {
    Conv2dDesc d;
    d.groups = pick(0, 3) == 0 ? pick(2, 4) : 1;
    d.c = d.groups * pick(1, 9);
    d.k = d.groups * pick(1, 9);
    if (pick(0, 5) == 0) d.k = d.c = d.groups = pick(2, 12);  // depthwise
    d.n = pick(1, 4);
    d.h = pick(1, 24);
    d.w = pick(1, 24);
    d.r = pick(1, 7);
    d.s = pick(1, 7);
    d.stride_h = pick(1, 3);
    d.stride_w = pick(1, 3);
    d.dilation_h = pick(1, 3);
    d.dilation_w = pick(1, 3);
    d.pad_top = pick(0, 3);
    d.pad_left = pick(0, 3);
    d.pad_bottom = pick(0, 3);
    d.pad_right = pick(0, 3);
    d.has_bias = pick(0, 1) == 1;
    d.relu = pick(0, 1) == 1;
    try {
      d.validate();
      list.push_back(d);
    } catch (const Error&) {
      // empty output: draw again
    }
  }
  return list;
}

std::vector<std::string> devices_under_test(const Engine& engine) {
  std::vector<std::string> names;
  if (const char* env = std::getenv("SPARKLE_TEST_DEVICES"); env != nullptr && *env != '\0') {
    std::stringstream ss(env);
    for (std::string name; std::getline(ss, name, ',');)
      if (!name.empty()) names.push_back(name);
    return names;
  }
  for (const auto& d : engine.devices()) names.push_back(d.name);
  return names;
}

}  // namespace sparkle::test
