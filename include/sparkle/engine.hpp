// sparkle::Engine: loads the backend plugins, lists their devices and runs
// convolutions on the device the caller names or the selector picks.
// Every method may be called from many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <sparkle/conv2d.hpp>
#include <sparkle/error.hpp>
#include <string>
#include <vector>

namespace sparkle {

struct EngineOptions {
  // Searched first, before SPARKLE_PLUGIN_PATH and the default folders.
  std::vector<std::string> plugin_paths;
  // Also search SPARKLE_PLUGIN_PATH, <exe or libsparkle dir>/../lib/sparkle/plugins
  // and the install libdir.
  bool use_default_paths = true;
};

// One plugin file the registry looked at.
struct PluginRecord {
  std::string path;
  std::string name;     // backend name; empty if rejected before it was known
  std::string version;  // plugin's own version string
  bool loaded = false;
  std::string reason;  // why it was rejected, or why it has no devices
};

struct DeviceProperties {
  std::string name;         // "cpu", "opengl:1"; what --device accepts
  std::string backend;      // "cpu"
  size_t index = 0;         // index within the backend
  std::string kind;         // "cpu", "gpu", "software-gpu", "simulated"
  std::string description;  // human readable
  std::string fingerprint;  // hardware + driver identity
  std::vector<std::pair<std::string, std::string>> properties;
};

struct RunOptions {
  // "auto", a backend name ("cpu", "opengl": its first device) or NAME:INDEX.
  // Empty means SPARKLE_DEVICE, else "auto".
  std::string device;
  // Fill RunResult::explanation with why the device was chosen (also on
  // when SPARKLE_VERBOSE contains "dispatch", which prints it on stderr).
  bool explain = false;
  // The caller promises that the weights at w.data() keep their values
  // across calls (inference with fixed weights), as oneDNN's and PyTorch's
  // pre-packed weights assume. Backends may then keep a packed copy of w,
  // keyed by its address and shape, and skip re-reading it in its original
  // layout. Each call re-checks a sample of the weights against that copy
  // and re-packs when they differ, but a change that misses every sampled
  // element is not seen: pass false (the default) whenever w may change.
  bool constant_weights = false;
};

struct RunResult {
  std::string device;     // the device that ran it; "a+b" when the batch was split
  std::string kernel;     // the backend's kernel name
  double device_ms = -1;  // device time when the device can time it, else -1
  double wall_ms = 0;     // enqueue to completion, transfers included
  // With RunOptions::explain under "auto": one line per candidate (predicted
  // or learned time, why it won, lost or was unsupported), then
  // "selected: <device>".
  std::vector<std::string> explanation;
};

class Engine {
 public:
  Engine();
  explicit Engine(const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const std::vector<PluginRecord>& plugins() const;
  std::vector<DeviceProperties> devices() const;

  // y = relu?(conv(x, w) + bias). Sizes of x, w, bias and y must match desc
  // exactly (bias empty unless desc.has_bias). Throws sparkle::Error.
  RunResult conv2d(const Conv2dDesc& desc, std::span<const float> x, std::span<const float> w,
                   std::span<const float> bias, std::span<float> y, const RunOptions& options = {});

  // The device `conv2d` would use for desc under these options, without
  // running anything (under "auto", the selector's current best estimate,
  // without exploration or splitting). Throws like conv2d for an unknown
  // device.
  std::string resolve_device(const Conv2dDesc& desc, const RunOptions& options = {});

  // Plans desc on the device it would run on (compiling its programs, which
  // the program cache then keeps) without running it. Returns the device.
  std::string prepare(const Conv2dDesc& desc, const RunOptions& options = {});

  // Writes what the selector learned to the cache folder now (it is also
  // written when the engine is destroyed). False if it could not be.
  bool save_profile();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Library version and build id ("0.1.0", git-describe-like id).
const char* version() noexcept;
const char* build_id() noexcept;

}  // namespace sparkle
