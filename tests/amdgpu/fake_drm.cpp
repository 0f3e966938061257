// The fake libdrm (see fake_drm.hpp).
#include "fake_drm.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "gfx_target.hpp"
#include "registers.hpp"

namespace sparkle::amdgpu::test {

struct FakeDrm::Dev {
  size_t node = 0;
  Generation generation = Generation::Gfx11;
};
struct FakeDrm::Bo {
  Dev* dev = nullptr;
  uint64_t size = 0;
  uint32_t heap = 0;
  uint64_t flags = 0;
  std::vector<uint8_t> mem;
  bool cpu_mapped = false;
  std::vector<std::pair<uint64_t, uint64_t>> mappings;  // (va, size)
};
struct FakeDrm::Va {
  Dev* dev = nullptr;
  uint64_t start = 0, size = 0;
};
struct FakeDrm::Ctx {
  Dev* dev = nullptr;
  uint64_t last_seq = 0;
};
struct FakeDrm::List {
  std::set<Bo*> bos;
};

namespace {

constexpr uint64_t kPage = 4096;

template <class T, class H>
T* from(H h) {
  return reinterpret_cast<T*>(h);
}

}  // namespace

FakeNode amdgpu_node(const std::string& render_node, const std::string& target) {
  struct Row {
    const char* target;
    uint16_t device;
    uint32_t family, rev, gfx_major;
    const char* name;
  };
  static const Row rows[] = {
      {"gfx1100", 0x744c, 145, 0x01, 11, "AMD Radeon RX 7900 XTX"},
      {"gfx1101", 0x747e, 145, 0x20, 11, "AMD Radeon RX 7800 XT"},
      {"gfx1030", 0x73bf, 143, 0x28, 10, "AMD Radeon RX 6900 XT"},
      {"gfx90a", 0x740c, 141, 0x3C, 9, "AMD Instinct MI250X"},
      {"gfx1010", 0x731f, 143, 0x01, 10, "AMD Radeon RX 5700 XT"},
  };
  FakeNode n;
  n.entry.render_node = render_node;
  n.entry.pci = true;
  n.entry.vendor_id = 0x1002;
  n.entry.revision_id = 0xc8;
  n.entry.pci_bus = "0000:03:00.0";
  n.version = {"amdgpu", 3, 54, 0};
  for (const Row& r : rows) {
    if (target != r.target) continue;
    n.entry.device_id = r.device;
    n.gpu.asic_id = r.device;
    n.gpu.family_id = r.family;
    n.gpu.chip_external_rev = r.rev;
    n.gpu.pci_rev_id = 0xc8;
    n.gpu.num_shader_engines = 6;
    n.gpu.cu_active_number = 96;
    n.gpu.max_engine_clk = 2500000;   // kHz
    n.gpu.gpu_counter_freq = 100000;  // kHz
    n.gfx.hw_ip_version_major = r.gfx_major;
    n.gfx.available_rings = 1;
    n.compute.hw_ip_version_major = r.gfx_major;
    n.compute.available_rings = 0xf;
    n.compute.ib_start_alignment = 32;
    n.compute.ib_size_alignment = 32;
    n.marketing_name = r.name;
  }
  return n;
}

FakeNode other_node(const std::string& render_node, const std::string& driver, uint16_t vendor) {
  FakeNode n;
  n.entry.render_node = render_node;
  n.entry.pci = true;
  n.entry.vendor_id = vendor;
  n.entry.device_id = 0x1234;
  n.entry.pci_bus = "0000:00:02.0";
  n.version = {driver, 1, 6, 0};
  return n;
}

FakeDrm::FakeDrm() = default;

FakeDrm::~FakeDrm() {
  for (auto* b : bos_) delete b;
  for (auto* v : vas_) delete v;
  for (auto* c : ctxs_) delete c;
  for (auto* l : lists_) delete l;
  for (auto* d : devs_) delete d;
}

void FakeDrm::fail(const std::string& call, int rc, int after) {
  std::lock_guard lock(mutex_);
  once_[call].push_back({after, rc});
}

void FakeDrm::fail_always(const std::string& call, int rc) {
  std::lock_guard lock(mutex_);
  always_[call] = rc;
}

int FakeDrm::injected(const std::string& call) {
  calls_.push_back(call);
  if (auto it = always_.find(call); it != always_.end()) return it->second;
  auto it = once_.find(call);
  if (it == once_.end()) return 0;
  for (auto p = it->second.begin(); p != it->second.end(); ++p) {
    if (p->first == 0) {
      const int rc = p->second;
      it->second.erase(p);
      return rc;
    }
  }
  for (auto& p : it->second) p.first--;
  return 0;
}

void FakeDrm::violation(const std::string& what) { violations_.push_back(what); }

std::vector<std::string> FakeDrm::violations() const {
  std::lock_guard lock(mutex_);
  return violations_;
}
std::vector<SubmitRecord> FakeDrm::submissions() const {
  std::lock_guard lock(mutex_);
  return submissions_;
}
std::vector<std::string> FakeDrm::calls() const {
  std::lock_guard lock(mutex_);
  return calls_;
}
uint64_t FakeDrm::last_fence_timeout_ns() const {
  std::lock_guard lock(mutex_);
  return last_timeout_ns_;
}
size_t FakeDrm::count(const std::string& call) const {
  std::lock_guard lock(mutex_);
  return static_cast<size_t>(std::count(calls_.begin(), calls_.end(), call));
}
std::vector<amdgpu_bo_alloc_request> FakeDrm::allocations() const {
  std::lock_guard lock(mutex_);
  return allocations_;
}

std::string FakeDrm::live_objects() const {
  std::lock_guard lock(mutex_);
  std::string out;
  auto add = [&](size_t n, const char* what) {
    if (n == 0) return;
    out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + what;
  };
  add(bos_.size(), "buffer objects");
  add(vas_.size(), "VA ranges");
  add(ctxs_.size(), "contexts");
  add(lists_.size(), "BO lists");
  add(devs_.size(), "device handles");
  add(fds_.size(), "open nodes");
  return out;
}

FakeDrm::Bo* FakeDrm::bo_at(uint64_t va, uint64_t bytes, const std::set<Bo*>* listed) {
  for (Bo* b : bos_)
    for (const auto& [start, size] : b->mappings)
      if (va >= start && va - start <= size && bytes <= size - (va - start)) {
        if (listed != nullptr && listed->count(b) == 0) return nullptr;
        return b;
      }
  return nullptr;
}

std::vector<uint8_t> FakeDrm::read_va(uint64_t va, size_t bytes) const {
  std::lock_guard lock(mutex_);
  for (Bo* b : bos_)
    for (const auto& [start, size] : b->mappings)
      if (va >= start && va + bytes <= start + size)
        return std::vector<uint8_t>(
            b->mem.begin() + static_cast<std::ptrdiff_t>(va - start),
            b->mem.begin() + static_cast<std::ptrdiff_t>(va - start + bytes));
  return {};
}

int FakeDrm::get_devices(std::vector<DrmDeviceEntry>* out) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("get_devices"); rc != 0) return rc;
  out->clear();
  if (devices_rc != 0) return devices_rc;
  for (const auto& n : nodes)
    if (n.listed) out->push_back(n.entry);
  return 0;
}

