// Reuse of device buffers between calls (see buffer_pool.hpp).
#include "exec/buffer_pool.hpp"

#include <algorithm>
#include <sparkle/memory.hpp>

#include "registry/plugin_registry.hpp"

namespace sparkle::exec {

namespace {
// Sizes are rounded up so that nearby shapes share buffers: to 64 KiB below
// 1 MiB, else to 1/8 of the next power of two.
size_t round_up(size_t bytes) {
  if (bytes <= (size_t{1} << 20)) return (bytes + 65535) / 65536 * 65536;
  size_t p = size_t{1} << 20;
  while (p < bytes) p <<= 1;
  const size_t step = p / 8;
  return (bytes + step - 1) / step * step;
}
}  // namespace

PooledBuffer::PooledBuffer(BufferPool* pool, size_t bytes, const char* what) : pool_(pool) {
  buffer_ = pool->acquire(bytes, &capacity_, what);
}

PooledBuffer& PooledBuffer::operator=(PooledBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    pool_ = o.pool_;
    buffer_ = o.buffer_;
    capacity_ = o.capacity_;
    o.buffer_ = nullptr;
  }
  return *this;
}

void PooledBuffer::reset() {
  if (buffer_ != nullptr) pool_->release(buffer_, capacity_);
  buffer_ = nullptr;
}

BufferPool::BufferPool(const sparkle_plugin* api, sparkle_device device, std::string device_name,
                       size_t max_free_bytes, sparkle_memory_kind kind, bool host_backed)
    : api_(api),
      device_(device),
      name_(std::move(device_name)),
      max_free_bytes_(max_free_bytes),
      kind_(kind),
      host_backed_(host_backed) {}

BufferPool::~BufferPool() {
  std::lock_guard lock(mutex_);
  destroy_all_idle_locked();
}

void BufferPool::destroy_all_idle_locked() {
  for (const auto& i : idle_) api_->buffer_destroy(i.buffer);
  idle_.clear();
  idle_bytes_ = 0;
}

sparkle_buffer BufferPool::acquire(size_t bytes, size_t* capacity, const char* what) {
  {
    std::lock_guard lock(mutex_);
    auto best = idle_.end();
    for (auto it = idle_.begin(); it != idle_.end(); ++it)
      if (it->bytes >= bytes && it->bytes <= 2 * std::max<size_t>(bytes, 65536) &&
          (best == idle_.end() || it->bytes < best->bytes))
        best = it;
    if (best != idle_.end()) {
      const Idle taken = *best;
      idle_.erase(best);
      idle_bytes_ -= taken.bytes;
      *capacity = taken.bytes;
      return taken.buffer;
    }
  }
  const size_t size = round_up(bytes);
  if (host_backed_) check_host_budget(name_ + " " + what, size);
  sparkle_buffer b = nullptr;
  auto create = [&]() -> sparkle_status {
    if (kind_ == SPARKLE_MEMORY_DEVICE) return api_->buffer_create(device_, size, &b);
    sparkle_buffer_desc desc{};
    desc.struct_size = sizeof desc;
    desc.kind = kind_;
    desc.bytes = size;
    return api_->buffer_create_ex(device_, &desc, &b);
  };
  sparkle_status st = create();
  if (st != nullptr) {
    sparkle_code code = SPARKLE_INTERNAL;
    std::string message = registry::take_message(st, &code);
    if (code != SPARKLE_OUT_OF_MEMORY)
      throw Error(static_cast<ErrorCode>(code), name_ + ": allocate " + what + ": " + message);
    {
      std::lock_guard lock(mutex_);
      destroy_all_idle_locked();
    }
    registry::throw_if_error(create(), name_ + ": allocate " + what);
  }
  *capacity = size;
  return b;
}

void BufferPool::release(sparkle_buffer buffer, size_t capacity) {
  std::lock_guard lock(mutex_);
  idle_.push_back({buffer, capacity});
  idle_bytes_ += capacity;
  while (idle_bytes_ > max_free_bytes_ && !idle_.empty()) {
    api_->buffer_destroy(idle_.front().buffer);
    idle_bytes_ -= idle_.front().bytes;
    idle_.erase(idle_.begin());
  }
}

}  // namespace sparkle::exec
