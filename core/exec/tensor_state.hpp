// TensorState: the memory behind a sparkle::Tensor and the fences of the
// work that uses it, so that later work waits for earlier writers (and a
// writer for earlier readers) on the device, not on the host.
#pragma once

#include <sparkle/plugin.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "exec/device_runtime.hpp"
#include "exec/executor.hpp"
#include "exec/fence.hpp"

namespace sparkle::exec {

struct TensorState {
  TensorState(std::shared_ptr<DeviceRuntime> device, std::vector<int64_t> shape);
  ~TensorState();  // the memory goes once every fence on it has signalled
  TensorState(const TensorState&) = delete;
  TensorState& operator=(const TensorState&) = delete;

  // Dispatcher thread of the tensor's device: what an op must wait for
  // before it reads (the last write) or writes (the last write and the
  // reads since) this tensor, appended to `waits`.
  void read_dependencies(std::vector<FenceRef>& waits);
  void write_dependencies(std::vector<FenceRef>& waits);
  // Records an op enqueued on this tensor.
  void record_read(const FenceRef& fence);
  void record_write(const FenceRef& fence);

  // Completion thread: the last writer's outcome. A tensor whose writer
  // failed holds garbage; its readers fail with this message.
  void set_writer_status(const Status& status);
  Status writer_status();

  const std::shared_ptr<DeviceRuntime> device;
  const std::vector<int64_t> shape;
  const int64_t elements;
  const size_t bytes;
  sparkle_buffer buffer = nullptr;

 private:
  std::mutex mutex_;
  FenceRef last_write_;
  std::vector<FenceRef> reads_;
  Status writer_;
};

// Checks a shape (1 to 4 dims, each >= 1, product within int64 and host
// memory sizes) and returns its element count; throws naming the dim.
int64_t checked_elements(const std::vector<int64_t>& shape, const std::string& what);

}  // namespace sparkle::exec
