// Opening a device and probing what its memory can do (see device_runtime.hpp).
#include "exec/device_runtime.hpp"

#include <sparkle/error.hpp>
#include <sparkle/memory.hpp>

#include "registry/plugin_registry.hpp"

namespace sparkle::exec {

namespace {
// Idle memory each pool keeps for reuse; the rest goes back to the driver.
constexpr size_t kPoolIdleBytes = size_t{2} << 30;
constexpr size_t kStagingIdleBytes = size_t{1} << 30;
}  // namespace

DeviceRuntime::DeviceRuntime(const sparkle_plugin* api, std::shared_ptr<void> plugin, size_t index,
                             std::string name)
    : api_(api), plugin_(std::move(plugin)), name_(std::move(name)) {
  registry::throw_if_error(api_->open_device(index, &handle_), name_ + ": cannot open");
  // Host-memory devices alias the caller's arrays instead of copying them.
  if (api_->buffer_wrap_host != nullptr) {
    float probe[4] = {};
    sparkle_buffer b = nullptr;
    sparkle_status st = api_->buffer_wrap_host(handle_, probe, sizeof probe, &b);
    if (st == nullptr) {
      host_memory_ = true;
      api_->buffer_destroy(b);
    } else {
      registry::take_message(st);
    }
  }
  // Staging memory: both kinds must exist and map.
  if (api_->buffer_create_ex != nullptr && api_->buffer_map != nullptr) {
    has_staging_ = true;
    for (uint32_t kind : {SPARKLE_MEMORY_UPLOAD, SPARKLE_MEMORY_READBACK}) {
      sparkle_buffer_desc desc{};
      desc.struct_size = sizeof desc;
      desc.kind = kind;
      desc.bytes = 4096;
      sparkle_buffer b = nullptr;
      sparkle_status st = api_->buffer_create_ex(handle_, &desc, &b);
      if (st != nullptr) {
        registry::take_message(st);
        has_staging_ = false;
        continue;
      }
      if (api_->buffer_map(b) == nullptr) has_staging_ = false;
      api_->buffer_destroy(b);
    }
  }
  device_pool_ = std::make_unique<BufferPool>(api_, handle_, name_, kPoolIdleBytes,
                                              SPARKLE_MEMORY_DEVICE, host_memory_);
  if (has_staging_) {
    upload_pool_ = std::make_unique<BufferPool>(api_, handle_, name_, kStagingIdleBytes,
                                                SPARKLE_MEMORY_UPLOAD, true);
    readback_pool_ = std::make_unique<BufferPool>(api_, handle_, name_, kStagingIdleBytes,
                                                  SPARKLE_MEMORY_READBACK, true);
  }
  executor_ = std::make_unique<Executor>(api_, handle_, name_);
}

DeviceRuntime::~DeviceRuntime() {
  executor_.reset();  // finishes the work in flight and closes the queues
  readback_pool_.reset();
  upload_pool_.reset();
  device_pool_.reset();
  if (handle_ != nullptr) api_->close_device(handle_);
}

BufferPool& DeviceRuntime::pool(sparkle_memory_kind kind) {
  switch (kind) {
    case SPARKLE_MEMORY_UPLOAD:
      if (upload_pool_) return *upload_pool_;
      break;
    case SPARKLE_MEMORY_READBACK:
      if (readback_pool_) return *readback_pool_;
      break;
    case SPARKLE_MEMORY_DEVICE:
      return *device_pool_;
  }
  throw Error(ErrorCode::internal, name_ + ": no staging memory");
}

void* DeviceRuntime::map(sparkle_buffer buffer, const char* what) const {
  void* p = api_->buffer_map != nullptr ? api_->buffer_map(buffer) : nullptr;
  if (p == nullptr)
    throw Error(ErrorCode::device_error, name_ + ": cannot map the " + what + " buffer");
  return p;
}

sparkle_buffer DeviceRuntime::create(const sparkle_buffer_desc& desc, const std::string& what) {
  // Staging and host-memory devices' buffers come out of host memory.
  if (desc.kind != SPARKLE_MEMORY_DEVICE || host_memory_)
    check_host_budget(name_ + " " + what, desc.bytes);
  sparkle_buffer b = nullptr;
  if (api_->buffer_create_ex != nullptr) {
    registry::throw_if_error(api_->buffer_create_ex(handle_, &desc, &b),
                             name_ + ": allocate " + what);
  } else {
    if (desc.kind != SPARKLE_MEMORY_DEVICE)
      throw Error(ErrorCode::unsupported, name_ + ": has no staging memory for " + what);
    registry::throw_if_error(api_->buffer_create(handle_, desc.bytes, &b),
                             name_ + ": allocate " + what);
  }
  return b;
}

sparkle_buffer DeviceRuntime::wrap(const void* data, size_t bytes) const {
  if (!host_memory_) return nullptr;
  sparkle_buffer b = nullptr;
  sparkle_status st = api_->buffer_wrap_host(handle_, const_cast<void*>(data), bytes, &b);
  if (st != nullptr) {
    registry::take_message(st);
    return nullptr;
  }
  return b;
}

}  // namespace sparkle::exec