int FakeDrm::open_node(const std::string& path) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("open_node"); rc != 0) return rc;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].entry.render_node == path) {
      const int fd = next_fd_++;
      fds_[fd] = i;
      return fd;
    }
  }
  return -ENOENT;
}

void FakeDrm::close_node(int fd) {
  std::lock_guard lock(mutex_);
  calls_.push_back("close_node");
  if (fds_.erase(fd) == 0)
    violation("close_node of fd " + std::to_string(fd) + " that is not open");
}

int FakeDrm::get_version(int fd, DrmVersion* out) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("get_version"); rc != 0) return rc;
  auto it = fds_.find(fd);
  if (it == fds_.end()) {
    violation("drmGetVersion on fd " + std::to_string(fd) + " that is not open");
    return -EBADF;
  }
  *out = nodes[it->second].version;
  return 0;
}

int FakeDrm::device_initialize(int fd, uint32_t* major, uint32_t* minor,
                               amdgpu_device_handle* dev) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("device_initialize"); rc != 0) return rc;
  auto it = fds_.find(fd);
  if (it == fds_.end()) {
    violation("amdgpu_device_initialize on fd " + std::to_string(fd) + " that is not open");
    return -EBADF;
  }
  const FakeNode& n = nodes[it->second];
  if (n.version.name != "amdgpu") {
    violation("amdgpu_device_initialize on a " + n.version.name + " node");
    return -EINVAL;
  }
  if (major == nullptr || minor == nullptr || dev == nullptr) {
    violation("amdgpu_device_initialize with a null out pointer");
    return -EINVAL;
  }
  auto* d = new Dev;
  d->node = it->second;
  std::string why;
  if (auto t = identify_target(n.gpu.family_id, n.gpu.chip_external_rev, n.gfx.hw_ip_version_major,
                               &why))
    d->generation = t->generation;
  devs_.insert(d);
  *major = static_cast<uint32_t>(n.version.major);
  *minor = static_cast<uint32_t>(n.version.minor);
  *dev = reinterpret_cast<amdgpu_device_handle>(d);
  return 0;
}

