// The real DrmApi: libdrm.so.2 and libdrm_amdgpu.so.1 opened at run time, so
// that the plugin has no link-time dependency on them (a machine without
// them loads the plugin and sees zero devices, with the reason).
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>
#include <xf86drm.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "drm_api.hpp"

namespace sparkle::amdgpu {
namespace {

// Resolves `name` from `lib` into fn; false (and *why) when it is missing.
template <class Fn>
bool resolve(void* lib, const char* library, const char* name, Fn* fn, std::string* why) {
  dlerror();
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    const char* err = dlerror();
    *why =
        std::string(library) + " has no " + name + (err != nullptr ? std::string(": ") + err : "");
    return false;
  }
  *fn = reinterpret_cast<Fn>(sym);
  return true;
}

class LibdrmApi final : public DrmApi {
 public:
  // Both handles stay open for the life of the process: libdrm keeps global
  // state (the device table of libdrm_amdgpu) that must not be unloaded.
  bool load(std::string* why) {
    void* drm = dlopen("libdrm.so.2", RTLD_LAZY | RTLD_LOCAL);
    if (drm == nullptr) {
      const char* err = dlerror();
      *why = std::string("libdrm.so.2 not loadable: ") + (err != nullptr ? err : "not found");
      return false;
    }
    void* amd = dlopen("libdrm_amdgpu.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (amd == nullptr) {
      const char* err = dlerror();
      *why =
          std::string("libdrm_amdgpu.so.1 not loadable: ") + (err != nullptr ? err : "not found");
      return false;
    }
    const char* d = "libdrm.so.2";
    const char* a = "libdrm_amdgpu.so.1";
    return resolve(drm, d, "drmGetDevices2", &get_devices2_, why) &&
           resolve(drm, d, "drmFreeDevices", &free_devices_, why) &&
           resolve(drm, d, "drmGetVersion", &get_version_, why) &&
           resolve(drm, d, "drmFreeVersion", &free_version_, why) &&
           resolve(amd, a, "amdgpu_device_initialize", &device_initialize_, why) &&
           resolve(amd, a, "amdgpu_device_deinitialize", &device_deinitialize_, why) &&
           resolve(amd, a, "amdgpu_query_gpu_info", &query_gpu_info_, why) &&
           resolve(amd, a, "amdgpu_query_hw_ip_info", &query_hw_ip_info_, why) &&
           resolve(amd, a, "amdgpu_query_heap_info", &query_heap_info_, why) &&
           resolve(amd, a, "amdgpu_get_marketing_name", &get_marketing_name_, why) &&
           resolve(amd, a, "amdgpu_bo_alloc", &bo_alloc_, why) &&
           resolve(amd, a, "amdgpu_bo_free", &bo_free_, why) &&
           resolve(amd, a, "amdgpu_bo_cpu_map", &bo_cpu_map_, why) &&
           resolve(amd, a, "amdgpu_bo_cpu_unmap", &bo_cpu_unmap_, why) &&
           resolve(amd, a, "amdgpu_va_range_alloc", &va_range_alloc_, why) &&
           resolve(amd, a, "amdgpu_va_range_free", &va_range_free_, why) &&
           resolve(amd, a, "amdgpu_bo_va_op", &bo_va_op_, why) &&
           resolve(amd, a, "amdgpu_cs_ctx_create", &cs_ctx_create_, why) &&
           resolve(amd, a, "amdgpu_cs_ctx_free", &cs_ctx_free_, why) &&
           resolve(amd, a, "amdgpu_bo_list_create", &bo_list_create_, why) &&
           resolve(amd, a, "amdgpu_bo_list_destroy", &bo_list_destroy_, why) &&
           resolve(amd, a, "amdgpu_cs_submit", &cs_submit_, why) &&
           resolve(amd, a, "amdgpu_cs_query_fence_status", &cs_query_fence_status_, why);
  }

