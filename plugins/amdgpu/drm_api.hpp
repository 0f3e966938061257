// The replaceable libdrm layer: every call the AMDGPU backend makes into
// libdrm / libdrm_amdgpu goes through this interface, so that tests can run
// the whole sequence (discovery, buffers, submission, fences) against a fake
// that checks each call's arguments and injects failures. The real one
// (libdrm_api.cpp) resolves the functions with dlopen, so the plugin loads
// and reports zero devices where libdrm_amdgpu is not installed.
//
// Return values follow libdrm: 0 on success, a negative errno on failure.
#pragma once

#include <amdgpu.h>
#include <amdgpu_drm.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sparkle::amdgpu {

// One entry of drmGetDevices2, reduced to what discovery needs.
struct DrmDeviceEntry {
  std::string render_node;  // "/dev/dri/renderD128"; empty when there is none
  bool pci = false;
  uint16_t vendor_id = 0, device_id = 0;
  uint8_t revision_id = 0;
  std::string pci_bus;  // "0000:03:00.0"
};

// What drmGetVersion reports for an open node.
struct DrmVersion {
  std::string name;  // kernel driver: "amdgpu", "i915", ...
  int major = 0, minor = 0, patchlevel = 0;
};

class DrmApi {
 public:
  virtual ~DrmApi() = default;

  // xf86drm and the node itself.
  // drmGetDevices2(0, ...): the DRM devices; a negative errno (-ENOENT when
  // /dev/dri does not exist).
  virtual int get_devices(std::vector<DrmDeviceEntry>* out) = 0;
  // open(path, O_RDWR | O_CLOEXEC): an fd or a negative errno.
  virtual int open_node(const std::string& path) = 0;
  virtual void close_node(int fd) = 0;
  virtual int get_version(int fd, DrmVersion* out) = 0;

  // libdrm_amdgpu, one member per function, same arguments.
  virtual int device_initialize(int fd, uint32_t* major, uint32_t* minor,
                                amdgpu_device_handle* dev) = 0;
  virtual int device_deinitialize(amdgpu_device_handle dev) = 0;
  virtual int query_gpu_info(amdgpu_device_handle dev, amdgpu_gpu_info* info) = 0;
  virtual int query_hw_ip_info(amdgpu_device_handle dev, unsigned type, unsigned ip_instance,
                               drm_amdgpu_info_hw_ip* info) = 0;
  virtual int query_heap_info(amdgpu_device_handle dev, uint32_t heap, uint32_t flags,
                              amdgpu_heap_info* info) = 0;
  // nullptr when libdrm has no name for the device.
  virtual const char* get_marketing_name(amdgpu_device_handle dev) = 0;

  virtual int bo_alloc(amdgpu_device_handle dev, amdgpu_bo_alloc_request* request,
                       amdgpu_bo_handle* bo) = 0;
  virtual int bo_free(amdgpu_bo_handle bo) = 0;
  virtual int bo_cpu_map(amdgpu_bo_handle bo, void** cpu) = 0;
  virtual int bo_cpu_unmap(amdgpu_bo_handle bo) = 0;
  virtual int va_range_alloc(amdgpu_device_handle dev, amdgpu_gpu_va_range type, uint64_t size,
                             uint64_t alignment, uint64_t base_required, uint64_t* va,
                             amdgpu_va_handle* handle, uint64_t flags) = 0;
  virtual int va_range_free(amdgpu_va_handle handle) = 0;
  virtual int bo_va_op(amdgpu_bo_handle bo, uint64_t offset, uint64_t size, uint64_t addr,
                       uint64_t flags, uint32_t ops) = 0;

  virtual int cs_ctx_create(amdgpu_device_handle dev, amdgpu_context_handle* ctx) = 0;
  virtual int cs_ctx_free(amdgpu_context_handle ctx) = 0;
  virtual int bo_list_create(amdgpu_device_handle dev, uint32_t count, amdgpu_bo_handle* bos,
                             uint8_t* priorities, amdgpu_bo_list_handle* list) = 0;
  virtual int bo_list_destroy(amdgpu_bo_list_handle list) = 0;
  virtual int cs_submit(amdgpu_context_handle ctx, uint64_t flags, amdgpu_cs_request* requests,
                        uint32_t count) = 0;
  virtual int cs_query_fence_status(amdgpu_cs_fence* fence, uint64_t timeout_ns, uint64_t flags,
                                    uint32_t* expired) = 0;
};

// The real libdrm, loaded with dlopen. nullptr, with *why set, when
// libdrm.so.2 or libdrm_amdgpu.so.1 or one of their functions is missing.
std::shared_ptr<DrmApi> load_libdrm(std::string* why);

}  // namespace sparkle::amdgpu