int FakeDrm::device_deinitialize(amdgpu_device_handle dev) {
  std::lock_guard lock(mutex_);
  calls_.push_back("device_deinitialize");
  auto* d = from<Dev>(dev);
  if (devs_.erase(d) == 0) {
    violation("amdgpu_device_deinitialize of an unknown device");
    return -EINVAL;
  }
  for (Bo* b : bos_)
    if (b->dev == d) violation("device deinitialised with buffer objects alive");
  for (Ctx* c : ctxs_)
    if (c->dev == d) violation("device deinitialised with a context alive");
  delete d;
  return 0;
}

#define FAKE_DEV(dev, call)                                          \
  auto* d = from<Dev>(dev);                                          \
  if (devs_.count(d) == 0) {                                         \
    violation(std::string(call) + " with an unknown device handle"); \
    return -EINVAL;                                                  \
  }

int FakeDrm::query_gpu_info(amdgpu_device_handle dev, amdgpu_gpu_info* info) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("query_gpu_info"); rc != 0) return rc;
  FAKE_DEV(dev, "amdgpu_query_gpu_info");
  *info = nodes[d->node].gpu;
  return 0;
}

int FakeDrm::query_hw_ip_info(amdgpu_device_handle dev, unsigned type, unsigned ip_instance,
                              drm_amdgpu_info_hw_ip* info) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("query_hw_ip_info"); rc != 0) return rc;
  FAKE_DEV(dev, "amdgpu_query_hw_ip_info");
  if (ip_instance != 0)
    violation("amdgpu_query_hw_ip_info for instance " + std::to_string(ip_instance));
  if (type == AMDGPU_HW_IP_GFX) {
    *info = nodes[d->node].gfx;
  } else if (type == AMDGPU_HW_IP_COMPUTE) {
    *info = nodes[d->node].compute;
  } else {
    violation("amdgpu_query_hw_ip_info for ip type " + std::to_string(type));
    return -EINVAL;
  }
  return 0;
}

int FakeDrm::query_heap_info(amdgpu_device_handle dev, uint32_t heap, uint32_t,
                             amdgpu_heap_info* info) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("query_heap_info"); rc != 0) return rc;
  FAKE_DEV(dev, "amdgpu_query_heap_info");
  std::memset(info, 0, sizeof *info);
  info->heap_size = heap == AMDGPU_GEM_DOMAIN_VRAM ? (24ull << 30) : (64ull << 30);
  return 0;
}

