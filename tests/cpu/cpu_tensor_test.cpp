// CPU tensors in the backend's blocked layouts (nChw16c on AVX-512, nChw8c
// on AVX2): NCHW uploaded, convolutions chained on the device, NCHW
// downloaded, against the float64 reference and the host-memory path, with
// whatever SPARKLE_CPU_KERNEL and SPARKLE_CPU_ISA the test entry forces.
#include <doctest/doctest.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/test_data.hpp"

using namespace sparkle;

namespace {

constexpr double kTolerance = 1e-5;

Conv2dDesc make(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t r, int64_t s,
                int64_t stride, int64_t pad, bool bias = false, bool relu = false) {
  Conv2dDesc d;
  d.n = n, d.c = c, d.h = h, d.w = w, d.k = k, d.r = r, d.s = s;
  d.stride_h = d.stride_w = stride;
  d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = pad;
  d.has_bias = bias;
  d.relu = relu;
  return d;
}

Conv2dDesc next(const Conv2dDesc& prev, int64_t k, int64_t rs, int64_t stride, int64_t pad,
                bool bias = false, bool relu = false) {
  return make(prev.n, prev.k, prev.out_h(), prev.out_w(), k, rs, rs, stride, pad, bias, relu);
}

RunOptions on_cpu(bool constant) {
  RunOptions o;
  o.device = "cpu";
  o.constant_weights = constant;
  return o;
}

}  // namespace

TEST_CASE("CPU tensors hold NCHW data exactly, whatever their channel count") {
  Engine engine;
  std::mt19937_64 rng(test::fresh_seed());
  for (int64_t c : {1, 3, 8, 16, 20, 33}) {
    CAPTURE(c);
    const std::vector<int64_t> shape = {2, c, 5, 7};
    const auto data = test::random_tensor(2 * c * 35, rng);
    Tensor t = engine.tensor(shape, data, "cpu");
    auto back = test::poisoned(2 * c * 35);
    t.download(back);
    CHECK(back == data);
  }
}

TEST_CASE("a chain of convs on CPU tensors matches the reference and the host path") {
  Engine engine;
  const uint64_t seed = test::fresh_seed();
  MESSAGE("data seed " << seed << " (replay with SPARKLE_TEST_SEED)");
  std::mt19937_64 rng(seed);
  // A dense 3-channel input, a padded last block (20 and 33 channels), a
  // Winograd-shaped 3x3, strides, an odd 5x2 filter and a 1x1 with ReLU.
  std::vector<Conv2dDesc> chain;
  chain.push_back(make(2, 3, 23, 19, 20, 7, 7, 2, 3, true, true));
  chain.push_back(next(chain.back(), 33, 3, 1, 1, true, true));
  chain.push_back(next(chain.back(), 24, 3, 1, 1));
  chain.push_back(next(chain.back(), 16, 1, 2, 0, true));
  Conv2dDesc odd = next(chain.back(), 40, 1, 1, 0);
  odd.r = 5, odd.s = 2, odd.pad_top = 2, odd.pad_bottom = 1, odd.pad_right = 1;
  chain.push_back(odd);
  chain.push_back(next(chain.back(), 17, 1, 1, 0, true, true));
  for (bool constant : {false, true}) {
    CAPTURE(constant);
    std::vector<std::vector<float>> ws, bs;
    for (const auto& d : chain) {
      ws.push_back(test::random_tensor(d.weight_elements(), rng));
      bs.push_back(test::random_tensor(d.bias_elements(), rng));
    }
    const auto x = test::random_tensor(chain[0].input_elements(), rng);

    // On tensors: uploaded once, every layer submitted, nothing downloaded
    // until the end (then every intermediate, to check each layer).
    std::vector<Tensor> acts = {
        engine.tensor({chain[0].n, chain[0].c, chain[0].h, chain[0].w}, x, "cpu")};
    std::vector<Tensor> tws, tbs;
    for (size_t i = 0; i < chain.size(); ++i) {
      const auto& d = chain[i];
      tws.push_back(engine.tensor({d.k, d.c, d.r, d.s}, ws[i], "cpu"));
      tbs.push_back(d.has_bias ? engine.tensor({d.k}, bs[i], "cpu") : Tensor());
      acts.push_back(engine.tensor({d.n, d.k, d.out_h(), d.out_w()}, "cpu"));
      engine.submit(d, acts[i], tws[i], tbs[i], acts[i + 1], on_cpu(constant));
    }
    std::vector<float> in = x;
    for (size_t i = 0; i < chain.size(); ++i) {
      const auto& d = chain[i];
      CAPTURE(d.to_string());
      auto out = test::poisoned(d.output_elements());
      acts[i + 1].download(out);
      const auto cmp = test::compare_with_reference(d, in, ws[i], bs[i], out);
      CHECK(cmp.non_finite == 0);
      CHECK(cmp.max_rel_error <= kTolerance);
      // The same layer through host memory (NCHW spans) agrees too.
      auto host = test::poisoned(d.output_elements());
      engine.conv2d(d, in, ws[i], bs[i], host, on_cpu(constant));
      const auto hcmp = test::compare_with_reference(d, in, ws[i], bs[i], host);
      CHECK(hcmp.max_rel_error <= kTolerance);
      in = out;
    }
  }
}

