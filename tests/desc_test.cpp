// Conv2dDesc validation, shape math, the reference on hand-computed cases,
// .npy files and the shapes-file parser.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "common/test_data.hpp"

using namespace sparkle;

namespace {

std::string error_of(const Conv2dDesc& d) {
  try {
    d.validate();
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::invalid_argument);
    return e.what();
  }
  return "";
}

std::string temp_path(const std::string& name) {
  return "/tmp/sparkle-test-" + std::to_string(getpid()) + "-" + name;
}

}  // namespace

TEST_CASE("output shape follows padding, stride and dilation") {
  Conv2dDesc d;
  d.h = 224, d.w = 224, d.c = 3, d.k = 64, d.r = 7, d.s = 7, d.stride_h = d.stride_w = 2;
  d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 3;
  d.validate();
  CHECK(d.out_h() == 112);
  CHECK(d.out_w() == 112);
  d.pad_bottom = 0, d.pad_right = 1, d.dilation_h = 2;
  d.validate();
  CHECK(d.out_h() == (224 + 3 - 13) / 2 + 1);
  CHECK(d.out_w() == (224 + 4 - 7) / 2 + 1);
  CHECK(d.flops() == doctest::Approx(2.0 * 64 * d.out_h() * d.out_w() * 3 * 49));
}

TEST_CASE("invalid descriptors name the field at fault") {
  struct Case {
    const char* what;
    void (*edit)(Conv2dDesc&);
    const char* message;
  };
  const Case cases[] = {
      {"zero n", [](Conv2dDesc& d) { d.n = 0; }, "n=0 must be > 0"},
      {"negative c", [](Conv2dDesc& d) { d.c = -3; }, "c=-3 must be > 0"},
      {"zero k", [](Conv2dDesc& d) { d.k = 0; }, "k=0 must be > 0"},
      {"zero stride", [](Conv2dDesc& d) { d.stride_w = 0; }, "stride_w=0 must be > 0"},
      {"negative pad", [](Conv2dDesc& d) { d.pad_left = -1; }, "pad_left=-1 must be >= 0"},
      {"zero dilation", [](Conv2dDesc& d) { d.dilation_h = 0; }, "dilation_h=0 must be > 0"},
      {"groups vs C", [](Conv2dDesc& d) { d.groups = 3; }, "groups=3 does not divide C=8"},
      {"groups vs K",
       [](Conv2dDesc& d) {
         d.groups = 4;
         d.k = 6;
       },
       "groups=4 does not divide K=6"},
      {"empty output", [](Conv2dDesc& d) { d.r = 9; }, "output height would be <= 0"},
      {"overflow", [](Conv2dDesc& d) { d.n = d.c = d.h = d.w = int64_t{1} << 20; },
       "input element count overflows int64"},
      {"byte overflow",
       [](Conv2dDesc& d) {
         d.c = 1;
         d.n = int64_t{1} << 62;
         d.h = d.w = d.r = d.s = 1;
       },
       "input byte size overflows int64"},
      {"dilation overflow", [](Conv2dDesc& d) { d.dilation_w = int64_t{1} << 62; },
       "dilation_w * (s - 1) overflows int64"},
  };
  for (const auto& c : cases) {
    Conv2dDesc d;
    d.n = 1, d.c = 8, d.h = 8, d.w = 8, d.k = 8, d.r = 3, d.s = 3;
    c.edit(d);
    const std::string message = error_of(d);
    CAPTURE(std::string(c.what));
    CAPTURE(message);
    CHECK(message.find(c.message) != std::string::npos);
  }
}