  int get_devices(std::vector<DrmDeviceEntry>* out) override {
    out->clear();
    const int count = get_devices2_(0, nullptr, 0);
    if (count <= 0) return count;
    std::vector<drmDevicePtr> devices(static_cast<size_t>(count), nullptr);
    const int got = get_devices2_(0, devices.data(), count);
    if (got < 0) return got;
    for (int i = 0; i < got; ++i) {
      const drmDevicePtr d = devices[static_cast<size_t>(i)];
      DrmDeviceEntry e;
      if ((d->available_nodes & (1 << DRM_NODE_RENDER)) != 0 &&
          d->nodes[DRM_NODE_RENDER] != nullptr)
        e.render_node = d->nodes[DRM_NODE_RENDER];
      if (d->bustype == DRM_BUS_PCI && d->deviceinfo.pci != nullptr && d->businfo.pci != nullptr) {
        e.pci = true;
        e.vendor_id = d->deviceinfo.pci->vendor_id;
        e.device_id = d->deviceinfo.pci->device_id;
        e.revision_id = d->deviceinfo.pci->revision_id;
        char bus[32];
        std::snprintf(bus, sizeof bus, "%04x:%02x:%02x.%u", d->businfo.pci->domain,
                      d->businfo.pci->bus, d->businfo.pci->dev, d->businfo.pci->func);
        e.pci_bus = bus;
      }
      out->push_back(std::move(e));
    }
    free_devices_(devices.data(), got);
    return 0;
  }

  int open_node(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
  }
  void close_node(int fd) override { ::close(fd); }

  int get_version(int fd, DrmVersion* out) override {
    drmVersionPtr v = get_version_(fd);
    if (v == nullptr) return errno != 0 ? -errno : -ENODEV;
    out->name.assign(v->name != nullptr ? v->name : "", v->name != nullptr ? v->name_len : 0);
    out->major = v->version_major;
    out->minor = v->version_minor;
    out->patchlevel = v->version_patchlevel;
    free_version_(v);
    return 0;
  }

  int device_initialize(int fd, uint32_t* major, uint32_t* minor,
                        amdgpu_device_handle* dev) override {
    return device_initialize_(fd, major, minor, dev);
  }
  int device_deinitialize(amdgpu_device_handle dev) override { return device_deinitialize_(dev); }
  int query_gpu_info(amdgpu_device_handle dev, amdgpu_gpu_info* info) override {
    return query_gpu_info_(dev, info);
  }
  int query_hw_ip_info(amdgpu_device_handle dev, unsigned type, unsigned ip_instance,
                       drm_amdgpu_info_hw_ip* info) override {
    return query_hw_ip_info_(dev, type, ip_instance, info);
  }
  int query_heap_info(amdgpu_device_handle dev, uint32_t heap, uint32_t flags,
                      amdgpu_heap_info* info) override {
    return query_heap_info_(dev, heap, flags, info);
  }
  const char* get_marketing_name(amdgpu_device_handle dev) override {
    return get_marketing_name_(dev);
  }
  int bo_alloc(amdgpu_device_handle dev, amdgpu_bo_alloc_request* request,
               amdgpu_bo_handle* bo) override {
    return bo_alloc_(dev, request, bo);
  }
  int bo_free(amdgpu_bo_handle bo) override { return bo_free_(bo); }
  int bo_cpu_map(amdgpu_bo_handle bo, void** cpu) override { return bo_cpu_map_(bo, cpu); }
  int bo_cpu_unmap(amdgpu_bo_handle bo) override { return bo_cpu_unmap_(bo); }
  int va_range_alloc(amdgpu_device_handle dev, amdgpu_gpu_va_range type, uint64_t size,
                     uint64_t alignment, uint64_t base_required, uint64_t* va,
                     amdgpu_va_handle* handle, uint64_t flags) override {
    return va_range_alloc_(dev, type, size, alignment, base_required, va, handle, flags);
  }
  int va_range_free(amdgpu_va_handle handle) override { return va_range_free_(handle); }
  int bo_va_op(amdgpu_bo_handle bo, uint64_t offset, uint64_t size, uint64_t addr, uint64_t flags,
               uint32_t ops) override {
    return bo_va_op_(bo, offset, size, addr, flags, ops);
  }
  int cs_ctx_create(amdgpu_device_handle dev, amdgpu_context_handle* ctx) override {
    return cs_ctx_create_(dev, ctx);
  }
  int cs_ctx_free(amdgpu_context_handle ctx) override { return cs_ctx_free_(ctx); }
  int bo_list_create(amdgpu_device_handle dev, uint32_t count, amdgpu_bo_handle* bos,
                     uint8_t* priorities, amdgpu_bo_list_handle* list) override {
    return bo_list_create_(dev, count, bos, priorities, list);
  }
  int bo_list_destroy(amdgpu_bo_list_handle list) override { return bo_list_destroy_(list); }
  int cs_submit(amdgpu_context_handle ctx, uint64_t flags, amdgpu_cs_request* requests,
                uint32_t count) override {
    return cs_submit_(ctx, flags, requests, count);
  }
  int cs_query_fence_status(amdgpu_cs_fence* fence, uint64_t timeout_ns, uint64_t flags,
                            uint32_t* expired) override {
    return cs_query_fence_status_(fence, timeout_ns, flags, expired);
  }

