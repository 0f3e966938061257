// Tests of libsparkle-opengl.so through its C ABI alone: the plugin is
// dlopened, given a host-services table without a blob store, and its conv2d
// results are checked against libsparkle's float64 reference on fresh random
// data, with the output poisoned first. Exit code 77 (meson: skipped) when
// the plugin finds no EGL device. SPARKLE_GL_KERNEL=naive|tiled picks the
// kernel.
#include <doctest/doctest.h>
#include <sparkle/plugin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/test_data.hpp"
#include "gl_plugin_harness.hpp"

namespace {

using namespace gltest;
using sparkle::test::fresh_seed;
using sparkle::test::random_tensor;

// No blob store: the plugin must work with the optional services absent.
const sparkle_host_services kHost = minimal_host();

struct Desc : sparkle_conv2d_desc {
  Desc(int64_t n_, int64_t c_, int64_t h_, int64_t w_, int64_t k_, int64_t r_, int64_t s_) {
    std::memset(static_cast<sparkle_conv2d_desc*>(this), 0, sizeof(sparkle_conv2d_desc));
    struct_size = sizeof(sparkle_conv2d_desc);
    n = n_, c = c_, h = h_, w = w_, k = k_, r = r_, s = s_;
    stride_h = stride_w = dilation_h = dilation_w = groups = 1;
  }
  Desc& stride(int64_t sh, int64_t sw) { return stride_h = sh, stride_w = sw, *this; }
  Desc& pad(int64_t t, int64_t l, int64_t b, int64_t r_) {
    return pad_top = t, pad_left = l, pad_bottom = b, pad_right = r_, *this;
  }
  Desc& dilation(int64_t dh, int64_t dw) { return dilation_h = dh, dilation_w = dw, *this; }
  Desc& group(int64_t g) { return groups = g, *this; }
  Desc& bias(bool on = true) { return has_bias = on, *this; }
  Desc& relu_on(bool on = true) { return relu = on, *this; }
  Desc& finish() {
    out_h = (h + pad_top + pad_bottom - dilation_h * (r - 1) - 1) / stride_h + 1;
    out_w = (w + pad_left + pad_right - dilation_w * (s - 1) - 1) / stride_w + 1;
    return *this;
  }
  int64_t x_elems() const { return n * c * h * w; }
  int64_t w_elems() const { return k * (c / groups) * r * s; }
  int64_t y_elems() const { return n * k * out_h * out_w; }
  std::string str() const {
    std::ostringstream os;
    os << "n" << n << " c" << c << " " << h << "x" << w << " k" << k << " " << r << "x" << s
       << " stride" << stride_h << "," << stride_w << " pad" << pad_top << "," << pad_left << ","
       << pad_bottom << "," << pad_right << " dil" << dilation_h << "," << dilation_w << " g"
       << groups << (has_bias ? " bias" : "") << (relu ? " relu" : "");
    return os.str();
  }
};

struct Buffer {
  sparkle_buffer handle = nullptr;
  Buffer(const Device& dev, const void* data, size_t bytes) {
    REQUIRE_OK(g_plugin->buffer_create(dev.handle, bytes, &handle));
    if (data != nullptr) REQUIRE_OK(g_plugin->buffer_upload(handle, 0, data, bytes));
  }
  ~Buffer() {
    if (handle != nullptr) g_plugin->buffer_destroy(handle);
  }
};

struct RunResult {
  std::vector<float> y;
  std::string kernel;
  int64_t elapsed_ns = -1;
};

RunResult run_conv(const Device& dev, const Desc& d, const std::vector<float>& x,
                   const std::vector<float>& w, const std::vector<float>& b) {
  RunResult out;
  out.y.assign(static_cast<size_t>(d.y_elems()), std::numeric_limits<float>::quiet_NaN());
  Buffer bx(dev, x.data(), x.size() * 4), bw(dev, w.data(), w.size() * 4);
  Buffer by(dev, out.y.data(), out.y.size() * 4);  // poisoned on the device too
  std::unique_ptr<Buffer> bb;
  if (d.has_bias) bb = std::make_unique<Buffer>(dev, b.data(), b.size() * 4);
  sparkle_plan plan = nullptr;
  REQUIRE_OK(g_plugin->plan_conv2d(dev.handle, &d, &plan));
  out.kernel = g_plugin->plan_kernel_name(plan);
  sparkle_fence fence = nullptr;
  REQUIRE_OK(g_plugin->enqueue_conv2d(plan, bx.handle, bw.handle, bb ? bb->handle : nullptr,
                                      by.handle, &fence));
  REQUIRE_OK(g_plugin->fence_wait(fence));
  CHECK(g_plugin->fence_poll(fence) == 1);
  out.elapsed_ns = g_plugin->fence_elapsed_ns(fence);
  g_plugin->fence_destroy(fence);
  g_plugin->plan_destroy(plan);
  REQUIRE_OK(g_plugin->buffer_download(by.handle, 0, out.y.data(), out.y.size() * 4));
  return out;
}

std::string expected_kernel_prefix() {
  const char* k = std::getenv("SPARKLE_GL_KERNEL");
  if (k == nullptr || *k == '\0' || std::string(k) == "auto") return "gl_";
  return std::string("gl_") + k;
}

std::vector<Desc> odd_descriptors() {
  std::vector<Desc> v;
  v.push_back(Desc(1, 3, 17, 19, 5, 1, 1).finish());           // 1x1
  v.push_back(Desc(2, 16, 12, 12, 24, 1, 1).bias().finish());  // pointwise, vec4
  v.push_back(Desc(3, 8, 7, 7, 40, 1, 1).relu_on().finish());  // 1x1, 49 pixels
  v.push_back(Desc(1, 3, 23, 21, 8, 7, 7).stride(2, 2).pad(3, 3, 3, 3).bias().finish());
  v.push_back(Desc(2, 5, 15, 13, 7, 3, 3).stride(3, 3).pad(1, 1, 1, 1).finish());
  v.push_back(Desc(1, 6, 11, 14, 9, 3, 3).pad(0, 2, 1, 0).relu_on().finish());  // asymmetric
  v.push_back(Desc(2, 4, 10, 9, 6, 2, 5).pad(1, 2, 0, 2).bias().finish());      // non-square
  v.push_back(Desc(1, 7, 13, 8, 5, 5, 1).stride(2, 1).pad(2, 0, 2, 0).finish());
  v.push_back(Desc(4, 8, 9, 9, 12, 3, 3).pad(1, 1, 1, 1).group(4).bias().relu_on().finish());
  v.push_back(Desc(2, 16, 10, 11, 16, 3, 3).pad(1, 1, 1, 1).group(16).finish());  // depthwise
  v.push_back(
      Desc(1, 8, 12, 12, 16, 3, 3).pad(1, 1, 1, 1).group(8).stride(2, 2).finish());  // dw x2
  v.push_back(Desc(1, 4, 16, 15, 6, 3, 3).dilation(2, 3).pad(2, 3, 2, 3).finish());
  v.push_back(
      Desc(3, 6, 19, 17, 10, 3, 2).dilation(2, 1).stride(2, 3).pad(1, 0, 2, 1).bias().finish());
  v.push_back(Desc(4, 32, 14, 14, 70, 3, 3).pad(1, 1, 1, 1).bias().relu_on().finish());
  v.push_back(Desc(2, 64, 9, 9, 130, 1, 1).stride(2, 2).finish());      // 1x1 stride 2
  v.push_back(Desc(1, 130, 6, 7, 129, 3, 3).pad(1, 1, 1, 1).finish());  // > 128 rows
  v.push_back(Desc(2, 12, 8, 8, 36, 3, 3).group(3).pad(1, 1, 1, 1).finish());
  v.push_back(Desc(1, 1, 5, 5, 1, 5, 5).finish());                  // 1x1 output
  v.push_back(Desc(1, 2, 4, 4, 3, 6, 6).pad(2, 2, 2, 2).finish());  // kernel > input
  v.push_back(Desc(1, 9, 33, 31, 17, 3, 3).stride(2, 2).pad(0, 0, 1, 1).bias().finish());
  v.push_back(Desc(3, 3, 30, 30, 33, 4, 4).stride(4, 4).finish());    // patchify
  v.push_back(Desc(2, 20, 6, 6, 20, 1, 1).group(5).bias().finish());  // grouped 1x1
  v.push_back(Desc(1, 256, 7, 7, 64, 1, 1).finish());                 // long reduction
  v.push_back(Desc(2, 24, 13, 13, 48, 3, 3).pad(2, 2, 2, 2).dilation(2, 2).group(2).finish());
  v.push_back(Desc(1, 4, 3, 40, 8, 1, 9).pad(0, 4, 0, 4).finish());  // 1-D like
  v.push_back(Desc(4, 3, 20, 20, 16, 3, 3).stride(1, 2).pad(1, 1, 1, 1).relu_on().finish());
  return v;
}

}  // namespace