TEST_CASE("tensors shaped unlike the descriptor are read and written as dense data") {
  Engine engine;
  std::mt19937_64 rng(test::fresh_seed());
  const Conv2dDesc d = make(1, 24, 9, 11, 20, 3, 3, 1, 1, true);
  const auto x = test::random_tensor(d.input_elements(), rng);
  const auto w = test::random_tensor(d.weight_elements(), rng);
  const auto b = test::random_tensor(d.bias_elements(), rng);
  // x as (1, 24, 99, 1) and flat, y flat and as (1, 20, 11, 9): the blocked
  // layout of one shape is not the descriptor's, so the plan converts.
  for (int variant = 0; variant < 2; ++variant) {
    CAPTURE(variant);
    Tensor tx = variant == 0 ? engine.tensor({1, 24, 99, 1}, x, "cpu")
                             : engine.tensor({d.input_elements()}, x, "cpu");
    Tensor tw = engine.tensor({d.weight_elements()}, w, "cpu");
    Tensor tb = engine.tensor({1, d.k, 1, 1}, b, "cpu");
    Tensor ty = variant == 0 ? engine.tensor({d.output_elements()}, "cpu")
                             : engine.tensor({1, 20, 11, 9}, "cpu");
    engine.conv2d(d, tx, tw, tb, ty, on_cpu(false));
    auto y = test::poisoned(d.output_elements());
    ty.download(y);
    const auto cmp = test::compare_with_reference(d, x, w, b, y);
    CHECK(cmp.non_finite == 0);
    CHECK(cmp.max_rel_error <= kTolerance);
  }
}

TEST_CASE("a layer large enough to be measured picks a kernel and stays correct") {
  // 2 * 32 * 32 * 9 * 40 * 40 = 29 MFLOP: above the plan's threshold, so
  // without SPARKLE_CPU_KERNEL every applicable kind is timed on the first
  // call of each operand layout, and later calls reuse the winner.
  Engine engine;
  std::mt19937_64 rng(test::fresh_seed());
  const Conv2dDesc d = make(1, 32, 40, 40, 32, 3, 3, 1, 1, true, true);
  const auto x = test::random_tensor(d.input_elements(), rng);
  const auto w = test::random_tensor(d.weight_elements(), rng);
  const auto b = test::random_tensor(d.bias_elements(), rng);
  Tensor tx = engine.tensor({d.n, d.c, d.h, d.w}, x, "cpu");
  Tensor tw = engine.tensor({d.k, d.c, d.r, d.s}, w, "cpu");
  Tensor tb = engine.tensor({d.k}, b, "cpu");
  Tensor ty = engine.tensor({d.n, d.k, d.out_h(), d.out_w()}, "cpu");
  for (int call = 0; call < 2; ++call) {
    CAPTURE(call);
    engine.conv2d(d, tx, tw, tb, ty, on_cpu(true));
    auto y = test::poisoned(d.output_elements());
    ty.download(y);
    CHECK(test::compare_with_reference(d, x, w, b, y).max_rel_error <= kTolerance);
    auto host = test::poisoned(d.output_elements());
    engine.conv2d(d, x, w, b, host, on_cpu(true));
    CHECK(test::compare_with_reference(d, x, w, b, host).max_rel_error <= kTolerance);
  }
}

TEST_CASE("convs called from TBB tasks and from arenas of other widths finish and stay correct") {
  // Engine::conv2d may run on the caller's thread (the executor's inline
  // path). A caller that is itself a TBB task must not take its sibling
  // tasks while it waits inside the call: they call conv2d on the same
  // device, queue behind it, and would never let it finish. And a plan with
  // constant weights called from arenas of 1 and 2 threads blocks its
  // kernels differently for each, so each needs its own packed weights.
  Engine engine;
  std::mt19937_64 rng(test::fresh_seed());
  const Conv2dDesc d = make(1, 32, 20, 20, 48, 3, 3, 1, 1, true, false);
  const auto x = test::random_tensor(d.input_elements(), rng);
  const auto w = test::random_tensor(d.weight_elements(), rng);
  const auto b = test::random_tensor(d.bias_elements(), rng);
  std::vector<std::vector<float>> ys(16, test::poisoned(d.output_elements()));
  {
    // Eight threads even on two cores: a waiting thread then finds sibling
    // tasks to take, as on the 16-core machine.
    tbb::global_control threads(tbb::global_control::max_allowed_parallelism, 8);
    tbb::task_arena(8).execute([&] {
      tbb::parallel_for(size_t{0}, ys.size(),
                        [&](size_t i) { engine.conv2d(d, x, w, b, ys[i], on_cpu(true)); });
    });
  }
  for (size_t i = 0; i < ys.size(); ++i) {
    CAPTURE(i);
    CHECK(test::compare_with_reference(d, x, w, b, ys[i]).max_rel_error <= kTolerance);
  }
  for (int width : {1, 2, 1, 2}) {
    CAPTURE(width);
    auto y = test::poisoned(d.output_elements());
    tbb::task_arena(width).execute([&] { engine.conv2d(d, x, w, b, y, on_cpu(true)); });
    CHECK(test::compare_with_reference(d, x, w, b, y).max_rel_error <= kTolerance);
  }
}