TEST_CASE("the reference convolution matches hand-computed values") {
  // 1 image, 1 channel 3x3, one 2x2 filter, pad 1 on the left only, bias 0.5.
  Conv2dDesc d;
  d.c = 1, d.h = 3, d.w = 3, d.k = 1, d.r = 2, d.s = 2, d.pad_left = 1, d.has_bias = true;
  d.validate();
  REQUIRE(d.out_h() == 2);
  REQUIRE(d.out_w() == 3);
  const float x[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const float w[] = {1, -1, 2, 0.5f};
  const float b[] = {0.5f};
  double y[6], mag[6];
  reference_conv2d(d, x, w, b, y, mag);
  // y[p][q] = b + sum w[r][s] * x[p + r][q + s - 1]
  CHECK(y[0] == doctest::Approx(0.5 + (-1 * 1) + (0.5 * 4)));
  CHECK(y[1] == doctest::Approx(0.5 + 1 * 1 - 1 * 2 + 2 * 4 + 0.5 * 5));
  CHECK(y[5] == doctest::Approx(0.5 + 1 * 5 - 1 * 6 + 2 * 8 + 0.5 * 9));
  CHECK(mag[5] == doctest::Approx(0.5 + 5 + 6 + 16 + 4.5));
  d.relu = true;
  reference_conv2d(d, x, w, b, y, mag);
  CHECK(y[0] == doctest::Approx(1.5));
}

TEST_CASE("compare flags poisoned and wrong elements") {
  const double want[] = {1.0, 2.0, 0.0};
  const double mag[] = {1.0, 2.0, 1.0};
  const float good[] = {1.0f, 2.0f, 0.0f};
  CHECK(compare(good, want, mag, 3).max_rel_error == 0);
  const float nan[] = {1.0f, std::numeric_limits<float>::quiet_NaN(), 0.0f};
  CHECK(compare(nan, want, mag, 3).non_finite == 1);
  const float off[] = {1.0f, 2.0f, 0.01f};
  CHECK(compare(off, want, mag, 3).max_rel_error == doctest::Approx(0.01));
}

TEST_CASE("npy round trip and malformed files") {
  const auto path = temp_path("a.npy");
  const std::vector<float> data = {1.5f, -2, 3, 4, 5, 6};
  write_npy(path, {2, 3}, data.data());
  auto a = read_npy(path, 2);
  CHECK(a.shape == std::vector<int64_t>{2, 3});
  CHECK(a.data == data);
  CHECK_THROWS_WITH_AS(read_npy(path, 4), doctest::Contains("rank 2 but expected 4"), Error);

  auto write_raw = [&](const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  };
  auto header = [](const std::string& dict) {
    std::string h = "\x93NUMPY\x01";
    h += '\0';
    h += static_cast<char>(dict.size());
    h += '\0';
    return h + dict;
  };
  write_raw(header("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n") +
            std::string(16, '\0'));
  CHECK_THROWS_WITH_AS(read_npy(path), doctest::Contains("dtype '<f8' is not float32"), Error);
  write_raw(header("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n") +
            std::string(8, '\0'));
  CHECK_THROWS_WITH_AS(read_npy(path), doctest::Contains("truncated body"), Error);
  write_raw("hello");
  CHECK_THROWS_WITH_AS(read_npy(path), doctest::Contains("bad magic"), Error);
  CHECK_THROWS_WITH_AS(read_npy(temp_path("missing.npy")), doctest::Contains("cannot open"), Error);
  std::remove(path.c_str());
}

TEST_CASE("shapes files: overrides and bad lines") {
  auto layers = parse_shapes(
      "# comment\n"
      "a 64 56 56 64 3 3 1 1 3\n"
      "b 32 20 20 32 3 3 1 0 1 groups=32 dilation=2,1 stride=1,2 pad=1,2,3,0\n",
      "t", 4);
  REQUIRE(layers.size() == 2);
  CHECK(layers[0].count == 3);
  CHECK(layers[0].desc.n == 4);
  CHECK(layers[1].desc.groups == 32);
  CHECK(layers[1].desc.dilation_h == 2);
  CHECK(layers[1].desc.dilation_w == 1);
  CHECK(layers[1].desc.stride_w == 2);
  CHECK(layers[1].desc.pad_right == 0);
  CHECK(layers[1].desc.pad_bottom == 3);
  CHECK_THROWS_WITH_AS(parse_shapes("a 1 2 3\n", "t", 1),
                       doctest::Contains("t:1: expected 10 fields"), Error);
  CHECK_THROWS_WITH_AS(parse_shapes("\na 64 x 56 64 3 3 1 1 1\n", "t", 1),
                       doctest::Contains("t:2: layer 'a': H='x' is not an integer"), Error);
  CHECK_THROWS_WITH_AS(parse_shapes("a 64 56 56 64 3 3 1 1 1 colour=red\n", "t", 1),
                       doctest::Contains("unknown field 'colour'"), Error);
  CHECK_THROWS_WITH_AS(parse_shapes("a 64 56 56 64 3 3 1 1 1 groups=3\n", "t", 1),
                       doctest::Contains("groups=3 does not divide C=64"), Error);
  CHECK_THROWS_WITH_AS(parse_shapes("# nothing\n", "t", 1), doctest::Contains("no layers"), Error);
}

TEST_CASE("the built-in ResNet-50 suite has 53 convolutions and 8.17 GFLOP per image") {
  const auto layers = read_shapes_file(SPARKLE_SOURCE_ROOT "/bench/resnet50_v1_5.shapes", 1);
  int64_t convs = 0;
  double flops = 0;
  for (const auto& l : layers) {
    convs += l.count;
    flops += l.desc.flops() * static_cast<double>(l.count);
  }
  CHECK(convs == 53);
  CHECK(flops / 1e9 == doctest::Approx(8.17).epsilon(0.01));
}
