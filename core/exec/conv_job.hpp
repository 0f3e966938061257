// ConvJob: one convolution as executor work. The copies that bring host
// operands onto the device (upload queue), the convolution (compute queue,
// after those copies and after the fences of resident operands), the copy
// that brings a host output back (download queue), and, once complete, the
// copy from readback staging into the caller's memory.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <sparkle/run.hpp>
#include <vector>

#include "exec/buffer_pool.hpp"
#include "exec/executor.hpp"
#include "exec/future_state.hpp"
#include "exec/plan.hpp"
#include "exec/tensor_state.hpp"

namespace sparkle::exec {

// An operand the convolution reads.
struct ConvInput {
  sparkle_buffer buffer = nullptr;      // what the plugin's conv reads
  std::shared_ptr<TensorState> tensor;  // resident: its hazards are tracked
  enum class From {
    none,     // resident, or caller memory the device aliases
    staging,  // device-side copy from a staging (or caller's host-memory) buffer
    host,     // enqueue_write straight from caller memory
  } from = From::none;
  sparkle_buffer source = nullptr;  // From::staging
  size_t source_offset = 0;
  const void* host = nullptr;  // From::host
  size_t bytes = 0;
};

// The operand it writes.
struct ConvOutput {
  sparkle_buffer buffer = nullptr;
  std::shared_ptr<TensorState> tensor;
  enum class To {
    none,     // resident, or caller memory the device aliases
    staging,  // device-side copy into a staging (or caller's host-memory) buffer
    host,     // enqueue_read straight into caller memory
  } to = To::none;
  sparkle_buffer target = nullptr;  // To::staging
  size_t target_offset = 0;
  void* host = nullptr;  // To::host
  size_t bytes = 0;
  // Once complete: mapped staging -> caller memory (null when not needed).
  const void* copy_back_from = nullptr;
  void* copy_back_to = nullptr;
};

// Times of one finished convolution, for the selector.
struct ConvTimes {
  double compute_ms = -1;   // the convolution stage (device time where there is one)
  double upload_ms = -1;    // host operands in, staging copies included
  double download_ms = -1;  // host output back, copy-back included
  size_t upload_bytes = 0, download_bytes = 0;
};

struct ConvWork {
  std::shared_ptr<DeviceRuntime> device;
  PlanRef plan;
  ConvInput x, w, bias;
  bool has_bias = false;
  ConvOutput y;
  std::vector<PooledBuffer> leases;         // returned to their pools when it finishes
  std::vector<std::shared_ptr<void>> keep;  // host memory, stream slots: alive until then
  std::shared_ptr<FutureState> future;
  // Completion thread, before the future is fulfilled; must not throw.
  std::function<void(const Status&, const ConvTimes&)> on_finish;
  std::chrono::steady_clock::time_point submitted = std::chrono::steady_clock::now();
  double staging_ms = 0;  // host copy into upload staging before submission
};

class ConvJob final : public Job {
 public:
  explicit ConvJob(ConvWork work) : w_(std::move(work)) {}
  std::vector<FenceRef> dispatch(Executor& ex) override;
  void finish(const Status& status) noexcept override;

 private:
  ConvWork w_;
  std::vector<FenceRef> uploads_;
  FenceRef conv_;
  FenceRef download_;
};

}  // namespace sparkle::exec
