// HostMemoryState: staging memory a device allocated for a caller
// (Engine::host_memory), and the process-wide index that lets a stream see
// that the span it was given lies inside such memory.
#pragma once

#include <sparkle/plugin.h>

#include <cstddef>
#include <memory>
#include <sparkle/tensor.hpp>

#include "exec/device_runtime.hpp"

namespace sparkle::exec {

struct HostMemoryState {
  HostMemoryState(std::shared_ptr<DeviceRuntime> device, size_t elements, HostUse use);
  ~HostMemoryState();
  HostMemoryState(const HostMemoryState&) = delete;
  HostMemoryState& operator=(const HostMemoryState&) = delete;

  const std::shared_ptr<DeviceRuntime> device;
  const HostUse use;
  const size_t elements;
  sparkle_buffer buffer = nullptr;  // null: plain memory (the device has no staging)
  float* data = nullptr;
};

// Makes m findable by find_host_memory (until it is destroyed).
void register_host_memory(const std::shared_ptr<HostMemoryState>& m);
// The live host memory that contains [data, data + bytes) entirely, or null.
std::shared_ptr<HostMemoryState> find_host_memory(const void* data, size_t bytes);

}  // namespace sparkle::exec
