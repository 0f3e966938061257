// sparkle::Tuner: measures a backend's kernel variants for an op on one
// device and keeps the fastest (core/tune). Variants come from the plugin
// ABI (1.4: conv2d_variant_count / _info, plan_conv2d_variant); a model of
// occupancy and waves against the device's compute units orders and prunes
// them; the survivors are timed with the device's timer over back-to-back
// runs that keep it busy (so its clocks stay up), each result checked
// against a float64 reference first. The best median wins; every timing is
// kept in the cache folder (<cache>/tuning-v1/), and later plans of the op
// on that device use the winner (Engine and Tuner alike).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <sparkle/conv2d.hpp>
#include <sparkle/engine.hpp>
#include <string>
#include <vector>

namespace sparkle {

// One step of a tuning run, for progress output.
struct TuneProgress {
  size_t measured = 0;    // variants measured (or failed) so far
  size_t candidates = 0;  // variants that will be measured at most
  std::string variant;    // the one just measured
  double median_ms = -1;  // its median (-1: it failed)
  double elapsed_s = 0;   // since this op's tuning started
};

struct TuneOptions {
  // A backend ("opengl": its device 0) or NAME:INDEX. Empty: the first
  // device that offers kernel variants.
  std::string device;
  double budget_s = 0;          // wall-clock seconds for this op (0: no limit)
  int repeat = 10;              // timed runs per variant and round (median over all)
  int rounds = 2;               // round 2 re-times the best few, against clock drift
  double busy_ms = 25;          // device time of untimed back-to-back runs before each timing
  int max_candidates = 0;       // measure at most this many variants (0: all that survive pruning)
  double prune_factor = 4;      // skip variants the model predicts this much slower than its best
  bool retune = false;          // measure even when a valid record exists
  int check_samples = 256;      // outputs compared with the float64 reference per variant
  double max_rel_error = 1e-5;  // per output, relative to |bias| + sum |x * w|
  uint64_t seed = 1;            // of the random data
  std::function<void(const TuneProgress&)> progress;
};

struct VariantTiming {
  std::string name, family;
  bool is_default = false;  // the plugin's first guess
  double predicted = 0;     // model cost relative to the best prediction (1 = best)
  bool measured = false;    // false: pruned by the model or the budget
  std::vector<double> samples_ms;
  double median_ms = -1, min_ms = -1, max_ms = -1;
  double plan_ms = 0;         // planning (compiling) it
  double max_rel_error = -1;  // of the checked outputs
  std::string error;          // why it was dropped (did not build, wrong result)
};

struct TuneResult {
  std::string device, fingerprint, op;
  std::string winner;
  double winner_ms = -1;
  std::string default_variant;
  double default_ms = -1;    // -1 when the default was not measured
  std::string timer;         // "device" (GPU timer queries) or "wall"
  bool from_record = false;  // nothing measured: a valid record was found
  double seconds = 0;
  std::vector<VariantTiming> variants;  // every variant offered, measured or not
};

// The plan the engine would use (the tuned winner, else the plugin's first
// guess), timed like a variant: device-resident data, busy warm-up,
// back-to-back timed runs, outputs checked.
struct MeasureResult {
  std::string device, kernel, op, timer;
  bool tuned = false;  // a tuning record chose the kernel
  std::vector<double> samples_ms;
  double median_ms = -1, min_ms = -1, max_ms = -1;
  double max_rel_error = -1;
  bool correct = false;  // every checked output within max_rel_error and finite
};

class Tuner {
 public:
  Tuner();
  explicit Tuner(const EngineOptions& options);
  ~Tuner();
  Tuner(const Tuner&) = delete;
  Tuner& operator=(const Tuner&) = delete;

  std::vector<DeviceProperties> devices() const;

  // Tunes desc on options.device (throws sparkle::Error: unknown device,
  // unsupported op, no variant correct).
  TuneResult tune(const Conv2dDesc& desc, const TuneOptions& options);
  MeasureResult measure(const Conv2dDesc& desc, const TuneOptions& options);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// For the selector's feedback loop: the tuner's measured median of the
// variant that plans of desc on the device with this fingerprint now use
// (the record's winner), or nullopt when the op was never tuned there.
// flags: the SPARKLE_CONV2D_* bits the calls pass (constant weights).
std::optional<double> tuned_median_ms(const std::string& fingerprint, const Conv2dDesc& desc,
                                      uint32_t flags = 0);

}  // namespace sparkle
