// The measured tuner (sparkle::Tuner) on a simulated device whose variants
// have known speeds, one of them fast but wrong: the fastest correct variant
// wins, the wrong one is dropped with the reason, the model prunes the one
// it predicts hopeless, the record is used by later tuner calls and by the
// engine's plans, and the selector can read the winner's time. Runs on a
// private SPARKLE_CACHE_DIR.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <sparkle/sparkle.hpp>
#include <string>

#include "common/test_data.hpp"

using namespace sparkle;

namespace {

// Before the first Tuner or Engine: the record store reads it once.
void private_environment() {
  static const bool done = [] {
    char tmpl[] = "/tmp/sparkle-tuner-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    setenv("SPARKLE_CACHE_DIR", tmpl, 1);
    // 10 GFLOPS, 0.01 ms latency, offering variants.
    setenv("SPARKLE_SIM_DEVICES", "tunable:10:0.01:variants;plain:10:0.01", 1);
    unsetenv("SPARKLE_TUNING_DISABLE");
    return true;
  }();
  (void)done;
}

EngineOptions sim_only() {
  EngineOptions o;
  o.plugin_paths = {SPARKLE_SIM_PLUGIN_DIR};
  o.use_default_paths = false;
  return o;
}

Conv2dDesc layer(int64_t k) {
  Conv2dDesc d;
  d.n = 2, d.c = 8, d.h = d.w = 9, d.k = k, d.r = d.s = 3;
  d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 1;
  d.has_bias = true;
  return d;
}

TuneOptions quick(const char* device) {
  TuneOptions o;
  o.device = device;
  o.repeat = 3;
  o.rounds = 2;
  o.busy_ms = 0.5;
  return o;
}

const VariantTiming& find(const TuneResult& r, const std::string& name) {
  for (const auto& v : r.variants)
    if (v.name == name) return v;
  FAIL("no variant " << name);
  return r.variants.front();
}

}  // namespace

TEST_CASE("the fastest correct variant wins; a wrong one and a hopeless one do not run") {
  private_environment();
  Tuner tuner(sim_only());
  const Conv2dDesc d = layer(12);
  const TuneResult r = tuner.tune(d, quick("sim:0"));
  CHECK(r.device == "sim:0");
  CHECK_FALSE(r.from_record);
  CHECK(r.winner == "sim_fast");
  CHECK(r.default_variant == "sim_default");
  REQUIRE(r.default_ms > 0);
  CHECK(r.winner_ms == doctest::Approx(r.default_ms * 0.5).epsilon(0.01));
  CHECK(r.timer == "device");
  const auto& wrong = find(r, "sim_fast_wrong");
  CHECK(wrong.measured);
  CHECK(wrong.error.find("wrong result") != std::string::npos);
  CHECK(wrong.max_rel_error > 1e-5);
  CHECK_FALSE(find(r, "sim_hopeless").measured);  // pruned: predicted 100x the best
  CHECK(find(r, "sim_hopeless").predicted > 4);
  const auto& fast = find(r, "sim_fast");
  // Round 2 re-times the leaders: more samples than one round's repeat.
  CHECK(fast.samples_ms.size() == 6);
  CHECK(fast.max_rel_error >= 0);
  CHECK(fast.max_rel_error < 1e-5);
  CHECK(find(r, "sim_slow").samples_ms.size() >= 3);

  // The record: the next tune measures nothing, the selector can read it.
  const TuneResult again = tuner.tune(d, quick("sim:0"));
  CHECK(again.from_record);
  CHECK(again.winner == "sim_fast");
  CHECK(find(again, "sim_fast").samples_ms.size() == 6);  // every timing was kept
  const auto fp = tuner.devices()[0].fingerprint;
  REQUIRE(tuned_median_ms(fp, d).has_value());
  CHECK(*tuned_median_ms(fp, d) == doctest::Approx(r.winner_ms));
  CHECK_FALSE(tuned_median_ms(fp, layer(13)).has_value());
  CHECK(std::filesystem::exists(std::string(std::getenv("SPARKLE_CACHE_DIR")) + "/tuning-v1/" + fp +
                                ".txt"));
  TuneOptions retune = quick("sim:0");
  retune.retune = true;
  CHECK_FALSE(tuner.tune(d, retune).from_record);
}

