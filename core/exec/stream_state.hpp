// StreamState: the ring behind sparkle::Stream. Each slot owns the device
// buffers of one batch in flight (input, output) and its staging; a slot is
// reused only once the work that last used it has finished, which bounds
// the memory and keeps the device fed with `slots` batches at a time.
#pragma once

#include <chrono>
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

// What sparkle::Stream drives: one device's ring, or several juggled.
class StreamState {
 public:
  virtual ~StreamState() = default;  // implementations wait for their batches
  virtual Future submit(std::span<const float> x, std::span<float> y) = 0;
  virtual void drain() = 0;
  virtual const std::string& device() const = 0;
  virtual int slots() const = 0;
};

// One device's ring.
class DeviceStream final : public StreamState {
 public:
  using Recorder = std::function<void(const Status&, const ConvTimes&)>;
  DeviceStream(std::shared_ptr<DeviceRuntime> device, PlanRef plan, const Conv2dDesc& desc,
               std::shared_ptr<TensorState> w, std::shared_ptr<TensorState> bias, int slots,
               StreamTransfer transfer, Recorder recorder);
  ~DeviceStream() override;  // waits for the batches in flight

  Future submit(std::span<const float> x, std::span<float> y) override;
  void drain() override;
  const std::string& device() const override { return device_->name(); }
  int slots() const override { return static_cast<int>(slots_.size()); }

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

// Several devices' rings behind one stream: each batch goes to the device
// expected to finish it first (its batches in flight times its time per
// batch, learned as batches finish), and futures complete in submission
// order whatever device ran them, so outputs come back as from one device.
class JuggledStream final : public StreamState {
 public:
  // ms_per_batch: the first estimate of each part's time per batch.
  JuggledStream(std::vector<std::unique_ptr<DeviceStream>> parts, std::vector<double> ms_per_batch);
  ~JuggledStream() override;

  Future submit(std::span<const float> x, std::span<float> y) override;
  void drain() override;
  const std::string& device() const override { return name_; }
  int slots() const override;

 private:
  struct Pending {
    std::shared_ptr<FutureState> outer, inner;
    size_t part = 0;
    bool ready = false;
  };
  void finished(const std::shared_ptr<Pending>& p);

  std::vector<std::unique_ptr<DeviceStream>> parts_;
  std::string name_;
  std::mutex submit_mutex_;  // submitters take turns
  std::mutex mutex_;         // the order and the statistics
  std::deque<std::shared_ptr<Pending>> order_;
  std::vector<int> in_flight_;
  std::vector<double> ms_;  // learned time per batch
  std::vector<std::chrono::steady_clock::time_point> last_done_;
};

}  // namespace sparkle::exec
