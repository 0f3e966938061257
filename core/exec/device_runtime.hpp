// DeviceRuntime: one opened device with its executor and buffer pools. The
// engine, and everything that outlives a call (tensors, host memory,
// streams, in-flight work), share it: the device stays open and its plugin
// loaded until the last holder lets go.
#pragma once

#include <sparkle/plugin.h>

#include <memory>
#include <string>

#include "exec/buffer_pool.hpp"
#include "exec/executor.hpp"

namespace sparkle::exec {

class DeviceRuntime {
 public:
  // Opens device `index` of `api`; throws sparkle::Error when it cannot.
  // `plugin` keeps the plugin loaded and initialised.
  DeviceRuntime(const sparkle_plugin* api, std::shared_ptr<void> plugin, size_t index,
                std::string name);
  ~DeviceRuntime();
  DeviceRuntime(const DeviceRuntime&) = delete;
  DeviceRuntime& operator=(const DeviceRuntime&) = delete;

  const sparkle_plugin* api() const { return api_; }
  sparkle_device handle() const { return handle_; }
  const std::string& name() const { return name_; }
  Executor& executor() { return *executor_; }

  // Its buffers can alias caller memory (buffer_wrap_host): host operands
  // need no copies at all.
  bool host_memory() const { return host_memory_; }
  // It has UPLOAD and READBACK buffers with a CPU mapping (staging).
  bool has_staging() const { return has_staging_; }

  BufferPool& pool(sparkle_memory_kind kind);
  // The mapped address of a staging buffer (buffer_map).
  void* map(sparkle_buffer buffer, const char* what) const;
  // A buffer of exactly `desc` (tensors, slots): not pooled; the caller
  // destroys it with destroy().
  sparkle_buffer create(const sparkle_buffer_desc& desc, const std::string& what);
  void destroy(sparkle_buffer buffer) const { api_->buffer_destroy(buffer); }
  // Wraps caller memory (host-memory devices), or nullptr.
  sparkle_buffer wrap(const void* data, size_t bytes) const;

 private:
  const sparkle_plugin* api_;
  std::shared_ptr<void> plugin_;  // destroyed last: the plugin outlives the device
  std::string name_;
  sparkle_device handle_ = nullptr;
  bool host_memory_ = false;
  bool has_staging_ = false;
  std::unique_ptr<BufferPool> device_pool_, upload_pool_, readback_pool_;
  std::unique_ptr<Executor> executor_;
};

}  // namespace sparkle::exec