TEST_CASE("devices report their properties and a stable fingerprint") {
  REQUIRE(g_plugin->device_count() >= 1);
  CHECK(g_plugin->unavailable_reason() == nullptr);
  for (size_t i = 0; i < g_plugin->device_count(); ++i) {
    sparkle_device_info info{};
    info.struct_size = sizeof info;
    REQUIRE_OK(g_plugin->device_info(i, &info));
    CHECK((info.kind == SPARKLE_DEVICE_GPU || info.kind == SPARKLE_DEVICE_SOFTWARE_GPU));
    REQUIRE(info.fingerprint != nullptr);
    CHECK(std::strlen(info.fingerprint) > 8);
    std::vector<std::string> keys;
    for (size_t p = 0; p < info.property_count; ++p) {
      keys.push_back(info.properties[p].key);
      const std::string line =
          std::string(info.properties[p].key) + " = " + info.properties[p].value;
      MESSAGE(line);
    }
    for (const char* want :
         {"vendor", "renderer", "gl_version", "glsl_version", "max_work_group_invocations",
          "max_work_group_size", "max_work_group_count", "max_shared_memory_bytes", "timer_queries",
          "program_binary_formats"}) {
      CHECK_MESSAGE(std::find(keys.begin(), keys.end(), want) != keys.end(), want);
    }
  }
}

