// Every kernel variant the OpenGL plugin offers a tuner (plugin ABI 1.4)
// must compute the convolution: the whole variant space of descriptors
// chosen so that every generator path is reached (1x1, 1x1 strided, 3x3
// with Winograd, a 7x7 stride 2 with C = 3, grouped and dilated, odd sizes
// that fit no tile, N > 1), each variant on fresh random data with y
// poisoned, against libsparkle's float64 reference. Also the contract of the
// variant members: unique names, one default, the default being what
// plan_conv2d picks, plan names matching, a list that is the same on every
// call.
//
// SPARKLE_TEST_VARIANTS=families runs one variant per flavour (family x
// split-K x subgroup) instead of all: the sanitizer pass checks the host
// code of every pass structure without compiling the whole space again.
// Exits 77 (meson: skipped) without an EGL device.
#include <doctest/doctest.h>
#include <sparkle/plugin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
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

const sparkle_host_services kHost = minimal_host();

sparkle_conv2d_desc make_desc(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t r,
                              int64_t s, int64_t stride = 1, int64_t pad = 0) {
  sparkle_conv2d_desc d;
  std::memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.n = n, d.c = c, d.h = h, d.w = w, d.k = k, d.r = r, d.s = s;
  d.stride_h = d.stride_w = stride;
  d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = pad;
  d.dilation_h = d.dilation_w = d.groups = 1;
  return d;
}

void finish(sparkle_conv2d_desc* d) {
  d->out_h = (d->h + d->pad_top + d->pad_bottom - d->dilation_h * (d->r - 1) - 1) / d->stride_h + 1;
  d->out_w = (d->w + d->pad_left + d->pad_right - d->dilation_w * (d->s - 1) - 1) / d->stride_w + 1;
}

std::string describe(const sparkle_conv2d_desc& d) {
  std::ostringstream os;
  os << "n" << d.n << " c" << d.c << " " << d.h << "x" << d.w << " k" << d.k << " " << d.r << "x"
     << d.s << " stride" << d.stride_h << "," << d.stride_w << " pad" << d.pad_top << ","
     << d.pad_left << "," << d.pad_bottom << "," << d.pad_right << " dil" << d.dilation_h << ","
     << d.dilation_w << " g" << d.groups << (d.has_bias ? " bias" : "") << (d.relu ? " relu" : "");
  return os.str();
}

// The descriptors whose variant spaces together reach every generator path.
// Sizes are small (llvmpipe runs them in milliseconds) but large enough that
// every block tile is offered (output channels and pixels above 64).
std::vector<sparkle_conv2d_desc> space_descriptors() {
  std::vector<sparkle_conv2d_desc> v;
  // 1x1, stride 1: vec4 loads of x, vec4 stores; K = 72 is no tile multiple.
  auto d = make_desc(2, 16, 10, 10, 72, 1, 1);
  d.has_bias = 1;
  v.push_back(d);
  // 1x1 stride 2 (the downsampling shortcut), 49 pixels: scalar stores.
  d = make_desc(2, 24, 13, 13, 80, 1, 1, 2);
  d.relu = 1;
  v.push_back(d);
  // 3x3 stride 1: the GEMM's gather and both Winograd tiles; 11x13 leaves
  // partial Winograd tiles, asymmetric padding shifts them; 136 channels
  // make enough row tiles for the other grid order.
  d = make_desc(2, 12, 11, 13, 136, 3, 3, 1, 1);
  d.pad_right = 0;
  d.pad_bottom = 2;
  d.has_bias = 1;
  d.relu = 1;
  v.push_back(d);
  // 7x7 stride 2 over 3 channels: a reduction that is no multiple of 4
  // (scalar A loads) and no multiple of the block's bk.
  d = make_desc(1, 3, 29, 27, 66, 7, 7, 2, 3);
  v.push_back(d);
  // Grouped, dilated, non-square: the gather with every index term.
  d = make_desc(3, 16, 9, 12, 96, 3, 2, 1, 2);
  d.groups = 2;
  d.dilation_h = 2;
  d.has_bias = 1;
  v.push_back(d);
  for (auto& e : v) finish(&e);
  return v;
}

