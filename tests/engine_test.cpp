// Engine behaviour: argument checking, device names and errors, concurrency.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "common/test_data.hpp"

using namespace sparkle;

namespace {
Conv2dDesc small() {
  Conv2dDesc d;
  d.n = 1, d.c = 4, d.h = 6, d.w = 6, d.k = 3, d.r = 3, d.s = 3;
  return d;
}
// Runs body(t) on `count` threads at once and waits for all of them.
template <class Body>
void on_threads(int count, Body body) {
  std::vector<std::thread> threads;
  for (int t = 0; t < count; ++t) threads.emplace_back([&body, t] { body(t); });
  for (auto& t : threads) t.join();
}
}  // namespace

TEST_CASE("buffer sizes that disagree with the descriptor are rejected by name") {
  Engine engine;
  const auto d = small();
  std::vector<float> x(d.input_elements()), w(d.weight_elements()), y(d.output_elements());
  std::vector<float> short_x(x.size() - 1);
  CHECK_THROWS_WITH_AS(engine.conv2d(d, short_x, w, {}, y),
                       doctest::Contains("x has 143 elements, desc needs 144"), Error);
  std::vector<float> bias(3);
  CHECK_THROWS_WITH_AS(engine.conv2d(d, x, w, bias, y),
                       doctest::Contains("bias has 3 elements, desc needs 0"), Error);
  std::vector<float> long_y(y.size() + 1);
  CHECK_THROWS_WITH_AS(engine.conv2d(d, x, w, {}, long_y),
                       doctest::Contains("y has 49 elements, desc needs 48"), Error);
}

TEST_CASE("unknown device names are errors that list the available devices") {
  Engine engine;
  const auto d = small();
  std::vector<float> x(d.input_elements(), 1), w(d.weight_elements(), 1), y(d.output_elements());
  RunOptions opts;
  opts.device = "tpu";
  try {
    engine.conv2d(d, x, w, {}, y, opts);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::not_found);
    CHECK(std::string(e.what()).find("unknown device 'tpu'; available: cpu:0") !=
          std::string::npos);
  }
  opts.device = "cpu:7";
  CHECK_THROWS_WITH_AS(engine.conv2d(d, x, w, {}, y, opts),
                       doctest::Contains("unknown device 'cpu:7'"), Error);
  opts.device = "cpu:x";
  CHECK_THROWS_WITH_AS(engine.conv2d(d, x, w, {}, y, opts),
                       doctest::Contains("index 'x' is not a number"), Error);
}

TEST_CASE("auto picks a device that supports the op and names it") {
  Engine engine;
  const auto d = small();
  CHECK(!engine.resolve_device(d).empty());
  RunOptions opts;
  opts.device = "cpu";
  CHECK(engine.resolve_device(d, opts) == "cpu:0");
}

TEST_CASE("many threads can run convolutions on one engine at once") {
  Engine engine;
  std::atomic<int> failures{0};
  const uint64_t seed = test::fresh_seed();
  on_threads(8, [&](int t) {
    std::mt19937_64 rng(seed + t);
    Conv2dDesc d = small();
    d.c = 2 + t % 3, d.k = 1 + t, d.h = 5 + t, d.pad_top = t % 2;
    for (int i = 0; i < 20; ++i) {
      const auto x = test::random_tensor(d.input_elements(), rng);
      const auto w = test::random_tensor(d.weight_elements(), rng);
      auto y = test::poisoned(d.output_elements());
      RunOptions opts;
      opts.device = "cpu";
      engine.conv2d(d, x, w, {}, y, opts);
      const auto c = test::compare_with_reference(d, x, w, {}, y);
      if (c.non_finite != 0 || c.max_rel_error > 1e-5) ++failures;
    }
  });
  CHECK(failures == 0);
}

TEST_CASE("threads sharing one plan with constant weights each get their own weights' result") {
  // One descriptor (one plan, one packed-weight cache) and four weight
  // tensors, used by eight threads at once with constant_weights: every
  // result must match its own weights, never another thread's packed copy.
  Engine engine;
  Conv2dDesc d = small();
  d.c = 5, d.k = 7, d.h = 9, d.w = 8, d.r = d.s = 3, d.pad_top = d.pad_bottom = 1;
  std::mt19937_64 rng(test::fresh_seed());
  std::vector<std::vector<float>> weights;
  for (int i = 0; i < 4; ++i) weights.push_back(test::random_tensor(d.weight_elements(), rng));
  std::atomic<int> failures{0};
  const uint64_t seed = test::fresh_seed();
  on_threads(8, [&](int t) {
    std::mt19937_64 local(seed + t);
    for (int i = 0; i < 20; ++i) {
      const auto& w = weights[static_cast<size_t>((t + i) % 4)];
      const auto x = test::random_tensor(d.input_elements(), local);
      auto y = test::poisoned(d.output_elements());
      RunOptions opts;
      opts.device = "cpu";
      opts.constant_weights = true;
      engine.conv2d(d, x, w, {}, y, opts);
      const auto c = test::compare_with_reference(d, x, w, {}, y);
      if (c.non_finite != 0 || c.max_rel_error > 1e-5) ++failures;
    }
  });
  CHECK(failures == 0);
}