TEST_CASE("conv2d matches the float64 reference on odd descriptors") {
  Device dev;
  const uint64_t seed = fresh_seed();
  MESSAGE("data seed " << seed << " (replay with SPARKLE_TEST_SEED)");
  std::mt19937_64 rng(seed);
  const std::string prefix = expected_kernel_prefix();
  double worst = 0;
  for (const Desc& d : odd_descriptors()) {
    CAPTURE(d.str());
    REQUIRE_OK(g_plugin->supports_conv2d(dev.handle, &d));
    const auto x = random_tensor(d.x_elems(), rng);
    const auto w = random_tensor(d.w_elems(), rng);
    const auto b = random_tensor(d.has_bias ? d.k : 0, rng);
    RunResult got = run_conv(dev, d, x, w, b);
    CAPTURE(got.kernel);
    MESSAGE(d.str() << ": " << got.kernel << ", " << got.elapsed_ns / 1000 << " us");
    CHECK(got.kernel.rfind(prefix, 0) == 0);
    CHECK(got.elapsed_ns >= 0);
    const auto e = compare_with_reference(d, x, w, b, got.y);
    CAPTURE(e.worst_index);
    CHECK(e.non_finite == 0);
    // The bound is relative to |bias| + sum|x*w|, what any fp32 summation
    // order is proportional to (see sparkle::compare).
    CHECK(e.max_rel_error <= 1e-5);
    worst = std::max(worst, e.max_rel_error);
  }
  MESSAGE("worst relative error (by |bias|+sum|x*w|): " << worst);
}

