// Shared pieces of the sparkle-run subcommands: usage errors, JSON text,
// random tensors and timing statistics.
#pragma once

#include <boost/program_options.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sparkle/sparkle.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace sparkle::cli {

// Bad command-line input that is not a sparkle::Error (exit status 2).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

int run_devices(int argc, char** argv);
int run_conv2d(int argc, char** argv);
int run_bench(int argc, char** argv);
int run_cache(int argc, char** argv);
int run_stream(int argc, char** argv);
int run_tune(int argc, char** argv);
// JSON objects keep their keys in the order written (nlohmann::json sorts).
using Json = nlohmann::ordered_json;

Json cache_stats_json(const CacheStats& s);

// Parses a subcommand's options. Tokens that are no option's value are
// refused by name ("--pad 0 1": "unexpected argument '1'") instead of being
// dropped; `positional` names the options that take positional tokens, in
// order (cache's action).
boost::program_options::variables_map parse_options(
    int argc, char** argv, const boost::program_options::options_description& options,
    const std::vector<std::string>& positional = {});

// One integer option, by the one integer grammar (sparkle/text.hpp).
int64_t int_option(const boost::program_options::variables_map& vm, const std::string& name);

// A JSON string of arbitrary bytes: invalid UTF-8 (a file or layer name
// in another encoding) is written as \xNN text, so the output stays valid
// JSON (RFC 8259 requires UTF-8) and still shows the bytes.
Json json_text(const std::string& s);
// Prints one JSON document on its own line.
void print_json(const Json& j);
// The same rules for output assembled as text: a JSON string (invalid
// UTF-8 escaped as above) and a number (NaN and infinities as null).
std::string json_string(const std::string& s);
std::string json_number(double v);

// Uniform in [-1, 1), reproducible from seed.
std::vector<float> random_tensor(int64_t count, uint64_t seed);
double median(std::vector<double> values);

struct Timing {
  RunResult last;
  double ms = 0;  // median over the timed runs
  // Fastest and slowest timed run on the clock of `ms`; -1 where only an
  // aggregate was measured (bench --resident).
  double min_ms = -1, max_ms = -1;
  bool device_timed = false;  // device timer (GPU queries) rather than wall time
  double wall_ms = 0;         // median wall time per run
  double kernel_ms = -1;      // median device time per run, -1 when not every run had one
};
// warmup untimed runs, then repeat timed ones. Device time is used only when
// every timed run had it, so that the median never mixes the two clocks.
Timing time_conv2d(Engine& engine, const Conv2dDesc& d, const std::vector<float>& x,
                   const std::vector<float>& w, const std::vector<float>& bias,
                   std::vector<float>& y, const RunOptions& run, int64_t warmup, int64_t repeat,
                   bool wall_only = false);

// One layer of `bench --resident`: its tensors, made on the device that runs
// it before any timing.
struct ResidentLayer {
  Conv2dDesc desc;
  std::string device;
  Tensor x, w, bias, y;
};
// Places each layer (the named device, or under auto the one the selector
// expects fastest with resident operands) and fills its tensors.
std::vector<ResidentLayer> place_layers(Engine& engine, const std::vector<Layer>& layers,
                                        const RunOptions& run, uint64_t seed, bool quiet);
// Keeps the device busy with `submit_one` (up to three in flight) for `ms`:
// GPUs drop their clocks within milliseconds of idling and take a second or
// more of steady work to raise them again (345 to 1980 MHz on the H200).
void spin_up(const std::function<Future()>& submit_one, double ms);

// warmup untimed runs and `repeat` timed ones, each set submitted back to
// back and waited for once: wall = elapsed / repeat, kernel = median device
// time.
Timing time_resident(Engine& engine, const ResidentLayer& layer, int64_t warmup, int64_t repeat,
                     bool wall_only);

// `passes` network passes (every layer `count` times, in order) on resident
// tensors, all submitted back to back and waited for once, as an
// application would run the network: wall per pass against the sum of the
// device times of its convolutions.
struct PassTiming {
  double wall_ms = 0;
  double kernel_ms = 0;
  bool kernel_timed = true;  // every convolution had a device time
};
PassTiming time_passes(Engine& engine, const std::vector<ResidentLayer>& placed,
                       const std::vector<Layer>& layers, int64_t passes);

// Refuses a tensor the host cannot hold now (sparkle::check_host_budget),
// naming it, so that a huge but representable shape fails cleanly instead
// of in the allocator or the OOM killer.
void check_fits_in_memory(const std::string& name, int64_t elements);

// --threads N (N >= 1): at most N threads for the CPU backend in this
// process, through oneTBB's global_control (the plugin shares libtbb with
// us). Empty when the option was not given; keep the result alive.
std::shared_ptr<void> limit_threads(const boost::program_options::variables_map& vm);

// Progress of a run over `total` items on stderr. On a terminal: one line,
// rewritten after each item, with an estimate of the time left (from the
// work done so far, e.g. FLOPs); otherwise one plain line per item, as
// logs and scripts want. Nothing when quiet.
class Progress {
 public:
  Progress(size_t total, double total_work, bool quiet);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  // Item `index` (0-based) is done, costing `work`; `line` describes it.
  void done(size_t index, double work, const std::string& line);

 private:
  size_t total_;
  double total_work_, work_ = 0;
  bool quiet_, terminal_;
  bool open_line_ = false;
  double start_s_;
};

// Bytes of `elements` floats (validate() has checked that this fits).
inline uint64_t float_bytes(int64_t elements) {
  return static_cast<uint64_t>(elements) * sizeof(float);
}

// The ResNet-50 v1.5 suite shipped inside the binary (bench/resnet50_v1_5.shapes).
extern const char* const kResnet50Suite;

}  // namespace sparkle::cli