const char* FakeDrm::get_marketing_name(amdgpu_device_handle dev) {
  std::lock_guard lock(mutex_);
  calls_.push_back("get_marketing_name");
  auto* d = from<Dev>(dev);
  if (devs_.count(d) == 0) return nullptr;
  const auto& name = nodes[d->node].marketing_name;
  return name.empty() ? nullptr : name.c_str();
}

int FakeDrm::bo_alloc(amdgpu_device_handle dev, amdgpu_bo_alloc_request* req,
                      amdgpu_bo_handle* bo) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("bo_alloc"); rc != 0) return rc;
  FAKE_DEV(dev, "amdgpu_bo_alloc");
  allocations_.push_back(*req);
  if (req->alloc_size == 0 || req->alloc_size % kPage != 0)
    violation("amdgpu_bo_alloc of " + std::to_string(req->alloc_size) + " bytes (not whole pages)");
  if (req->preferred_heap != AMDGPU_GEM_DOMAIN_VRAM && req->preferred_heap != AMDGPU_GEM_DOMAIN_GTT)
    violation("amdgpu_bo_alloc in heap " + std::to_string(req->preferred_heap));
  if ((req->flags & AMDGPU_GEM_CREATE_CPU_GTT_USWC) != 0 &&
      req->preferred_heap != AMDGPU_GEM_DOMAIN_GTT)
    violation("CPU_GTT_USWC requested outside GTT");
  auto* b = new Bo;
  b->dev = d;
  b->size = req->alloc_size;
  b->heap = req->preferred_heap;
  b->flags = req->flags;
  b->mem.assign(static_cast<size_t>(req->alloc_size), 0xCD);  // not zero: nothing may rely on it
  bos_.insert(b);
  *bo = reinterpret_cast<amdgpu_bo_handle>(b);
  return 0;
}

int FakeDrm::bo_free(amdgpu_bo_handle bo) {
  std::lock_guard lock(mutex_);
  calls_.push_back("bo_free");
  auto* b = from<Bo>(bo);
  if (bos_.erase(b) == 0) {
    violation("amdgpu_bo_free of an unknown buffer object");
    return -EINVAL;
  }
  if (b->cpu_mapped) violation("amdgpu_bo_free of a buffer still CPU-mapped");
  if (!b->mappings.empty()) violation("amdgpu_bo_free of a buffer still mapped into the GPU VM");
  for (List* l : lists_)
    if (l->bos.count(b) != 0) violation("amdgpu_bo_free of a buffer in a live BO list");
  delete b;
  return 0;
}

int FakeDrm::bo_cpu_map(amdgpu_bo_handle bo, void** cpu) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("bo_cpu_map"); rc != 0) return rc;
  auto* b = from<Bo>(bo);
  if (bos_.count(b) == 0) {
    violation("amdgpu_bo_cpu_map of an unknown buffer object");
    return -EINVAL;
  }
  if (b->heap == AMDGPU_GEM_DOMAIN_VRAM && (b->flags & AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED) == 0)
    violation("amdgpu_bo_cpu_map of VRAM allocated without CPU_ACCESS_REQUIRED");
  b->cpu_mapped = true;
  *cpu = b->mem.data();
  return 0;
}

int FakeDrm::bo_cpu_unmap(amdgpu_bo_handle bo) {
  std::lock_guard lock(mutex_);
  calls_.push_back("bo_cpu_unmap");
  auto* b = from<Bo>(bo);
  if (bos_.count(b) == 0 || !b->cpu_mapped) {
    violation("amdgpu_bo_cpu_unmap of a buffer that is not CPU-mapped");
    return -EINVAL;
  }
  b->cpu_mapped = false;
  return 0;
}

