// Tensor memory and hazard tracking (see tensor_state.hpp).
#include "exec/tensor_state.hpp"

#include <algorithm>
#include <limits>
#include <sparkle/error.hpp>

namespace sparkle::exec {

int64_t checked_elements(const std::vector<int64_t>& shape, const std::string& what) {
  if (shape.empty() || shape.size() > 4)
    throw Error(ErrorCode::invalid_argument,
                what + " shape has " + std::to_string(shape.size()) + " dims, must have 1 to 4");
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] <= 0)
      throw Error(ErrorCode::invalid_argument, what + " shape[" + std::to_string(i) + "]=" +
                                                   std::to_string(shape[i]) + " must be >= 1");
    if (n > std::numeric_limits<int64_t>::max() / 4 / shape[i])
      throw Error(ErrorCode::invalid_argument,
                  what + " shape overflows: more than 2^61 elements at dim " + std::to_string(i));
    n *= shape[i];
  }
  return n;
}

TensorState::TensorState(std::shared_ptr<DeviceRuntime> dev, std::vector<int64_t> dims)
    : device(std::move(dev)),
      shape(std::move(dims)),
      elements(checked_elements(shape, "tensor")),
      bytes(static_cast<size_t>(elements) * sizeof(float)) {
  sparkle_buffer_desc desc{};
  desc.struct_size = sizeof desc;
  desc.kind = SPARKLE_MEMORY_DEVICE;
  desc.bytes = bytes;
  desc.rank = static_cast<uint32_t>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) desc.dims[i] = shape[i];
  buffer = device->create(desc, "a tensor of " + std::to_string(bytes) + " bytes");
}

TensorState::~TensorState() {
  // Every op on the tensor holds a reference to it until it has finished,
  // so these have signalled by now; waiting keeps the rule explicit.
  if (last_write_) last_write_->wait();
  for (auto& f : reads_) f->wait();
  if (buffer != nullptr) device->destroy(buffer);
}

void TensorState::read_dependencies(std::vector<FenceRef>& waits) {
  std::lock_guard lock(mutex_);
  if (last_write_ && !last_write_->done()) waits.push_back(last_write_);
}

void TensorState::write_dependencies(std::vector<FenceRef>& waits) {
  std::lock_guard lock(mutex_);
  if (last_write_ && !last_write_->done()) waits.push_back(last_write_);
  for (const auto& f : reads_)
    if (!f->done()) waits.push_back(f);
}

void TensorState::record_read(const FenceRef& fence) {
  std::lock_guard lock(mutex_);
  std::erase_if(reads_, [](const FenceRef& f) { return f->done(); });
  reads_.push_back(fence);
}

void TensorState::record_write(const FenceRef& fence) {
  std::lock_guard lock(mutex_);
  reads_.clear();  // the write waited for them
  last_write_ = fence;
}

void TensorState::set_writer_status(const Status& status) {
  std::lock_guard lock(mutex_);
  writer_ = status;
}

Status TensorState::writer_status() {
  std::lock_guard lock(mutex_);
  return writer_;
}

}  // namespace sparkle::exec
