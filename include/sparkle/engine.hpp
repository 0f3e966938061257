// sparkle::Engine: loads the backend plugins, lists their devices and runs
// convolutions on the device the caller names or the selector picks.
// Every method may be called from many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <sparkle/conv2d.hpp>
#include <sparkle/error.hpp>
#include <sparkle/future.hpp>
#include <sparkle/run.hpp>
#include <sparkle/stream.hpp>
#include <sparkle/tensor.hpp>
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
  // A submit followed by a wait.
  RunResult conv2d(const Conv2dDesc& desc, std::span<const float> x, std::span<const float> w,
                   std::span<const float> bias, std::span<float> y, const RunOptions& options = {});

  // The same on device tensors (bias: an empty Tensor unless desc.has_bias).
  // With every operand on one device and options.device "auto" (or that
  // device) it runs there and moves no data through the host. Under "auto"
  // the selector may pick another device when it expects that to be faster
  // with the transfers counted; a named device gets copies of operands that
  // live elsewhere.
  RunResult conv2d(const Conv2dDesc& desc, const Tensor& x, const Tensor& w, const Tensor& bias,
                   const Tensor& y, const RunOptions& options = {});

  // Asynchronous forms: validate now, queue the work and return at once.
  // Work on one device runs in submission order; a convolution that reads a
  // tensor an earlier one writes waits for it on the device. Host spans must
  // stay valid until the future completes.
  Future submit(const Conv2dDesc& desc, const Tensor& x, const Tensor& w, const Tensor& bias,
                const Tensor& y, const RunOptions& options = {});
  Future submit(const Conv2dDesc& desc, std::span<const float> x, std::span<const float> w,
                std::span<const float> bias, std::span<float> y, const RunOptions& options = {});

  // A tensor of `shape` (1 to 4 dims, fp32) on `device` ("cpu", "opengl:0";
  // not "auto": a tensor lives on one device). Uninitialised, or a copy of
  // `data` (shape's element count).
  Tensor tensor(const std::vector<int64_t>& shape, const std::string& device);
  Tensor tensor(const std::vector<int64_t>& shape, std::span<const float> data,
                const std::string& device);

  // Host memory of `elements` floats that `device` moves at full speed (its
  // staging memory, mapped), for stream inputs (HostUse::upload) or outputs
  // (HostUse::readback).
  HostMemory host_memory(size_t elements, const std::string& device, HostUse use);

  // A stream of batches of desc through fixed weights (uploaded once): see
  // stream.hpp. The device is chosen once, for the whole stream.
  Stream stream(const Conv2dDesc& desc, std::span<const float> w, std::span<const float> bias,
                const StreamOptions& options = {});

  // Where a call's operands would be, for resolve_device: in host memory
  // (each device is charged the transfers), or resident on whichever device
  // runs it (tensors made there; no transfers).
  enum class OperandPlacement { host, resident };

  // The device `conv2d` would use for desc under these options, without
  // running anything (under "auto", the selector's current best estimate,
  // without exploration or splitting). Throws like conv2d for an unknown
  // device.
  std::string resolve_device(const Conv2dDesc& desc, const RunOptions& options = {},
                             OperandPlacement placement = OperandPlacement::host);

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