TEST_CASE("a grid beyond 65535 work groups in one dimension is computed fully") {
  // 1x1 conv over a large batch: 9*4*512*512 outputs need 73728 work groups
  // of 128 in the naive kernel, and 9*512*512 pixels need 73728 tiles of 32
  // in the tiled one: more than 65535 in one dimension either way.
  Device dev;
  Desc d = Desc(9, 2, 512, 512, 4, 1, 1).bias().finish();
  std::mt19937_64 rng(fresh_seed());
  const auto x = random_tensor(d.x_elems(), rng);
  const auto w = random_tensor(d.w_elems(), rng);
  const auto b = random_tensor(d.k, rng);
  RunResult got = run_conv(dev, d, x, w, b);
  CAPTURE(got.kernel);
  const int64_t hw = 512 * 512;
  int64_t wrong = 0, nan = 0;
  for (int64_t i = 0; i < d.y_elems(); ++i) {
    const int64_t p = i % hw, k = (i / hw) % 4, n = i / (4 * hw);
    const double want = b[size_t(k)] + double(x[size_t(n * 2 * hw + p)]) * w[size_t(k * 2)] +
                        double(x[size_t((n * 2 + 1) * hw + p)]) * w[size_t(k * 2 + 1)];
    const float v = got.y[size_t(i)];
    if (!std::isfinite(v)) {
      ++nan;
    } else if (std::fabs(v - want) > 1e-5 * (std::fabs(b[size_t(k)]) + 2.0)) {
      ++wrong;
    }
  }
  CHECK(nan == 0);
  CHECK(wrong == 0);
}

TEST_CASE("every tile shape of the tiled kernel matches the reference") {
  // Only in the tiled run: compiles each shape for several descriptors whose
  // edges are not multiples of the tiles.
  const char* kind = std::getenv("SPARKLE_GL_KERNEL");
  if (kind == nullptr || std::string(kind) != "tiled") return;
  Device dev;
  const char* tiles[] = {"128x128x8_8x8", "128x64x8_8x8", "64x128x8_8x8", "64x64x8_8x8",
                         "64x64x16_8x8",  "32x64x8_4x8",  "32x32x8_4x4"};
  std::vector<Desc> descs;
  descs.push_back(Desc(2, 19, 13, 11, 130, 3, 3).pad(1, 1, 1, 1).bias().relu_on().finish());
  descs.push_back(Desc(3, 64, 10, 10, 72, 1, 1).finish());       // pointwise, vec4
  descs.push_back(Desc(4, 16, 7, 7, 96, 1, 1).bias().finish());  // pointwise, 49 px
  descs.push_back(Desc(1, 40, 15, 15, 136, 1, 1).stride(2, 2).finish());
  descs.push_back(Desc(2, 32, 9, 9, 64, 3, 3).group(2).dilation(2, 2).pad(2, 2, 2, 2).finish());
  descs.push_back(Desc(1, 3, 37, 37, 66, 7, 7).stride(2, 2).pad(3, 3, 3, 3).finish());
  descs.push_back(Desc(2, 10, 12, 9, 20, 2, 3).pad(0, 1, 1, 1).stride(1, 2).finish());
  std::mt19937_64 rng(fresh_seed());
  for (const char* tile : tiles) {
    setenv("SPARKLE_GL_TILE", tile, 1);
    for (const Desc& d : descs) {
      CAPTURE(tile);
      CAPTURE(d.str());
      const auto x = random_tensor(d.x_elems(), rng), w = random_tensor(d.w_elems(), rng),
                 b = random_tensor(d.has_bias ? d.k : 0, rng);
      RunResult got = run_conv(dev, d, x, w, b);
      CHECK(got.kernel.find(tile) != std::string::npos);
      const auto e = compare_with_reference(d, x, w, b, got.y);
      CHECK(e.non_finite == 0);
      CHECK(e.max_rel_error <= 1e-5);
    }
  }
  unsetenv("SPARKLE_GL_TILE");
}