int FakeDrm::va_range_alloc(amdgpu_device_handle dev, amdgpu_gpu_va_range type, uint64_t size,
                            uint64_t alignment, uint64_t base_required, uint64_t* va,
                            amdgpu_va_handle* handle, uint64_t flags) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("va_range_alloc"); rc != 0) return rc;
  FAKE_DEV(dev, "amdgpu_va_range_alloc");
  if (type != amdgpu_gpu_va_range_general)
    violation("amdgpu_va_range_alloc of a non-general range");
  if (size == 0 || size % kPage != 0)
    violation("amdgpu_va_range_alloc of " + std::to_string(size) + " bytes");
  if (alignment != 0 && (alignment & (alignment - 1)) != 0)
    violation("VA alignment not a power of two");
  if (base_required != 0 || flags != 0)
    violation("amdgpu_va_range_alloc with a fixed base or flags");
  const uint64_t align = std::max<uint64_t>(alignment, kPage);
  next_va_ = (next_va_ + align - 1) / align * align;
  auto* v = new Va;
  v->dev = d;
  v->start = next_va_;
  v->size = size;
  next_va_ += size + kPage;  // a guard page between ranges
  vas_.insert(v);
  *va = v->start;
  *handle = reinterpret_cast<amdgpu_va_handle>(v);
  return 0;
}

int FakeDrm::va_range_free(amdgpu_va_handle handle) {
  std::lock_guard lock(mutex_);
  calls_.push_back("va_range_free");
  auto* v = from<Va>(handle);
  if (vas_.erase(v) == 0) {
    violation("amdgpu_va_range_free of an unknown range");
    return -EINVAL;
  }
  for (Bo* b : bos_)
    for (const auto& [start, size] : b->mappings)
      if (start < v->start + v->size && v->start < start + size)
        violation("amdgpu_va_range_free of a range that still has a buffer mapped");
  delete v;
  return 0;
}

int FakeDrm::bo_va_op(amdgpu_bo_handle bo, uint64_t offset, uint64_t size, uint64_t addr,
                      uint64_t flags, uint32_t ops) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected(ops == AMDGPU_VA_OP_MAP ? "bo_va_op_map" : "bo_va_op_unmap"); rc != 0)
    return rc;
  auto* b = from<Bo>(bo);
  if (bos_.count(b) == 0) {
    violation("amdgpu_bo_va_op on an unknown buffer object");
    return -EINVAL;
  }
  if (offset != 0 || size != b->size) violation("amdgpu_bo_va_op of part of a buffer object");
  if (flags != 0) violation("amdgpu_bo_va_op with flags (libdrm ignores them)");
  if (addr % kPage != 0) violation("amdgpu_bo_va_op at an unaligned address");
  if (ops == AMDGPU_VA_OP_MAP) {
    bool reserved = false;
    for (Va* v : vas_)
      if (v->dev == b->dev && addr >= v->start && addr + size <= v->start + v->size)
        reserved = true;
    if (!reserved) violation("amdgpu_bo_va_op MAP outside any reserved VA range");
    for (Bo* o : bos_)
      for (const auto& [start, sz] : o->mappings)
        if (start < addr + size && addr < start + sz)
          violation("amdgpu_bo_va_op MAP over another mapping");
    b->mappings.push_back({addr, size});
  } else if (ops == AMDGPU_VA_OP_UNMAP) {
    auto it = std::find(b->mappings.begin(), b->mappings.end(), std::make_pair(addr, size));
    if (it == b->mappings.end()) {
      violation("amdgpu_bo_va_op UNMAP of a mapping that does not exist");
      return -EINVAL;
    }
    b->mappings.erase(it);
  } else {
    violation("amdgpu_bo_va_op with op " + std::to_string(ops));
  }
  return 0;
}

int FakeDrm::cs_ctx_create(amdgpu_device_handle dev, amdgpu_context_handle* ctx) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("cs_ctx_create"); rc != 0) return rc;
  FAKE_DEV(dev, "amdgpu_cs_ctx_create");
  auto* c = new Ctx;
  c->dev = d;
  ctxs_.insert(c);
  *ctx = reinterpret_cast<amdgpu_context_handle>(c);
  return 0;
}

int FakeDrm::cs_ctx_free(amdgpu_context_handle ctx) {
  std::lock_guard lock(mutex_);
  calls_.push_back("cs_ctx_free");
  auto* c = from<Ctx>(ctx);
  if (ctxs_.erase(c) == 0) {
    violation("amdgpu_cs_ctx_free of an unknown context");
    return -EINVAL;
  }
  delete c;
  return 0;
}

