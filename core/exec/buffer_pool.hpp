// BufferPool: buffers of one memory kind kept for reuse between calls on one
// device (device memory, upload staging or readback staging).
// Allocating and freeing hundreds of MB per call made NVIDIA's GL driver
// place later buffers badly (layers ran 3-5x slower after the first few of a
// batch-32 suite); reuse also saves the allocation itself. Thread-safe.
#pragma once

#include <sparkle/plugin.h>

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace sparkle::exec {

// A buffer taken from a pool, returned to it when destroyed.
class PooledBuffer {
 public:
  PooledBuffer() = default;
  PooledBuffer(class BufferPool* pool, size_t bytes, const char* what);
  PooledBuffer(PooledBuffer&& o) noexcept { *this = std::move(o); }
  PooledBuffer& operator=(PooledBuffer&& o) noexcept;
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  ~PooledBuffer() { reset(); }
  void reset();
  sparkle_buffer handle() const { return buffer_; }
  explicit operator bool() const { return buffer_ != nullptr; }

 private:
  class BufferPool* pool_ = nullptr;
  sparkle_buffer buffer_ = nullptr;
  size_t capacity_ = 0;
};

class BufferPool {
 public:
  // Keeps at most max_free_bytes of idle buffers (oldest released first).
  // host_backed: its buffers take host memory (staging, or any buffer of a
  // host-memory device), so new ones are checked against the host budget.
  BufferPool(const sparkle_plugin* api, sparkle_device device, std::string device_name,
             size_t max_free_bytes, sparkle_memory_kind kind = SPARKLE_MEMORY_DEVICE,
             bool host_backed = false);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A buffer of at least `bytes` (its real size in *capacity). Reuses an
  // idle one of up to twice the size; otherwise creates one, and if the
  // device is out of memory, frees every idle buffer and tries once more.
  sparkle_buffer acquire(size_t bytes, size_t* capacity, const char* what);
  void release(sparkle_buffer buffer, size_t capacity);

  sparkle_memory_kind kind() const { return kind_; }

 private:
  struct Idle {
    sparkle_buffer buffer;
    size_t bytes;
  };
  void destroy_all_idle_locked();

  const sparkle_plugin* api_;
  sparkle_device device_;
  std::string name_;
  size_t max_free_bytes_;
  sparkle_memory_kind kind_;
  bool host_backed_;
  std::mutex mutex_;
  std::vector<Idle> idle_;  // oldest first
  size_t idle_bytes_ = 0;
};

}  // namespace sparkle::exec