struct Buffers {
  sparkle_buffer x = nullptr, w = nullptr, b = nullptr, y = nullptr;
  ~Buffers() {
    for (auto* h : {x, w, b, y})
      if (h != nullptr) g_plugin->buffer_destroy(h);
  }
};

sparkle_buffer upload(const Device& dev, const std::vector<float>& data) {
  sparkle_buffer h = nullptr;
  REQUIRE_OK(g_plugin->buffer_create(dev.handle, std::max<size_t>(data.size(), 1) * 4, &h));
  if (!data.empty()) REQUIRE_OK(g_plugin->buffer_upload(h, 0, data.data(), data.size() * 4));
  return h;
}

std::vector<sparkle_variant_info> variants(const Device& dev, const sparkle_conv2d_desc& d) {
  std::vector<sparkle_variant_info> out;
  const size_t n = g_plugin->conv2d_variant_count(dev.handle, &d);
  for (size_t i = 0; i < n; ++i) {
    sparkle_variant_info info{};
    info.struct_size = sizeof info;
    REQUIRE_OK(g_plugin->conv2d_variant_info(dev.handle, &d, i, &info));
    out.push_back(info);
  }
  return out;
}

// The flavour of a variant: what changes the passes and the host code.
std::string flavour(const sparkle_variant_info& v) {
  const std::string name = v.name;
  return std::string(v.family) + (name.find("_sk") != std::string::npos ? "+splitk" : "") +
         (name.find("_sg") != std::string::npos ? "+subgroup" : "") +
         (name.find("_mo") != std::string::npos ? "+m-order" : "");
}

// SPARKLE_TEST_VARIANTS: unset or "all", "families", or a substring the
// variant names must contain (e.g. "_sk" for the split-K ones).
std::string variant_selection() {
  const char* v = std::getenv("SPARKLE_TEST_VARIANTS");
  return v == nullptr || *v == '\0' ? "all" : v;
}

int64_t forced_compute_units() {
  const char* v = std::getenv("SPARKLE_GL_COMPUTE_UNITS");
  return v == nullptr ? 0 : std::atoll(v);
}

}  // namespace

TEST_CASE("the variant list is stable, named uniquely and has one default that plan_conv2d uses") {
  Device dev;
  for (sparkle_conv2d_desc d : space_descriptors()) {
    CAPTURE(describe(d));
    const auto a = variants(dev, d), b = variants(dev, d);
    REQUIRE(a.size() >= 2);
    REQUIRE(a.size() == b.size());
    std::set<std::string> names;
    int defaults = 0;
    std::string default_name;
    for (size_t i = 0; i < a.size(); ++i) {
      CAPTURE(a[i].name);
      CHECK(std::string(a[i].name) == b[i].name);
      CHECK(names.insert(a[i].name).second);
      CHECK(std::strlen(a[i].family) > 0);
      CHECK(a[i].group_size > 0);
      CHECK(a[i].work_groups > 0);
      CHECK(a[i].flops > 0);
      CHECK(a[i].efficiency > 0);
      CHECK(a[i].efficiency <= 1);
      CHECK(a[i].passes >= 1);
      if (a[i].flags & SPARKLE_VARIANT_DEFAULT) {
        ++defaults;
        default_name = a[i].name;
      }
    }
    CHECK(defaults == 1);
    sparkle_plan plan = nullptr;
    REQUIRE_OK(g_plugin->plan_conv2d(dev.handle, &d, &plan));
    CHECK(std::string(g_plugin->plan_kernel_name(plan)) == default_name);
    g_plugin->plan_destroy(plan);
    // An index past the end is an error, not a crash.
    sparkle_variant_info info{};
    info.struct_size = sizeof info;
    CHECK(take(g_plugin->conv2d_variant_info(dev.handle, &d, a.size(), &info)).code ==
          SPARKLE_NOT_FOUND);
    CHECK(take(g_plugin->plan_conv2d_variant(dev.handle, &d, a.size(), &plan)).code ==
          SPARKLE_NOT_FOUND);
  }
}

