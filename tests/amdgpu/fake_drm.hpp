// A fake libdrm for the AMDGPU backend's tests. It implements DrmApi over
// plain host memory and checks every call's arguments the way the kernel
// driver would reject them (live handles, page-aligned sizes, VA ranges that
// were reserved before they are mapped, buffers listed before an IB may
// touch them), and records violations instead of crashing.
//
// Submitted IBs are decoded with the in-tree PM4 decoder; each dispatch is
// matched to a kernel of the code object the test registered, and its user
// SGPRs and kernel arguments are read back from fake memory. The fake runs
// the copy kernels (their effect is one memmove) so transfers can be checked
// end to end; it does NOT run the conv2d kernels: it records their
// dispatches (grid, registers, arguments) for the tests to compare with what
// was planned. The conv2d arithmetic is checked on PoCL instead.
//
// Failures are injected per call name ("bo_alloc", "cs_submit", ...).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "code_object.hpp"
#include "drm_api.hpp"
#include "pm4_decoder.hpp"

namespace sparkle::amdgpu::test {

// One DRM node the fake pretends exists.
struct FakeNode {
  DrmDeviceEntry entry;  // what drmGetDevices2 lists (render_node may be empty)
  DrmVersion version;    // what drmGetVersion says
  bool listed = true;    // false: open-able but not in drmGetDevices2 (a card node)
  // For amdgpu nodes:
  amdgpu_gpu_info gpu{};
  drm_amdgpu_info_hw_ip gfx{}, compute{};
  std::string marketing_name;
};

// An amdgpu node with plausible values for a gfx target: "gfx1100" (Navi 31),
// "gfx1030" (Navi 21), "gfx90a" (Aldebaran), "gfx1101" (no code object by
// default), "gfx1010" (gfx10.1, unsupported).
FakeNode amdgpu_node(const std::string& render_node, const std::string& target);
// A render node of another driver.
FakeNode other_node(const std::string& render_node, const std::string& driver, uint16_t vendor);

// A conv2d (or other non-copy) dispatch as the fake saw it.
struct DispatchRecord {
  std::string kernel;
  uint32_t groups[3] = {0, 0, 0};
  uint32_t group_size[3] = {0, 0, 0};
  std::map<std::string, uint64_t> args;  // pointers and values, by name
  std::map<uint32_t, uint32_t> registers;
};

struct SubmitRecord {
  uint64_t sequence = 0;
  std::vector<uint32_t> ib;
  pm4::DecodedStream decoded;
  size_t dependencies = 0;
  std::vector<DispatchRecord> dispatches;  // every dispatch, copies included
};

class FakeDrm final : public DrmApi {
 public:
  FakeDrm();
  ~FakeDrm() override;

  // ---- configuration ----
  int devices_rc = 0;  // drmGetDevices2's result (-ENOENT: no /dev/dri)
  std::vector<FakeNode> nodes;
  // The code object whose kernels dispatches are matched against.
  void set_program(const CodeObject& code) { program_ = code; }
  // The (after + 1)-th call of `call` returns rc (once).
  void fail(const std::string& call, int rc, int after = 0);
  // Every call of `call` from now on returns rc.
  void fail_always(const std::string& call, int rc);
  // Fences never signal (queries return expired = 0).
  bool hang = false;
  // GPU clock ticks between a dispatch's two timestamps.
  uint64_t ticks_per_submission = 5000;

  // ---- observation ----
  std::vector<std::string> violations() const;
  std::vector<SubmitRecord> submissions() const;
  std::vector<std::string> calls() const;
  uint64_t last_fence_timeout_ns() const;
  size_t count(const std::string& call) const;
  // Handles still alive: "3 buffer objects, 1 context, ...", or "".
  std::string live_objects() const;
  // Fake memory behind a GPU virtual address range, for tests that look.
  std::vector<uint8_t> read_va(uint64_t va, size_t bytes) const;
  // The allocation requests seen, in order.
  std::vector<amdgpu_bo_alloc_request> allocations() const;