int FakeDrm::bo_list_create(amdgpu_device_handle dev, uint32_t count, amdgpu_bo_handle* bos,
                            uint8_t* priorities, amdgpu_bo_list_handle* list) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("bo_list_create"); rc != 0) return rc;
  FAKE_DEV(dev, "amdgpu_bo_list_create");
  if (priorities != nullptr) violation("amdgpu_bo_list_create with priorities");
  auto* l = new List;
  for (uint32_t i = 0; i < count; ++i) {
    auto* b = from<Bo>(bos[i]);
    if (bos_.count(b) == 0) violation("amdgpu_bo_list_create with a freed buffer object");
    if (!l->bos.insert(b).second) violation("amdgpu_bo_list_create lists a buffer twice");
  }
  lists_.insert(l);
  *list = reinterpret_cast<amdgpu_bo_list_handle>(l);
  return 0;
}

int FakeDrm::bo_list_destroy(amdgpu_bo_list_handle list) {
  std::lock_guard lock(mutex_);
  calls_.push_back("bo_list_destroy");
  auto* l = from<List>(list);
  if (lists_.erase(l) == 0) {
    violation("amdgpu_bo_list_destroy of an unknown list");
    return -EINVAL;
  }
  delete l;
  return 0;
}

int FakeDrm::cs_submit(amdgpu_context_handle ctx, uint64_t flags, amdgpu_cs_request* req,
                       uint32_t count) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("cs_submit"); rc != 0) return rc;
  auto* c = from<Ctx>(ctx);
  if (ctxs_.count(c) == 0) {
    violation("amdgpu_cs_submit on an unknown context");
    return -EINVAL;
  }
  if (flags != 0 || count != 1) violation("amdgpu_cs_submit with flags or several requests");
  if (req->ip_type != AMDGPU_HW_IP_COMPUTE || req->ip_instance != 0)
    violation("amdgpu_cs_submit to ip " + std::to_string(req->ip_type) + " instance " +
              std::to_string(req->ip_instance) + ", not COMPUTE 0");
  if (req->ring >= 32 || ((nodes[c->dev->node].compute.available_rings >> req->ring) & 1) == 0)
    violation("amdgpu_cs_submit to ring " + std::to_string(req->ring) + ", which is not available");
  auto* list = from<List>(req->resources);
  if (lists_.count(list) == 0) {
    violation("amdgpu_cs_submit without a live BO list");
    return -EINVAL;
  }
  if (req->number_of_ibs != 1 || req->ibs == nullptr) {
    violation("amdgpu_cs_submit with " + std::to_string(req->number_of_ibs) + " IBs");
    return -EINVAL;
  }
  for (uint32_t i = 0; i < req->number_of_dependencies; ++i) {
    const amdgpu_cs_fence& f = req->dependencies[i];
    auto* dc = from<Ctx>(f.context);
    if (ctxs_.count(dc) == 0) {
      violation("dependency on a fence of a freed context");
    } else if (f.fence == 0 || f.fence > dc->last_seq) {
      violation("dependency on sequence " + std::to_string(f.fence) + " never submitted");
    }
    if (f.ip_type != AMDGPU_HW_IP_COMPUTE) violation("dependency on a non-compute fence");
  }
  const amdgpu_cs_ib_info& ib = req->ibs[0];
  Bo* ib_bo = bo_at(ib.ib_mc_address, uint64_t{ib.size} * 4, &list->bos);
  if (ib.size == 0 || ib_bo == nullptr) {
    violation("IB at VA " + std::to_string(ib.ib_mc_address) + " (" + std::to_string(ib.size) +
              " dwords) is not inside a buffer of the submission's list");
    return -EINVAL;
  }
  if (ib.ib_mc_address % 32 != 0) violation("IB start not aligned to ib_start_alignment");
  SubmitRecord record;
  record.dependencies = req->number_of_dependencies;
  const uint64_t off = ib.ib_mc_address - [&] {
    for (const auto& [start, size] : ib_bo->mappings)
      if (ib.ib_mc_address >= start && ib.ib_mc_address < start + size) return start;
    return uint64_t{0};
  }();
  record.ib.resize(ib.size);
  std::memcpy(record.ib.data(), ib_bo->mem.data() + off, uint64_t{ib.size} * 4);
  try {
    record.decoded = pm4::decode(record.ib, c->dev->generation, 8);
  } catch (const pm4::Pm4Error& e) {
    violation(std::string("submitted IB: ") + e.what());
    return -EINVAL;
  }
  // The fake GPU: dispatches run now, in order, then the timestamps.
  for (const auto& d : record.decoded.dispatches)
    run_dispatch(d, list->bos, record, c->dev->generation);
  for (size_t i = 0; i < record.decoded.timestamps.size(); ++i) {
    const uint64_t va = record.decoded.timestamps[i].address;
    Bo* b = bo_at(va, 8, &list->bos);
    if (b == nullptr) {
      violation("timestamp written outside the listed buffers");
      continue;
    }
    const uint64_t t = clock_ + (i == 0 ? 0 : ticks_per_submission);
    for (const auto& [start, size] : b->mappings)
      if (va >= start && va < start + size) std::memcpy(b->mem.data() + (va - start), &t, 8);
  }
  clock_ += ticks_per_submission + 100;
  req->seq_no = ++c->last_seq;
  record.sequence = req->seq_no;
  submissions_.push_back(std::move(record));
  return 0;
}