TEST_CASE("every variant the tuner can pick matches the float64 reference") {
  Device dev;
  const uint64_t seed = fresh_seed();
  MESSAGE("data seed " << seed << " (replay with SPARKLE_TEST_SEED)");
  std::mt19937_64 rng(seed);
  const std::string selection = variant_selection();
  const bool sample = selection == "families";
  const bool filter = selection != "all" && !sample;
  size_t total = 0;
  std::set<std::string> flavours_seen;
  std::map<std::string, double> worst_by_family;
  for (sparkle_conv2d_desc d : space_descriptors()) {
    CAPTURE(describe(d));
    const auto list = variants(dev, d);
    std::vector<size_t> chosen;
    std::set<std::string> flavours;
    for (size_t i = 0; i < list.size(); ++i) {
      if (filter && std::string(list[i].name).find(selection) == std::string::npos) continue;
      if (!sample || flavours.insert(flavour(list[i])).second) chosen.push_back(i);
      flavours_seen.insert(flavour(list[i]));
    }
    const auto x = random_tensor(d.n * d.c * d.h * d.w, rng);
    const auto w = random_tensor(d.k * (d.c / d.groups) * d.r * d.s, rng);
    const auto b = random_tensor(d.has_bias ? d.k : 0, rng);
    const std::vector<float> poison(static_cast<size_t>(d.n * d.k * d.out_h * d.out_w),
                                    std::numeric_limits<float>::quiet_NaN());
    Buffers buf;
    buf.x = upload(dev, x);
    buf.w = upload(dev, w);
    if (d.has_bias) buf.b = upload(dev, b);
    buf.y = upload(dev, poison);
    // Plans (compiles) are made on two threads, so llvmpipe compiles two at
    // a time; runs stay on this thread.
    std::vector<sparkle_plan> plans(chosen.size(), nullptr);
    std::vector<std::string> errors(chosen.size());
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (size_t j; (j = next.fetch_add(1)) < chosen.size();) {
        const Status st = take(g_plugin->plan_conv2d_variant(dev.handle, &d, chosen[j], &plans[j]));
        if (st.code != SPARKLE_OK) errors[j] = st.message;
      }
    };
    std::thread helper(worker);
    worker();
    helper.join();
    for (size_t j = 0; j < chosen.size(); ++j) {
      const sparkle_variant_info& v = list[chosen[j]];
      CAPTURE(v.name);
      INFO(errors[j]);
      REQUIRE(plans[j] != nullptr);
      CHECK(std::string(g_plugin->plan_kernel_name(plans[j])) == v.name);
      REQUIRE_OK(g_plugin->buffer_upload(buf.y, 0, poison.data(), poison.size() * 4));
      sparkle_fence fence = nullptr;
      REQUIRE_OK(g_plugin->enqueue_conv2d(plans[j], buf.x, buf.w, buf.b, buf.y, &fence));
      REQUIRE_OK(g_plugin->fence_wait(fence));
      g_plugin->fence_destroy(fence);
      std::vector<float> y(poison.size());
      REQUIRE_OK(g_plugin->buffer_download(buf.y, 0, y.data(), y.size() * 4));
      const auto e = compare_with_reference(d, x, w, b, y);
      CAPTURE(e.worst_index);
      CHECK(e.non_finite == 0);
      CHECK(e.max_rel_error <= 1e-5);
      worst_by_family[v.family] = std::max(worst_by_family[v.family], e.max_rel_error);
      g_plugin->plan_destroy(plans[j]);
      ++total;
    }
  }
  MESSAGE(total << " variants run, flavours offered: " << flavours_seen.size());
  for (const auto& [family, worst] : worst_by_family)
    MESSAGE("worst relative error of " << family << ": " << worst);
  // The space must reach every algorithm; on a device with subgroups the
  // subgroup flavour too.
  if (!filter) {
    for (const char* family : {"naive", "gemm", "winograd2", "winograd4"}) {
      CHECK_MESSAGE(worst_by_family.count(family) == 1, family);
    }
  }
  // On a device the size of a big GPU the small layers get split-K variants.
  if (forced_compute_units() >= 64) CHECK(flavours_seen.count("gemm+splitk") == 1);
  CHECK(total > 0);
}

int main(int argc, char** argv) { return gltest::run_plugin_tests(argc, argv, &kHost); }