TEST_CASE("an oversized request is an error and the device keeps working") {
  Device dev;
  // 1 TiB: GL_OUT_OF_MEMORY from the driver, reported as SPARKLE_OUT_OF_MEMORY.
  sparkle_buffer huge = nullptr;
  Status st = take(g_plugin->buffer_create(dev.handle, size_t{1} << 40, &huge));
  CAPTURE(st.message);
  CHECK(st.code == SPARKLE_OUT_OF_MEMORY);
  CHECK(!st.message.empty());
  if (st.code == SPARKLE_OK) g_plugin->buffer_destroy(huge);

  // A tensor past 32-bit indexing is rejected up front, with the reason.
  Desc big = Desc(64, 64, 1024, 1024, 64, 3, 3).pad(1, 1, 1, 1).finish();
  st = take(g_plugin->supports_conv2d(dev.handle, &big));
  CAPTURE(st.message);
  CHECK(st.code == SPARKLE_UNSUPPORTED);
  CHECK(st.message.find("elements") != std::string::npos);
  sparkle_plan plan = nullptr;
  CHECK(take(g_plugin->plan_conv2d(dev.handle, &big, &plan)).code == SPARKLE_UNSUPPORTED);

  // A buffer too small for the descriptor is the caller's error.
  Desc d = Desc(1, 3, 8, 8, 4, 3, 3).pad(1, 1, 1, 1).finish();
  REQUIRE_OK(g_plugin->plan_conv2d(dev.handle, &d, &plan));
  Buffer small(dev, nullptr, 16), w(dev, nullptr, size_t(d.w_elems()) * 4),
      y(dev, nullptr, size_t(d.y_elems()) * 4);
  sparkle_fence fence = nullptr;
  st = take(g_plugin->enqueue_conv2d(plan, small.handle, w.handle, nullptr, y.handle, &fence));
  CHECK(st.code == SPARKLE_INVALID_ARGUMENT);
  g_plugin->plan_destroy(plan);

  // And a normal conv still works afterwards.
  std::mt19937_64 rng(fresh_seed());
  const auto xv = random_tensor(d.x_elems(), rng), wv = random_tensor(d.w_elems(), rng);
  RunResult got = run_conv(dev, d, xv, wv, {});
  const auto e = compare_with_reference(d, xv, wv, {}, got.y);
  CHECK(e.non_finite == 0);
  CHECK(e.max_rel_error <= 1e-5);
}

TEST_CASE("many threads submitting to one device get correct results") {
  Device dev;
  const Desc d = Desc(2, 6, 11, 10, 10, 3, 3).pad(1, 1, 1, 1).bias().finish();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  const uint64_t seed = fresh_seed();
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + static_cast<uint64_t>(t));
      for (int round = 0; round < 5; ++round) {
        const auto x = random_tensor(d.x_elems(), rng), w = random_tensor(d.w_elems(), rng),
                   b = random_tensor(d.k, rng);
        std::vector<float> y(static_cast<size_t>(d.y_elems()), NAN);
        sparkle_buffer bx, bw, bb, by;
        sparkle_plan plan;
        sparkle_fence fence;
        bool ok = take(g_plugin->buffer_create(dev.handle, x.size() * 4, &bx)).code == 0 &&
                  take(g_plugin->buffer_create(dev.handle, w.size() * 4, &bw)).code == 0 &&
                  take(g_plugin->buffer_create(dev.handle, b.size() * 4, &bb)).code == 0 &&
                  take(g_plugin->buffer_create(dev.handle, y.size() * 4, &by)).code == 0;
        ok = ok && take(g_plugin->buffer_upload(bx, 0, x.data(), x.size() * 4)).code == 0 &&
             take(g_plugin->buffer_upload(bw, 0, w.data(), w.size() * 4)).code == 0 &&
             take(g_plugin->buffer_upload(bb, 0, b.data(), b.size() * 4)).code == 0 &&
             take(g_plugin->plan_conv2d(dev.handle, &d, &plan)).code == 0 &&
             take(g_plugin->enqueue_conv2d(plan, bx, bw, bb, by, &fence)).code == 0 &&
             take(g_plugin->fence_wait(fence)).code == 0 &&
             take(g_plugin->buffer_download(by, 0, y.data(), y.size() * 4)).code == 0;
        if (ok) {
          g_plugin->fence_destroy(fence);
          g_plugin->plan_destroy(plan);
          for (auto* b2 : {bx, bw, bb, by}) g_plugin->buffer_destroy(b2);
          const auto e = compare_with_reference(d, x, w, b, y);
          if (e.non_finite != 0 || e.max_rel_error > 1e-5) ++failures;
        } else {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures.load() == 0);
}

int main(int argc, char** argv) { return gltest::run_plugin_tests(argc, argv, &kHost); }
