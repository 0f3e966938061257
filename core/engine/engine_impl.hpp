// Engine::Impl: the loaded plugins, their devices (opened on first use),
// the selector and the per-device plan caches. Shared by the files of
// core/engine.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <span>
#include <sparkle/engine.hpp>
#include <string>
#include <vector>

#include "engine/plan_cache.hpp"
#include "exec/conv_job.hpp"
#include "exec/device_runtime.hpp"
#include "exec/plan.hpp"
#include "exec/tensor_state.hpp"
#include "registry/plugin_registry.hpp"
#include "select/selector.hpp"

namespace sparkle {

// One operand of a call as the engine receives it: host memory or a tensor.
struct Operand {
  std::span<const float> host;                // when tensor is null
  float* host_out = nullptr;                  // the output's host memory
  std::shared_ptr<exec::TensorState> tensor;  // resident data
  size_t bytes() const { return tensor ? tensor->bytes : host.size() * sizeof(float); }
};

struct Operands {
  Operand x, w, bias, y;
  bool has_bias = false;
  // The caller waits for the result next (Engine::conv2d): the executor may
  // run the job on the caller's thread (Executor::submit).
  bool caller_waits = false;
};

struct Engine::Impl {
  struct Device {
    const sparkle_plugin* api = nullptr;
    std::shared_ptr<void> plugin;  // keeps the plugin loaded while the device is open
    DeviceProperties props;
    std::once_flag open_once;
    std::shared_ptr<exec::DeviceRuntime> runtime;  // read only after open()'s call_once
    // The runtime once open, for threads that have not been through open()
    // (by_runtime compares every device's).
    std::atomic<const exec::DeviceRuntime*> opened{nullptr};
    std::string open_error;
    std::once_flag calibrate_once;
    PlanCache plans{plan_cache_capacity()};
  };

  explicit Impl(const EngineOptions& options);
  ~Impl();

  // Opens the device on first use; throws its open error.
  const std::shared_ptr<exec::DeviceRuntime>& open(Device& d);
  Device* by_runtime(const exec::DeviceRuntime* rt);
  std::string available_names() const;
  // "" if d supports the op, else why not.
  std::string unsupported_reason(Device& d, const sparkle_conv2d_desc& cdesc);
  // The device `want` names ("" → SPARKLE_DEVICE or auto), or nullptr for
  // auto. With check_support, throws when it cannot run cdesc.
  Device* resolve_named(const std::string& want_in, const Conv2dDesc& desc,
                        const sparkle_conv2d_desc* cdesc);
  // Every device, with why it cannot run the op (empty if it can), after
  // calibrating the ones that can.
  std::vector<select::Candidate> candidates(const Conv2dDesc& desc,
                                            const sparkle_conv2d_desc& cdesc);
  // Adds to each candidate what moving these operands there would cost.
  void add_transfer_costs(std::vector<select::Candidate>& cands, const Operands& ops);
  void calibrate(Device& d);

  exec::PlanRef plan_for(Device& d, const Conv2dDesc& desc, const sparkle_conv2d_desc& cdesc);

  // Queues the convolution on d; every tensor operand must live on d.
  // `explored`: the selector chose d to re-measure it.
  Future submit_on(Device& d, const Conv2dDesc& desc, const sparkle_conv2d_desc& cdesc,
                   const Operands& ops, bool explored);
  // The whole call: device choice (or the named device), then submit_on.
  // Operands on other devices than the chosen one are copied through the
  // host, synchronously.
  Future submit(const Conv2dDesc& desc, const Operands& ops, const RunOptions& options);
  // The operands of a call, validated (sizes, devices, aliasing) with errors
  // naming the operand.
  static Operands host_operands(const Conv2dDesc& desc, std::span<const float> x,
                                std::span<const float> w, std::span<const float> bias,
                                std::span<float> y);
  Operands tensor_operands(const Conv2dDesc& desc, const Tensor& x, const Tensor& w,
                           const Tensor& bias, const Tensor& y);
  // Runs the images of a batch of host operands on several devices at once
  // (each part writes its own slice of y); returns when all are done.
  RunResult run_split(const std::vector<std::pair<size_t, int64_t>>& parts, const Conv2dDesc& desc,
                      const sparkle_conv2d_desc& cdesc, const Operands& ops);

  // A tensor on d, optionally filled (blocking) from data.
  std::shared_ptr<exec::TensorState> make_tensor(Device& d, const std::vector<int64_t>& shape,
                                                 std::span<const float> data);

  // The plugin descriptor of desc with the call's options as flags.
  static sparkle_conv2d_desc c_desc(const Conv2dDesc& desc, const RunOptions& options);

  registry::PluginRegistry registry;
  // Shared with the completion threads, which record measured times.
  std::shared_ptr<select::Selector> selector;
  std::vector<std::unique_ptr<Device>> devices;
};

// Tensor transfers as executor work (tensor.cpp); blocking.
void upload_tensor(const std::shared_ptr<exec::TensorState>& t, std::span<const float> data);
void download_tensor(const std::shared_ptr<exec::TensorState>& t, std::span<float> out);

}  // namespace sparkle
