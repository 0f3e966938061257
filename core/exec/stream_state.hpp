// StreamState: the ring behind sparkle::Stream. Each slot owns the device
// buffers of one batch in flight (input, output) and its staging; a slot is
// reused only once the work that last used it has finished, which bounds
// the memory and keeps the device fed with `slots` batches at a time.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <sparkle/conv2d.hpp>
#include <sparkle/future.hpp>
#include <sparkle/stream.hpp>
#include <string>
#include <vector>

#include "exec/conv_job.hpp"
#include "exec/device_runtime.hpp"
#include "exec/future_state.hpp"
#include "exec/plan.hpp"
#include "exec/tensor_state.hpp"

namespace sparkle::exec {

class StreamState {
 public:
  using Recorder = std::function<void(const Status&, const ConvTimes&)>;
  StreamState(std::shared_ptr<DeviceRuntime> device, PlanRef plan, const Conv2dDesc& desc,
              std::shared_ptr<TensorState> w, std::shared_ptr<TensorState> bias, int slots,
              StreamTransfer transfer, Recorder recorder);
  ~StreamState();  // waits for the batches in flight

  Future submit(std::span<const float> x, std::span<float> y);
  void drain();
  const std::string& device() const { return device_->name(); }
  int slots() const { return static_cast<int>(slots_.size()); }

 private:
  struct Slot {
    Slot(const std::shared_ptr<DeviceRuntime>& device, size_t x_bytes, size_t y_bytes, bool staged);
    ~Slot();
    std::shared_ptr<DeviceRuntime> device;
    sparkle_buffer dx = nullptr, dy = nullptr, up = nullptr, down = nullptr;
    void* up_ptr = nullptr;
    void* down_ptr = nullptr;
    std::shared_ptr<FutureState> last;  // the work that used it last
  };
  static void wait_done(const std::shared_ptr<FutureState>& f);

  std::shared_ptr<DeviceRuntime> device_;
  PlanRef plan_;
  Conv2dDesc desc_;
  std::shared_ptr<TensorState> w_, bias_;
  Recorder recorder_;
  size_t x_bytes_, y_bytes_;
  bool staged_;
  bool direct_;       // StreamTransfer::direct on a device with staging
  std::mutex mutex_;  // submitters take turns: a stream is one ordered sequence
  std::vector<std::shared_ptr<Slot>> slots_;
  size_t next_ = 0;
};

}  // namespace sparkle::exec