  // ---- DrmApi ----
  int get_devices(std::vector<DrmDeviceEntry>* out) override;
  int open_node(const std::string& path) override;
  void close_node(int fd) override;
  int get_version(int fd, DrmVersion* out) override;
  int device_initialize(int fd, uint32_t* major, uint32_t* minor,
                        amdgpu_device_handle* dev) override;
  int device_deinitialize(amdgpu_device_handle dev) override;
  int query_gpu_info(amdgpu_device_handle dev, amdgpu_gpu_info* info) override;
  int query_hw_ip_info(amdgpu_device_handle dev, unsigned type, unsigned ip_instance,
                       drm_amdgpu_info_hw_ip* info) override;
  int query_heap_info(amdgpu_device_handle dev, uint32_t heap, uint32_t flags,
                      amdgpu_heap_info* info) override;
  const char* get_marketing_name(amdgpu_device_handle dev) override;
  int bo_alloc(amdgpu_device_handle dev, amdgpu_bo_alloc_request* request,
               amdgpu_bo_handle* bo) override;
  int bo_free(amdgpu_bo_handle bo) override;
  int bo_cpu_map(amdgpu_bo_handle bo, void** cpu) override;
  int bo_cpu_unmap(amdgpu_bo_handle bo) override;
  int va_range_alloc(amdgpu_device_handle dev, amdgpu_gpu_va_range type, uint64_t size,
                     uint64_t alignment, uint64_t base_required, uint64_t* va,
                     amdgpu_va_handle* handle, uint64_t flags) override;
  int va_range_free(amdgpu_va_handle handle) override;
  int bo_va_op(amdgpu_bo_handle bo, uint64_t offset, uint64_t size, uint64_t addr, uint64_t flags,
               uint32_t ops) override;
  int cs_ctx_create(amdgpu_device_handle dev, amdgpu_context_handle* ctx) override;
  int cs_ctx_free(amdgpu_context_handle ctx) override;
  int bo_list_create(amdgpu_device_handle dev, uint32_t count, amdgpu_bo_handle* bos,
                     uint8_t* priorities, amdgpu_bo_list_handle* list) override;
  int bo_list_destroy(amdgpu_bo_list_handle list) override;
  int cs_submit(amdgpu_context_handle ctx, uint64_t flags, amdgpu_cs_request* requests,
                uint32_t count) override;
  int cs_query_fence_status(amdgpu_cs_fence* fence, uint64_t timeout_ns, uint64_t flags,
                            uint32_t* expired) override;

 private:
  struct Bo;
  struct Va;
  struct Dev;
  struct Ctx;
  struct List;

  int injected(const std::string& call);  // holds mutex_
  void violation(const std::string& what);
  Bo* bo_at(uint64_t va, uint64_t bytes, const std::set<Bo*>* listed);  // holds mutex_
  void run_dispatch(const pm4::DecodedDispatch& d, const std::set<Bo*>& listed,
                    SubmitRecord& record, Generation generation);

  mutable std::mutex mutex_;
  std::vector<std::string> calls_;
  std::vector<std::string> violations_;
  std::map<std::string, std::vector<std::pair<int, int>>> once_;  // call -> (countdown, rc)
  std::map<std::string, int> always_;
  std::map<int, size_t> fds_;  // fd -> node index
  int next_fd_ = 100;
  std::set<Dev*> devs_;
  std::set<Bo*> bos_;
  std::set<Va*> vas_;
  std::set<Ctx*> ctxs_;
  std::set<List*> lists_;
  std::vector<SubmitRecord> submissions_;
  std::vector<amdgpu_bo_alloc_request> allocations_;
  uint64_t next_va_ = 0x100000000ull;
  uint64_t clock_ = 1000;
  uint64_t last_timeout_ns_ = 0;
  CodeObject program_;
};

}  // namespace sparkle::amdgpu::test
