// The plugin ABI's objects for one amdgpu device: buffers (GEM objects in
// VRAM or GTT), plans (a conv2d kernel and its launch), queues (submission
// contexts) and fences (a submission's sequence number).
//  - SPARKLE_MEMORY_DEVICE: VRAM, never CPU-mapped; written and read
//    through GTT staging and a copy kernel.
//  - SPARKLE_MEMORY_UPLOAD: write-combined GTT, persistently mapped.
//  - SPARKLE_MEMORY_READBACK: cached GTT, persistently mapped.
#pragma once

#include <memory>
#include <mutex>
#include <sparkle/plugin.hpp>

#include "device_core.hpp"
#include "launch.hpp"
#include "program_cache.hpp"
#include "queue.hpp"

namespace sparkle::amdgpu {

class AmdDevice;

class AmdBuffer final : public plugin::Buffer {
 public:
  AmdBuffer(AmdDevice& device, std::shared_ptr<GpuBo> bo, sparkle_memory_kind kind, size_t bytes);
  // The v1.0 synchronous transfers: DEVICE buffers go through the device's
  // own queue and wait; staging kinds are host memory and are copied
  // directly (the caller has waited for the work that uses them).
  void upload(size_t offset, const void* src, size_t bytes) override;
  void download(size_t offset, void* dst, size_t bytes) override;
  void* map() override;

  const std::shared_ptr<GpuBo>& bo() const { return bo_; }
  sparkle_memory_kind kind() const { return kind_; }
  size_t bytes() const { return bytes_; }
  AmdDevice& device() const { return device_; }
  // Throws SPARKLE_INVALID_ARGUMENT when [offset, offset + n) is not inside.
  void check_range(size_t offset, size_t n, const char* what) const;

 private:
  AmdDevice& device_;
  std::shared_ptr<GpuBo> bo_;
  sparkle_memory_kind kind_;
  size_t bytes_;
};

class AmdFence final : public plugin::Fence {
 public:
  AmdFence(std::shared_ptr<QueueCore> queue, std::shared_ptr<Submission> submission)
      : queue_(std::move(queue)), submission_(std::move(submission)) {}
  bool poll() override { return queue_->poll(submission_); }
  void wait() override { queue_->wait(submission_); }
  int64_t elapsed_ns() override;

  const std::shared_ptr<QueueCore>& queue() const { return queue_; }
  const std::shared_ptr<Submission>& submission() const { return submission_; }

 private:
  std::shared_ptr<QueueCore> queue_;
  std::shared_ptr<Submission> submission_;
};

class AmdPlan final : public plugin::Plan {
 public:
  AmdPlan(AmdDevice& device, const sparkle_conv2d_desc& desc, Conv2dKernel kernel,
          std::shared_ptr<const LoadedProgram> program);
  const char* kernel_name() const override { return conv2d_kernel_name(kernel_); }
  std::unique_ptr<plugin::Fence> enqueue(plugin::Buffer* x, plugin::Buffer* w, plugin::Buffer* bias,
                                         plugin::Buffer* y) override;

  const sparkle_conv2d_desc& desc() const { return desc_; }
  const Kernel& kernel() const { return *kernel_info_; }
  const Launch& launch() const { return launch_; }
  AmdDevice& device() const { return device_; }

 private:
  AmdDevice& device_;
  sparkle_conv2d_desc desc_;
  Conv2dKernel kernel_;
  std::shared_ptr<const LoadedProgram> program_;  // keeps the code resident
  const Kernel* kernel_info_;
  Launch launch_;
};

class AmdQueue final : public plugin::Queue {
 public:
  AmdQueue(AmdDevice& device, std::shared_ptr<QueueCore> core)
      : device_(device), core_(std::move(core)) {}
  std::unique_ptr<plugin::Fence> write(plugin::Buffer* dst, size_t offset, const void* src,
                                       size_t bytes, plugin::WaitList waits) override;
  std::unique_ptr<plugin::Fence> read(plugin::Buffer* src, size_t offset, void* dst, size_t bytes,
                                      plugin::WaitList waits) override;
  std::unique_ptr<plugin::Fence> copy(plugin::Buffer* src, size_t src_offset, plugin::Buffer* dst,
                                      size_t dst_offset, size_t bytes,
                                      plugin::WaitList waits) override;
  std::unique_ptr<plugin::Fence> conv2d(plugin::Plan* plan, plugin::Buffer* x, plugin::Buffer* w,
                                        plugin::Buffer* bias, plugin::Buffer* y,
                                        plugin::WaitList waits) override;

 private:
  // The GPU fences of `waits` still pending (signalled ones are skipped);
  // throws for fences of another device or plugin.
  Dependencies dependencies(plugin::WaitList waits);
  std::unique_ptr<plugin::Fence> fence(std::shared_ptr<Submission> s);

  AmdDevice& device_;
  std::shared_ptr<QueueCore> core_;
};

class AmdDevice final : public plugin::Device {
 public:
  explicit AmdDevice(std::shared_ptr<DeviceCore> core);
  ~AmdDevice() override;

  void check_supported(const sparkle_conv2d_desc& desc) override;
  std::unique_ptr<plugin::Buffer> create_buffer(size_t bytes) override;
  std::unique_ptr<plugin::Buffer> create_buffer_ex(const sparkle_buffer_desc& desc) override;
  std::unique_ptr<plugin::Plan> plan_conv2d(const sparkle_conv2d_desc& desc) override;
  std::unique_ptr<plugin::Queue> create_queue(uint32_t flags) override;

  const std::shared_ptr<DeviceCore>& core() const { return core_; }
  const std::shared_ptr<ProgramCache>& programs() const { return programs_; }
  // The queue behind the v1.0 synchronous calls, made on first use.
  AmdQueue& own_queue();

 private:
  std::shared_ptr<DeviceCore> core_;
  std::shared_ptr<ProgramCache> programs_;
  KernelChoice choice_;
  std::mutex queue_mutex_;
  std::unique_ptr<AmdQueue> own_queue_;
};

}  // namespace sparkle::amdgpu
