// Tensor uploads and downloads (see transfer_job.hpp), and the public
// Tensor and HostMemory methods built on them.
#include "exec/transfer_job.hpp"

#include <sparkle/error.hpp>
#include <sparkle/tensor.hpp>

#include "engine/engine_impl.hpp"
#include "exec/host_memory.hpp"
#include "exec/parallel_copy.hpp"

namespace sparkle {
namespace exec {

TransferJob::TransferJob(std::shared_ptr<TensorState> tensor, Direction direction, const float* src,
                         float* dst, std::shared_ptr<std::promise<Status>> done)
    : tensor_(std::move(tensor)),
      direction_(direction),
      src_(src),
      dst_(dst),
      done_(std::move(done)) {
  DeviceRuntime& rt = *tensor_->device;
  if (!rt.executor().asynchronous() || !rt.has_staging() || rt.host_memory()) return;
  const sparkle_memory_kind kind =
      direction_ == Direction::to_device ? SPARKLE_MEMORY_UPLOAD : SPARKLE_MEMORY_READBACK;
  staging_ = PooledBuffer(&rt.pool(kind), tensor_->bytes, "tensor staging");
  staging_ptr_ = rt.map(staging_.handle(), "tensor staging");
  if (direction_ == Direction::to_device) parallel_copy(staging_ptr_, src_, tensor_->bytes);
}

std::vector<FenceRef> TransferJob::dispatch(Executor& ex) {
  std::vector<FenceRef> waits;
  if (direction_ == Direction::to_device) {
    tensor_->write_dependencies(waits);
    fence_ = staging_
                 ? ex.copy(QueueRole::upload, staging_.handle(), 0, tensor_->buffer, 0,
                           tensor_->bytes, waits)
                 : ex.write(QueueRole::upload, tensor_->buffer, 0, src_, tensor_->bytes, waits);
    tensor_->record_write(fence_);
  } else {
    tensor_->read_dependencies(waits);
    fence_ = staging_
                 ? ex.copy(QueueRole::download, tensor_->buffer, 0, staging_.handle(), 0,
                           tensor_->bytes, waits)
                 : ex.read(QueueRole::download, tensor_->buffer, 0, dst_, tensor_->bytes, waits);
    tensor_->record_read(fence_);
  }
  return {fence_};
}

void TransferJob::finish(const Status& status) noexcept {
  Status st = status;
  if (fence_) fence_->wait();
  if (direction_ == Direction::to_device) {
    tensor_->set_writer_status(st);
  } else if (st.ok()) {
    const Status writer = tensor_->writer_status();
    if (!writer.ok()) {
      st = {"the tensor was written by a call that failed: " + writer.message, writer.code};
    } else if (staging_) {
      parallel_copy(dst_, staging_ptr_, tensor_->bytes);
    }
  }
  staging_.reset();
  done_->set_value(st);
}

}  // namespace exec

namespace {

void run_transfer(const std::shared_ptr<exec::TensorState>& t,
                  exec::TransferJob::Direction direction, const float* src, float* dst) {
  auto done = std::make_shared<std::promise<exec::Status>>();
  auto result = done->get_future();
  t->device->executor().submit(
      std::make_unique<exec::TransferJob>(t, direction, src, dst, std::move(done)));
  const exec::Status st = result.get();
  if (!st.ok())
    throw Error(static_cast<ErrorCode>(st.code == SPARKLE_OK ? SPARKLE_INTERNAL : st.code),
                st.message);
}

void check_count(const char* what, size_t got, int64_t want) {
  if (static_cast<int64_t>(got) != want)
    throw Error(ErrorCode::invalid_argument, std::string(what) + " has " + std::to_string(got) +
                                                 " elements, the tensor has " +
                                                 std::to_string(want));
}

const std::shared_ptr<exec::TensorState>& require(const std::shared_ptr<exec::TensorState>& s) {
  if (!s) throw Error(ErrorCode::invalid_argument, "tensor is empty (default-constructed)");
  return s;
}

}  // namespace

void upload_tensor(const std::shared_ptr<exec::TensorState>& t, std::span<const float> data) {
  check_count("upload data", data.size(), t->elements);
  run_transfer(t, exec::TransferJob::Direction::to_device, data.data(), nullptr);
}

void download_tensor(const std::shared_ptr<exec::TensorState>& t, std::span<float> out) {
  check_count("download destination", out.size(), t->elements);
  run_transfer(t, exec::TransferJob::Direction::to_host, nullptr, out.data());
}

const std::vector<int64_t>& Tensor::shape() const { return require(state_)->shape; }
int64_t Tensor::elements() const { return require(state_)->elements; }
const std::string& Tensor::device() const { return require(state_)->device->name(); }
void Tensor::download(std::span<float> out) const { download_tensor(require(state_), out); }
void Tensor::upload(std::span<const float> data) { upload_tensor(require(state_), data); }

namespace {
const std::shared_ptr<exec::HostMemoryState>& require(
    const std::shared_ptr<exec::HostMemoryState>& s) {
  if (!s) throw Error(ErrorCode::invalid_argument, "host memory is empty (default-constructed)");
  return s;
}
}  // namespace

std::span<float> HostMemory::span() const {
  const auto& s = require(state_);
  return {s->data, s->elements};
}
const std::string& HostMemory::device() const { return require(state_)->device->name(); }
HostUse HostMemory::use() const { return require(state_)->use; }

}  // namespace sparkle
