// TransferJob: host data into a tensor, or a tensor's data out to the host,
// ordered with the other work on that tensor's device.
#pragma once

#include <future>
#include <memory>

#include "exec/buffer_pool.hpp"
#include "exec/executor.hpp"
#include "exec/tensor_state.hpp"

namespace sparkle::exec {

class TransferJob final : public Job {
 public:
  enum class Direction { to_device, to_host };
  // to_device reads src (kept valid until done); to_host writes dst. The
  // constructor fills the staging buffer for to_device (caller's thread).
  TransferJob(std::shared_ptr<TensorState> tensor, Direction direction, const float* src,
              float* dst, std::shared_ptr<std::promise<Status>> done);
  std::vector<FenceRef> dispatch(Executor& ex) override;
  void finish(const Status& status) noexcept override;

 private:
  std::shared_ptr<TensorState> tensor_;
  Direction direction_;
  const float* src_;
  float* dst_;
  std::shared_ptr<std::promise<Status>> done_;
  PooledBuffer staging_;
  void* staging_ptr_ = nullptr;
  FenceRef fence_;
};

}  // namespace sparkle::exec
