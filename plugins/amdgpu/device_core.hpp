// What every object of one opened amdgpu device shares: the libdrm layer,
// the device handle, what discovery learnt about the GPU, and whether the
// device has been lost (after which every call fails with the loss's
// message). Also GEM buffer objects with a GPU virtual address (GpuBo).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "drm_api.hpp"
#include "gfx_target.hpp"

namespace sparkle::amdgpu {

// What discovery found out about a GPU; also what a DeviceCore is made from.
struct GpuDescription {
  std::string render_node;  // "/dev/dri/renderD128"
  std::string pci_bus;      // "0000:03:00.0"
  uint16_t vendor_id = 0, device_id = 0;
  uint8_t revision_id = 0;
  DrmVersion driver;  // drmGetVersion of the node: "amdgpu" 3.x.y
  GfxTarget target;
  std::string marketing_name;
  amdgpu_gpu_info gpu{};
  drm_amdgpu_info_hw_ip gfx_ip{};
  drm_amdgpu_info_hw_ip compute_ip{};
  uint64_t vram_bytes = 0, gtt_bytes = 0;
};

// Stable identity of the hardware and driver: PCI ids, gfx target and the
// kernel driver version (a driver update may change what code is valid).
std::string fingerprint(const GpuDescription& d);

enum class Domain {
  Vram,              // device-local; never CPU-mapped here
  GttCached,         // system memory, CPU cached, snooped: CPU reads are fast
  GttWriteCombined,  // system memory, write-combined (CPU_GTT_USWC): CPU writes
};
const char* domain_name(Domain d);

// SPARKLE_AMDGPU_FENCE_TIMEOUT_MS in nanoseconds (10 s when unset); throws
// plugin::Error naming it when it is not 1 to 86400000.
uint64_t fence_timeout_from_env();

class DeviceCore {
 public:
  // Takes ownership of fd and dev (closed / deinitialised by the destructor).
  DeviceCore(std::shared_ptr<DrmApi> api, int fd, amdgpu_device_handle dev, GpuDescription desc);
  ~DeviceCore();
  DeviceCore(const DeviceCore&) = delete;
  DeviceCore& operator=(const DeviceCore&) = delete;

  DrmApi& api() const { return *api_; }
  amdgpu_device_handle handle() const { return dev_; }
  const GpuDescription& description() const { return desc_; }
  Generation generation() const { return desc_.target.generation; }
  const std::string& node() const { return desc_.render_node; }
  // IB size alignment in dwords (at least 8, as libdrm's tests pad).
  uint32_t ib_pad_dwords() const;
  // SPARKLE_AMDGPU_FENCE_TIMEOUT_MS, read once per device.
  uint64_t fence_timeout_ns() const { return fence_timeout_ns_; }

  // Throws the loss's error when the device was lost.
  void check_alive() const;
  // Records the loss (first message wins) and returns the error to throw.
  [[noreturn]] void fail(int rc, const std::string& call);

 private:
  std::shared_ptr<DrmApi> api_;
  int fd_;
  amdgpu_device_handle dev_;
  GpuDescription desc_;
  uint64_t fence_timeout_ns_;
  std::atomic<bool> lost_{false};
  mutable std::mutex lost_mutex_;
  std::string lost_message_;
};

// A GEM buffer object mapped into the device's GPU virtual address space
// (amdgpu_bo_alloc, amdgpu_va_range_alloc, amdgpu_bo_va_op MAP) and, for
// GTT domains, into the process (amdgpu_bo_cpu_map). Sizes are rounded up to
// 4 KiB pages. The destructor undoes each step in reverse.
class GpuBo {
 public:
  GpuBo(std::shared_ptr<DeviceCore> core, uint64_t bytes, Domain domain, const char* purpose);
  ~GpuBo();
  GpuBo(const GpuBo&) = delete;
  GpuBo& operator=(const GpuBo&) = delete;

  amdgpu_bo_handle handle() const { return bo_; }
  uint64_t va() const { return va_; }
  uint64_t size() const { return size_; }
  Domain domain() const { return domain_; }
  // nullptr for VRAM.
  uint8_t* cpu() const { return static_cast<uint8_t*>(cpu_); }
  DeviceCore& core() const { return *core_; }

 private:
  void release() noexcept;

  std::shared_ptr<DeviceCore> core_;
  Domain domain_;
  uint64_t size_ = 0;
  amdgpu_bo_handle bo_ = nullptr;
  amdgpu_va_handle va_handle_ = nullptr;
  uint64_t va_ = 0;
  bool mapped_ = false;
  void* cpu_ = nullptr;
};

}  // namespace sparkle::amdgpu
