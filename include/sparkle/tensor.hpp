// Device-resident data: Tensor (fp32 memory on one device that stays there
// between calls) and HostMemory (engine-owned host memory the devices copy
// from and to at full speed, like PyTorch's pinned memory).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace sparkle {

namespace exec {
struct TensorState;
struct HostMemoryState;
}  // namespace exec

// fp32 data of a given shape on one device, made by Engine::tensor. Its
// layout on the device is the backend's business; upload and download see
// dense row-major (NCHW) data. Copies share the same memory (a handle).
// Work submitted on it runs in submission order; destroying the last handle
// while work still uses the memory is safe: the memory lives until that
// work has finished.
class Tensor {
 public:
  Tensor() = default;  // an empty handle (as a bias: none)
  bool empty() const { return state_ == nullptr; }
  const std::vector<int64_t>& shape() const;
  int64_t elements() const;
  // The device it lives on ("opengl:0").
  const std::string& device() const;

  // Waits for the work that writes it, then copies it into out (which must
  // have elements() floats). Throws sparkle::Error naming the call that
  // failed if the tensor's last writer failed.
  void download(std::span<float> out) const;
  // Replaces its contents, after the work already submitted that reads or
  // writes it. Blocks until the data has been copied.
  void upload(std::span<const float> data);

  // The engine's internal state (for the engine only).
  const std::shared_ptr<exec::TensorState>& state() const { return state_; }
  explicit Tensor(std::shared_ptr<exec::TensorState> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<exec::TensorState> state_;
};

// What host memory is for: filled by the host and read by the device
// (inputs), or written by the device and read by the host (outputs).
enum class HostUse { upload, readback };

// Host memory allocated by a device for fast transfers, mapped for its whole
// life (Engine::host_memory). A stream whose inputs or outputs lie in such
// memory of its own device moves them without an extra copy. On a
// host-memory device (the CPU) it is ordinary aligned memory.
class HostMemory {
 public:
  HostMemory() = default;
  std::span<float> span() const;
  float* data() const { return span().data(); }
  size_t size() const { return span().size(); }
  const std::string& device() const;
  HostUse use() const;

  const std::shared_ptr<exec::HostMemoryState>& state() const { return state_; }
  explicit HostMemory(std::shared_ptr<exec::HostMemoryState> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<exec::HostMemoryState> state_;
};

}  // namespace sparkle