TEST_CASE("plans use the tuned winner, in the engine too, unless tuning records are off") {
  private_environment();
  const Conv2dDesc d = layer(16);
  {
    Tuner tuner(sim_only());
    tuner.tune(d, quick("sim:0"));
    const MeasureResult m = tuner.measure(d, quick("sim:0"));
    CHECK(m.tuned);
    CHECK(m.kernel == "sim_fast");
    CHECK(m.correct);
    CHECK(m.samples_ms.size() == 6);
    CHECK(m.median_ms > 0);
  }
  std::mt19937_64 rng(test::fresh_seed());
  const auto x = test::random_tensor(d.input_elements(), rng);
  const auto w = test::random_tensor(d.weight_elements(), rng);
  const auto b = test::random_tensor(d.bias_elements(), rng);
  auto y = test::poisoned(d.output_elements());
  {
    Engine engine(sim_only());
    RunOptions o;
    o.device = "sim:0";
    CHECK(engine.conv2d(d, x, w, b, y, o).kernel == "sim_fast");
    CHECK(test::compare_with_reference(d, x, w, b, y).max_rel_error < 1e-5);
  }
  setenv("SPARKLE_TUNING_DISABLE", "1", 1);
  {
    Engine engine(sim_only());
    RunOptions o;
    o.device = "sim:0";
    CHECK(engine.conv2d(d, x, w, b, y, o).kernel == "sim_default");
  }
  unsetenv("SPARKLE_TUNING_DISABLE");
}

TEST_CASE("a budget or a candidate limit stops measuring; a device without variants is timed") {
  private_environment();
  Tuner tuner(sim_only());
  TuneOptions o = quick("sim:0");
  o.max_candidates = 2;
  const TuneResult r = tuner.tune(layer(20), o);
  int measured = 0;
  for (const auto& v : r.variants) measured += v.measured ? 1 : 0;
  CHECK(measured == 2);
  CHECK(find(r, "sim_default").measured);  // the baseline is always measured first

  // No variants: its one plan is measured and recorded under its own name.
  const TuneResult plain = tuner.tune(layer(20), quick("sim:1"));
  CHECK(plain.winner == "simulated_direct");
  CHECK(plain.winner_ms > 0);
  REQUIRE(plain.variants.size() == 1);

  CHECK_THROWS_AS(tuner.tune(layer(20), quick("nope")), Error);
  CHECK_THROWS_AS(tuner.tune(layer(20), quick("auto")), Error);
}

TEST_CASE("the selector starts from the tuner's measured time of an op") {
  private_environment();
  const Conv2dDesc d = layer(24);
  double tuned_ms = 0;
  {
    Tuner tuner(sim_only());
    const TuneResult r = tuner.tune(d, quick("sim:0"));
    REQUIRE(r.winner_ms > 0);
    tuned_ms = r.winner_ms;
  }
  const auto seeded = tuned_median_ms(Engine(sim_only()).devices().at(0).fingerprint, d, 0);
  REQUIRE(seeded.has_value());
  CHECK(*seeded == doctest::Approx(tuned_ms));
  // Under auto, before any call of this op, the tuned device's line says
  // its estimate is learned (one sample: the tuner's), not the cost model.
  Engine engine(sim_only());
  std::vector<float> x(d.input_elements(), 0.5f), w(d.weight_elements(), 0.25f),
      b(d.bias_elements(), 0.1f), y(d.output_elements());
  RunOptions o;
  o.device = "auto";
  o.explain = true;
  const RunResult r = engine.conv2d(d, x, w, b, y, o);
  bool found = false;
  for (const auto& line : r.explanation)
    if (line.find("sim:0: learned") != std::string::npos) found = true;
  CAPTURE(r.explanation.size());
  CHECK(found);
}
