// Valid descriptors with extreme fields (strides, pads and dilations up to
// 2^62): every backend either refuses them in supports_conv2d with a reason
// naming the field, so that "auto" goes elsewhere, or computes them right,
// with workspace that follows the work rather than the fields.
#include <doctest/doctest.h>
#include <sys/resource.h>

#include <chrono>

#include "common/test_data.hpp"

using namespace sparkle;

namespace {

struct Case {
  const char* what;
  Conv2dDesc d;
  const char* gl_field;  // the field the OpenGL backend names, or nullptr if it runs it
};

Conv2dDesc base() {
  Conv2dDesc d;
  d.n = 1, d.c = 2, d.h = 5, d.w = 6, d.k = 3, d.r = 3, d.s = 2;
  d.has_bias = true;
  return d;
}

std::vector<Case> cases() {
  constexpr int64_t k32 = int64_t{1} << 32, k62 = int64_t{1} << 62;
  std::vector<Case> out;
  auto add = [&](const char* what, auto edit, const char* gl_field) {
    Conv2dDesc d = base();
    edit(d);
    d.validate();
    out.push_back({what, d, gl_field});
  };
  add(
      "stride 2^32", [](Conv2dDesc& d) { d.stride_h = d.stride_w = k32; }, "stride_h");
  add(
      "stride 2^62 in width only", [](Conv2dDesc& d) { d.stride_w = k62; }, "stride_w");
  add(
      "pad 2^32 on every side, stride 2^33 (outputs of padding only)",
      [](Conv2dDesc& d) {
        d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = k32;
        d.stride_h = d.stride_w = 2 * k32;
      },
      "stride_h");
  add(
      "pad 2^32 on top only, stride 2^30",
      [](Conv2dDesc& d) {
        d.pad_top = k32;
        d.stride_h = k32 / 4;
      },
      "pad_top");
  add(
      "pad 2^32 bottom and right, stride 2^32",
      [](Conv2dDesc& d) {
        d.pad_bottom = d.pad_right = k32;
        d.stride_h = d.stride_w = k32;
      },
      "stride_h");
  add(
      "dilation 2^32 with padding to match",
      [](Conv2dDesc& d) {
        d.dilation_h = k32;
        d.pad_top = d.pad_bottom = k32;
      },
      "dilation_h");
  add(
      "dilation 2^61, stride 2^61, pad 2^61",
      [](Conv2dDesc& d) {
        d.dilation_w = d.stride_w = d.pad_left = d.pad_right = int64_t{1} << 61;
      },
      "stride_w");
  add(
      "dilation 5e7 with padding to match",
      [](Conv2dDesc& d) {
        d.dilation_h = 50'000'000;
        d.pad_top = d.pad_bottom = 50'000'000;
      },
      nullptr);
  // The case: a 1x4x4x8 output whose padded input copy on the CPU's
  // direct path once took 6.3 GB and 31 s.
  add(
      "dilation 5e7, 1x4x4x8 output",
      [](Conv2dDesc& d) {
        d.c = 2, d.h = 4, d.w = 8, d.k = 4, d.r = 2, d.s = 1;
        d.dilation_h = 50'000'000;
        d.pad_top = d.pad_bottom = 25'000'000;
      },
      nullptr);
  add(
      "just inside the GL range: pads 2^28, stride 2^28",
      [](Conv2dDesc& d) { d.pad_top = d.pad_bottom = d.stride_h = int64_t{1} << 28; }, nullptr);
  return out;
}

long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

}  // namespace

TEST_CASE("extreme strides, pads and dilations: refused by name or computed right") {
  Engine engine;
  std::mt19937_64 rng(test::fresh_seed());
  bool have_gl = false;
  for (const auto& dev : engine.devices()) have_gl = have_gl || dev.backend == "opengl";
  struct Data {
    std::vector<float> x, w, b;
  };
  std::vector<Data> data;
  for (const auto& c : cases())
    data.push_back({test::random_tensor(c.d.input_elements(), rng),
                    test::random_tensor(c.d.weight_elements(), rng),
                    test::random_tensor(c.d.bias_elements(), rng)});
  auto run = [&](const Case& c, const Data& t, const std::string& device) {
    RunOptions opts;
    opts.device = device;
    auto y = test::poisoned(c.d.output_elements());
    const auto start = std::chrono::steady_clock::now();
    const RunResult r = engine.conv2d(c.d, t.x, t.w, t.b, y, opts);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(test::compare_with_reference(c.d, t.x, t.w, t.b, y).max_rel_error < 1e-5);
    CHECK(test::compare_with_reference(c.d, t.x, t.w, t.b, y).non_finite == 0);
    CHECK(seconds < 10.0);  // auto's first call calibrates every device
    return r;
  };
  // The CPU first, before any GPU has compiled a program: the peak RSS then
  // measures the CPU's workspace, which must be tiny for tiny tensors (it
  // was 6.3 GB and 31 s for dilation 5e7).
  for (size_t i = 0; i < cases().size(); ++i) {
    const Case c = cases()[i];
    CAPTURE(std::string(c.what));
    CAPTURE(c.d.to_string());
    const long rss_before = peak_rss_kib();
    run(c, data[i], "cpu");
    CHECK(peak_rss_kib() - rss_before < 64 * 1024);
  }
  for (size_t i = 0; i < cases().size(); ++i) {
    const Case c = cases()[i];
    CAPTURE(std::string(c.what));
    CAPTURE(c.d.to_string());
    const auto& x = data[i].x;
    const auto& w = data[i].w;
    const auto& b = data[i].b;
    // Under auto a field the GL backend cannot index goes elsewhere.
    const RunResult r = run(c, data[i], "auto");
    if (c.gl_field != nullptr) CHECK(r.device.rfind("opengl", 0) != 0);
    if (!have_gl) continue;
    RunOptions gl;
    gl.device = "opengl";
    auto y = test::poisoned(c.d.output_elements());
    if (c.gl_field != nullptr) {
      try {
        engine.conv2d(c.d, x, w, b, y, gl);
        FAIL("opengl accepted it");
      } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::unsupported);
        CHECK(std::string(e.what()).find(c.gl_field) != std::string::npos);
        CHECK(std::string(e.what()).find("32-bit index range") != std::string::npos);
      }
    } else {
      engine.conv2d(c.d, x, w, b, y, gl);
      CHECK(test::compare_with_reference(c.d, x, w, b, y).max_rel_error < 1e-5);
    }
  }
}
