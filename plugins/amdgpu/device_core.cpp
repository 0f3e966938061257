// DeviceCore and GpuBo (see device_core.hpp).
#include "device_core.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sparkle/plugin.hpp>

#include "drm_error.hpp"

namespace sparkle::amdgpu {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kDefaultFenceTimeoutMs = 10000;

}  // namespace

uint64_t fence_timeout_from_env() {
  const char* v = std::getenv("SPARKLE_AMDGPU_FENCE_TIMEOUT_MS");
  if (v == nullptr || *v == '\0') return kDefaultFenceTimeoutMs * 1000000ull;
  char* end = nullptr;
  const unsigned long long ms = std::strtoull(v, &end, 10);
  if (end == v || *end != '\0' || *v == '-' || ms == 0 || ms > 24ull * 3600 * 1000)
    throw plugin::Error(SPARKLE_INVALID_ARGUMENT,
                        std::string("SPARKLE_AMDGPU_FENCE_TIMEOUT_MS=") + v +
                            " must be a number of milliseconds from 1 to 86400000");
  return ms * 1000000ull;
}

std::string fingerprint(const GpuDescription& d) {
  char out[160];
  std::snprintf(out, sizeof out, "amdgpu-%04x:%04x-rev%02x-%s-%s%d.%d.%d", d.vendor_id, d.device_id,
                d.revision_id, d.target.name.c_str(), d.driver.name.c_str(), d.driver.major,
                d.driver.minor, d.driver.patchlevel);
  return out;
}

const char* domain_name(Domain d) {
  switch (d) {
    case Domain::Vram:
      return "VRAM";
    case Domain::GttCached:
      return "GTT";
    case Domain::GttWriteCombined:
      return "GTT (write-combined)";
  }
  return "?";
}

DeviceCore::DeviceCore(std::shared_ptr<DrmApi> api, int fd, amdgpu_device_handle dev,
                       GpuDescription desc)
    : api_(std::move(api)),
      fd_(fd),
      dev_(dev),
      desc_(std::move(desc)),
      fence_timeout_ns_(fence_timeout_from_env()) {}

DeviceCore::~DeviceCore() {
  if (dev_ != nullptr) api_->device_deinitialize(dev_);
  if (fd_ >= 0) api_->close_node(fd_);
}

uint32_t DeviceCore::ib_pad_dwords() const {
  // ib_size_alignment is in bytes; round up to a power of two of dwords.
  uint32_t want = std::max<uint32_t>(8, desc_.compute_ip.ib_size_alignment / 4);
  uint32_t p = 8;
  while (p < want) p <<= 1;
  return p;
}

void DeviceCore::check_alive() const {
  if (!lost_.load(std::memory_order_acquire)) return;
  std::lock_guard lock(lost_mutex_);
  throw plugin::Error(SPARKLE_DEVICE_ERROR, lost_message_);
}

void DeviceCore::fail(int rc, const std::string& call) {
  plugin::Error e = drm_error(rc, call, desc_.render_node);
  if (is_device_lost(rc)) {
    std::lock_guard lock(lost_mutex_);
    if (!lost_.load()) {
      lost_message_ = e.what();
      lost_.store(true, std::memory_order_release);
      plugin::log(SPARKLE_LOG_ERROR, lost_message_);
    }
  }
  throw e;
}

GpuBo::GpuBo(std::shared_ptr<DeviceCore> core, uint64_t bytes, Domain domain, const char* purpose)
    : core_(std::move(core)), domain_(domain) {
  core_->check_alive();
  size_ = std::max<uint64_t>(kPage, (bytes + kPage - 1) / kPage * kPage);
  DrmApi& api = core_->api();
  const std::string what =
      std::to_string(size_) + " bytes of " + domain_name(domain) + " for " + purpose;
  amdgpu_bo_alloc_request req{};
  req.alloc_size = size_;
  req.phys_alignment = kPage;
  req.preferred_heap = domain == Domain::Vram ? AMDGPU_GEM_DOMAIN_VRAM : AMDGPU_GEM_DOMAIN_GTT;
  req.flags = domain == Domain::GttWriteCombined ? AMDGPU_GEM_CREATE_CPU_GTT_USWC : 0;
  int rc = api.bo_alloc(core_->handle(), &req, &bo_);
  if (rc != 0) {
    bo_ = nullptr;
    core_->fail(rc, "amdgpu_bo_alloc(" + what + ")");
  }
  try {
    rc = api.va_range_alloc(core_->handle(), amdgpu_gpu_va_range_general, size_, kPage, 0, &va_,
                            &va_handle_, 0);
    if (rc != 0) {
      va_handle_ = nullptr;
      core_->fail(rc, "amdgpu_va_range_alloc(" + what + ")");
    }
    rc = api.bo_va_op(bo_, 0, size_, va_, 0, AMDGPU_VA_OP_MAP);
    if (rc != 0) core_->fail(rc, "amdgpu_bo_va_op(MAP, " + what + ")");
    mapped_ = true;
    if (domain != Domain::Vram) {
      rc = api.bo_cpu_map(bo_, &cpu_);
      if (rc != 0) {
        cpu_ = nullptr;
        core_->fail(rc, "amdgpu_bo_cpu_map(" + what + ")");
      }
    }
  } catch (...) {
    release();
    throw;
  }
}

GpuBo::~GpuBo() { release(); }

void GpuBo::release() noexcept {
  DrmApi& api = core_->api();
  if (cpu_ != nullptr) api.bo_cpu_unmap(bo_);
  if (mapped_) api.bo_va_op(bo_, 0, size_, va_, 0, AMDGPU_VA_OP_UNMAP);
  if (va_handle_ != nullptr) api.va_range_free(va_handle_);
  if (bo_ != nullptr) api.bo_free(bo_);
  cpu_ = nullptr;
  mapped_ = false;
  va_handle_ = nullptr;
  bo_ = nullptr;
}

}  // namespace sparkle::amdgpu