 private:
  int (*get_devices2_)(uint32_t, drmDevicePtr*, int) = nullptr;
  void (*free_devices_)(drmDevicePtr*, int) = nullptr;
  drmVersionPtr (*get_version_)(int) = nullptr;
  void (*free_version_)(drmVersionPtr) = nullptr;
  int (*device_initialize_)(int, uint32_t*, uint32_t*, amdgpu_device_handle*) = nullptr;
  int (*device_deinitialize_)(amdgpu_device_handle) = nullptr;
  int (*query_gpu_info_)(amdgpu_device_handle, amdgpu_gpu_info*) = nullptr;
  int (*query_hw_ip_info_)(amdgpu_device_handle, unsigned, unsigned,
                           drm_amdgpu_info_hw_ip*) = nullptr;
  int (*query_heap_info_)(amdgpu_device_handle, uint32_t, uint32_t, amdgpu_heap_info*) = nullptr;
  const char* (*get_marketing_name_)(amdgpu_device_handle) = nullptr;
  int (*bo_alloc_)(amdgpu_device_handle, amdgpu_bo_alloc_request*, amdgpu_bo_handle*) = nullptr;
  int (*bo_free_)(amdgpu_bo_handle) = nullptr;
  int (*bo_cpu_map_)(amdgpu_bo_handle, void**) = nullptr;
  int (*bo_cpu_unmap_)(amdgpu_bo_handle) = nullptr;
  int (*va_range_alloc_)(amdgpu_device_handle, amdgpu_gpu_va_range, uint64_t, uint64_t, uint64_t,
                         uint64_t*, amdgpu_va_handle*, uint64_t) = nullptr;
  int (*va_range_free_)(amdgpu_va_handle) = nullptr;
  int (*bo_va_op_)(amdgpu_bo_handle, uint64_t, uint64_t, uint64_t, uint64_t, uint32_t) = nullptr;
  int (*cs_ctx_create_)(amdgpu_device_handle, amdgpu_context_handle*) = nullptr;
  int (*cs_ctx_free_)(amdgpu_context_handle) = nullptr;
  int (*bo_list_create_)(amdgpu_device_handle, uint32_t, amdgpu_bo_handle*, uint8_t*,
                         amdgpu_bo_list_handle*) = nullptr;
  int (*bo_list_destroy_)(amdgpu_bo_list_handle) = nullptr;
  int (*cs_submit_)(amdgpu_context_handle, uint64_t, amdgpu_cs_request*, uint32_t) = nullptr;
  int (*cs_query_fence_status_)(amdgpu_cs_fence*, uint64_t, uint64_t, uint32_t*) = nullptr;
};

}  // namespace

std::shared_ptr<DrmApi> load_libdrm(std::string* why) {
  auto api = std::make_shared<LibdrmApi>();
  if (!api->load(why)) return nullptr;
  return api;
}

}  // namespace sparkle::amdgpu
