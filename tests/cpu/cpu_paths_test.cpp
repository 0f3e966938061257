// The CPU backend's code paths (packed patches per task or shared, direct
// on the padded input's phase planes, the batch folded into the columns,
// 1x1 without padding, tail panels, groups and dilation) against the
// float64 reference, with tilings chosen for 1, 2 and 16 threads (a
// task_arena of that size), and weights refilled in place between calls of
// the same plan, with and without constant weights.
#include <doctest/doctest.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/test_data.hpp"

using namespace sparkle;

namespace {

constexpr double kTolerance = 1e-5;

Conv2dDesc make(int64_t c, int64_t hw, int64_t k, int64_t rs, int64_t stride, int64_t pad,
                int64_t groups = 1, int64_t dilation = 1, bool bias = false, bool relu = false) {
  Conv2dDesc d;
  d.n = 2, d.c = c, d.h = hw, d.w = hw, d.k = k, d.r = rs, d.s = rs;
  d.stride_h = d.stride_w = stride;
  d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = pad;
  d.groups = groups;
  d.dilation_h = d.dilation_w = dilation;
  d.has_bias = bias;
  d.relu = relu;
  return d;
}

// 7x5 filter, stride 2 down and 3 across, padding 3/1 on top/left and 0/2
// on bottom/right, dilation 1 x 2: every phase plane and offset differs.
Conv2dDesc asymmetric_strided() {
  Conv2dDesc d = make(5, 61, 12, 1, 1, 0, 1, 1, true);
  d.w = 97, d.r = 7, d.s = 5;
  d.stride_h = 2, d.stride_w = 3;
  d.pad_top = 3, d.pad_left = 1, d.pad_bottom = 0, d.pad_right = 2;
  d.dilation_w = 2;
  return d;
}

// 81 output pixels (not a multiple of any panel width), 3 images: the
// batch is folded into the GEMM's columns, and panels straddle images.
Conv2dDesc batch_folded() {
  Conv2dDesc d = make(20, 9, 24, 3, 1, 1, 1, 1, true, true);
  d.n = 3;
  return d;
}

}  // namespace

TEST_CASE("every cpu code path matches the reference at 1, 2 and 16 threads") {
  const std::vector<Conv2dDesc> descs = {
      make(64, 14, 128, 3, 2, 1),                   // packed, split over K: shared packing
      make(32, 28, 48, 3, 1, 1, 1, 1, true, true),  // direct stride 1, bias + relu
      make(32, 7, 64, 3, 1, 1),                     // stride 1 but narrow: packed
      make(96, 7, 200, 1, 1, 0, 1, 1, true),        // 1x1, 49 pixels: tail panels
      make(64, 15, 64, 1, 2, 0),                    // 1x1 stride 2
      make(3, 32, 16, 7, 2, 3),                     // conv1-like
      make(16, 20, 32, 3, 1, 2, 4, 2),              // grouped, dilated, direct
      make(600, 9, 40, 3, 1, 1),                    // several reduction blocks
      make(3, 64, 16, 7, 2, 3),                     // conv1-like, direct on phase planes
      make(4, 45, 8, 6, 2, 2, 1, 1, true, true),    // even filter, stride 2, direct
      asymmetric_strided(),                         // stride 2 x 3, uneven padding, direct
      batch_folded(),                               // 3 images of 81 pixels in one GEMM
      make(8, 5, 20, 3, 1, 4, 1, 1, true, true),    // padding wider than the filter: rows
                                                    // and tiles entirely in the padding
      make(40, 13, 33, 5, 1, 2, 1, 3),              // dilation 3: taps straddle the edges
  };
  const uint64_t seed = test::fresh_seed();
  MESSAGE("data seed " << seed << " (replay with SPARKLE_TEST_SEED)");
  std::mt19937_64 rng(seed);
  Engine engine;
  for (int threads : {1, 2, 16}) {
    tbb::task_arena arena(threads);
    for (const auto& d : descs)
      for (bool constant : {false, true}) {
        CAPTURE(threads);
        CAPTURE(constant);
        CAPTURE(d.to_string());
        auto x = test::random_tensor(d.input_elements(), rng);
        auto b = test::random_tensor(d.bias_elements(), rng);
        std::vector<float> w(static_cast<size_t>(d.weight_elements()));
        for (int round = 0; round < 2; ++round) {
          // Fresh weights each round in the same buffer, same plan: nothing
          // may be reused from the previous call's weights.
          const auto fresh = test::random_tensor(d.weight_elements(), rng);
          std::copy(fresh.begin(), fresh.end(), w.begin());
          auto y = test::poisoned(d.output_elements());
          RunOptions opts;
          opts.device = "cpu";
          // With constant weights the backend keeps a packed copy keyed by
          // w's address; new values in the same buffer must be noticed
          // (here every sampled element changes).
          opts.constant_weights = constant;
          RunResult result;
          arena.execute([&] { result = engine.conv2d(d, x, w, b, y, opts); });
          const auto cmp = test::compare_with_reference(d, x, w, b, y);
          CAPTURE(result.kernel);
          CAPTURE(cmp.worst_index);
          CHECK(cmp.non_finite == 0);
          CHECK(cmp.max_rel_error <= kTolerance);
        }
      }
  }
}