void FakeDrm::run_dispatch(const pm4::DecodedDispatch& d, const std::set<Bo*>& listed,
                           SubmitRecord& record, Generation g) {
  if (program_.kernels.empty() || program_.generation != g) {
    violation("dispatch on a " + std::string(generation_name(g)) +
              " device, but the test registered no program for it");
    return;
  }
  auto reg = [&](Reg r) -> uint32_t {
    const auto info = find_register(g, r);
    if (!info) return 0;
    auto it = d.registers.find(info->address);
    return it == d.registers.end() ? 0 : it->second;
  };
  const uint64_t pgm = (uint64_t{reg(Reg::ComputePgmLo)} | uint64_t{reg(Reg::ComputePgmHi)} << 32)
                       << 8;
  Bo* code = bo_at(pgm, 4, &listed);
  if (code == nullptr) {
    violation("dispatch of code at " + std::to_string(pgm) + ", outside the listed buffers");
    return;
  }
  uint64_t code_base = 0;
  for (const auto& [start, size] : code->mappings)
    if (pgm >= start && pgm < start + size) code_base = start;
  const Kernel* k = nullptr;
  for (const auto& kk : program_.kernels)
    if (kk.code_vaddr == pgm - code_base) k = &kk;
  if (k == nullptr) {
    violation("dispatch of code at image offset " + std::to_string(pgm - code_base) +
              ", which is no kernel's entry");
    return;
  }
  const auto& kd = k->descriptor;
  DispatchRecord rec;
  rec.kernel = k->name;
  rec.registers = d.registers;
  for (int i = 0; i < 3; ++i) {
    rec.groups[i] = d.groups[i];
    rec.group_size[i] =
        reg(static_cast<Reg>(static_cast<int>(Reg::ComputeNumThreadX) + i)) & 0xFFFF;
    if (k->reqd_workgroup_size[i] != 0 && rec.group_size[i] != k->reqd_workgroup_size[i])
      violation(k->name + ": COMPUTE_NUM_THREAD differs from the required work-group size");
  }
  if (reg(Reg::ComputePgmRsrc1) != kd.compute_pgm_rsrc1)
    violation(k->name + ": RSRC1 is not the descriptor's");
  const uint32_t lds = (k->group_segment_fixed_size + 511) / 512;
  if (reg(Reg::ComputePgmRsrc2) != (kd.compute_pgm_rsrc2 | lds << 15))
    violation(k->name + ": RSRC2 is not the descriptor's with LDS_SIZE " + std::to_string(lds));
  if (g != Generation::Gfx9 && reg(Reg::ComputePgmRsrc3) != kd.compute_pgm_rsrc3)
    violation(k->name + ": RSRC3 is not the descriptor's");
  if (g != Generation::Gfx9 && ((d.initiator & pm4::kInitiatorCsW32En) != 0) != kd.wave32())
    violation(k->name + ": CS_W32_EN does not match the descriptor's wavefront size");
  const uint32_t ud0 = find_register(g, Reg::ComputeUserData0)->address;
  for (uint32_t i = 0; i < k->sgprs.user_sgpr_count; ++i)
    if (d.registers.count(ud0 + i) == 0)
      violation(k->name + ": USER_DATA_" + std::to_string(i) + " not written");
  const int ka = k->sgprs.kernarg_ptr();
  if (ka < 0) {
    violation(k->name + ": no kernarg pointer");
    return;
  }
  const uint64_t kernarg = uint64_t{d.registers.at(ud0 + static_cast<uint32_t>(ka))} |
                           uint64_t{d.registers.at(ud0 + static_cast<uint32_t>(ka) + 1)} << 32;
  Bo* kb = bo_at(kernarg, k->kernarg_segment_size, &listed);
  if (kb == nullptr) {
    violation(k->name + ": kernarg segment outside the listed buffers");
    return;
  }
  uint64_t kbase = 0;
  for (const auto& [start, size] : kb->mappings)
    if (kernarg >= start && kernarg < start + size) kbase = start;
  const uint8_t* args = kb->mem.data() + (kernarg - kbase);
  for (const auto& a : k->args) {
    uint64_t v = 0;
    std::memcpy(&v, args + a.offset, std::min<uint32_t>(a.size, 8));
    rec.args[a.name] = v;
  }
  if (k->name == "copy_words" || k->name == "copy_bytes") {
    const uint64_t unit = k->name == "copy_words" ? 4 : 1;
    const uint64_t n = rec.args["count"] * unit;
    const uint64_t items = uint64_t{d.groups[0]} * d.groups[1] * d.groups[2] * rec.group_size[0];
    if (items < rec.args["count"]) violation(k->name + ": grid smaller than the count");
    Bo* s = bo_at(rec.args["src"], n, &listed);
    Bo* t = bo_at(rec.args["dst"], n, &listed);
    if (s == nullptr || t == nullptr) {
      violation(k->name + ": source or destination range outside the listed buffers");
    } else if (n > 0) {
      auto base = [](Bo* b, uint64_t va) {
        for (const auto& [start, size] : b->mappings)
          if (va >= start && va < start + size) return start;
        return uint64_t{0};
      };
      std::memmove(t->mem.data() + (rec.args["dst"] - base(t, rec.args["dst"])),
                   s->mem.data() + (rec.args["src"] - base(s, rec.args["src"])), n);
    }
  }
  record.dispatches.push_back(std::move(rec));
}

int FakeDrm::cs_query_fence_status(amdgpu_cs_fence* fence, uint64_t timeout_ns, uint64_t flags,
                                   uint32_t* expired) {
  std::lock_guard lock(mutex_);
  if (const int rc = injected("cs_query_fence_status"); rc != 0) return rc;
  auto* c = from<Ctx>(fence->context);
  if (ctxs_.count(c) == 0) {
    violation("amdgpu_cs_query_fence_status on a freed context");
    return -EINVAL;
  }
  if (fence->ip_type != AMDGPU_HW_IP_COMPUTE || fence->ip_instance != 0 || fence->ring != 0)
    violation("fence query for another ring than the one submitted to");
  if (fence->fence == 0 || fence->fence > c->last_seq)
    violation("fence query for sequence " + std::to_string(fence->fence) + " never submitted");
  if (flags != 0) violation("fence query with flags");
  if (timeout_ns != 0) last_timeout_ns_ = timeout_ns;
  *expired = hang ? 0 : 1;
  return 0;
}

}  // namespace sparkle::amdgpu::test
