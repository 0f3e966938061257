// Recording and submitting IBs, waiting for them (see queue.hpp).
#include "queue.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <sparkle/plugin.hpp>

#include "pm4.hpp"
#include "pm4_decoder.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace sparkle::amdgpu {
namespace {

using plugin::Error;

constexpr uint64_t kBlockBytes = 64 * 1024;
constexpr uint64_t kKernargAlign = 64;
// hsa_kernel_dispatch_packet_t (64 bytes) for kernels that read the
// dispatch pointer (ours do not; kept correct for any code object).
constexpr uint64_t kDispatchPacketBytes = 64;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

void put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void put64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
void put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

uint64_t operand_address(const Bindings& b, Operand o) {
  switch (o) {
    case Operand::X:
      return b.x;
    case Operand::W:
      return b.w;
    case Operand::Bias:
      return b.bias;
    case Operand::Y:
      return b.y;
    case Operand::Src:
      return b.src;
    case Operand::Dst:
      return b.dst;
    case Operand::Value:
      break;
  }
  return 0;
}

// Space one dispatch needs in the block: kernargs, then its dispatch packet.
uint64_t kernarg_bytes(const Kernel& k) {
  uint64_t n = align_up(std::max<uint64_t>(k.kernarg_segment_size, 1), kKernargAlign);
  if (k.descriptor.kernel_code_properties & KernelDescriptor::kDispatchPtr)
    n += kDispatchPacketBytes;
  return n;
}

// Writes every argument of the kernel from the launch, at the offsets of
// the metadata. Hidden arguments (hidden_global_offset_x, ...) are zero.
void write_kernargs(const Kernel& k, const DispatchWork& w, uint8_t* out) {
  std::memset(out, 0, k.kernarg_segment_size);
  for (const KernelArg& a : k.args) {
    if (a.value_kind.rfind("hidden_", 0) == 0) continue;
    const LaunchArg* la = w.launch.arg(a.name);
    if (la == nullptr)
      throw Error(SPARKLE_INTERNAL, "kernel " + k.name + " has argument '" + a.name + "' (" +
                                        a.value_kind + ") that the launch does not set");
    if (a.value_kind == "global_buffer") {
      if (a.size != 8 || la->operand == Operand::Value)
        throw Error(SPARKLE_INTERNAL, "kernel " + k.name + ": argument " + a.name +
                                          " is a buffer; the launch gives a value");
      const uint64_t base = operand_address(w.bindings, la->operand);
      put64(out + a.offset, base == 0 ? 0 : base + la->byte_offset);
    } else if (a.value_kind == "by_value") {
      if (a.size != 4 || la->operand != Operand::Value)
        throw Error(SPARKLE_INTERNAL, "kernel " + k.name + ": argument " + a.name + " is a " +
                                          std::to_string(a.size) +
                                          "-byte value; the launch gives " +
                                          (la->operand == Operand::Value ? "4 bytes" : "a buffer"));
      put32(out + a.offset, la->value);
    } else {
      throw Error(SPARKLE_INTERNAL, "kernel " + k.name + ": argument kind " + a.value_kind +
                                        " of " + a.name + " is not supported");
    }
  }
  for (const LaunchArg& la : w.launch.args)
    if (k.arg(la.name) == nullptr)
      throw Error(SPARKLE_INTERNAL,
                  "launch sets '" + la.name + "', which kernel " + k.name + " does not have");
}

// The USER_DATA values of the kernel's user SGPRs (code_object.hpp layout).
std::vector<uint32_t> user_data(const Kernel& k, uint64_t kernarg_va, uint64_t packet_va,
                                uint64_t dispatch_id) {
  std::vector<uint32_t> v(k.sgprs.user_sgpr_count, 0);
  for (const SgprSlot& s : k.sgprs.user) {
    switch (s.what) {
      case UserSgpr::PrivateSegmentBuffer:
        // A null buffer resource: valid only because the kernel has no
        // scratch (checked by the caller); nothing reads through it.
        break;
      case UserSgpr::DispatchPtr:
        v[s.first] = static_cast<uint32_t>(packet_va);
        v[s.first + 1] = static_cast<uint32_t>(packet_va >> 32);
        break;
      case UserSgpr::KernargSegmentPtr:
        v[s.first] = static_cast<uint32_t>(kernarg_va);
        v[s.first + 1] = static_cast<uint32_t>(kernarg_va >> 32);
        break;
      case UserSgpr::DispatchId:
        v[s.first] = static_cast<uint32_t>(dispatch_id);
        v[s.first + 1] = static_cast<uint32_t>(dispatch_id >> 32);
        break;
      case UserSgpr::PrivateSegmentSize:
        v[s.first] = k.private_segment_fixed_size;
        break;
      case UserSgpr::QueuePtr:
        throw Error(SPARKLE_UNSUPPORTED, "kernel " + k.name +
                                             " reads an HSA queue pointer, which submission "
                                             "through the amdgpu CS ioctl does not have");
      case UserSgpr::FlatScratchInit:
        throw Error(SPARKLE_UNSUPPORTED,
                    "kernel " + k.name + " needs flat scratch, which this backend does not set up");
    }
  }
  return v;
}

void check_runnable(const Kernel& k, const Launch& l) {
  if (k.private_segment_fixed_size != 0 || k.descriptor.scratch_enabled() ||
      (k.descriptor.kernel_code_properties & KernelDescriptor::kUsesDynamicStack) != 0)
    throw Error(SPARKLE_UNSUPPORTED,
                "kernel " + k.name + " needs " + std::to_string(k.private_segment_fixed_size) +
                    " bytes of scratch per work-item; this backend sets up none");
  for (int d = 0; d < 3; ++d) {
    if (k.reqd_workgroup_size[d] != 0 && k.reqd_workgroup_size[d] != l.group_size[d])
      throw Error(SPARKLE_INTERNAL, "kernel " + k.name + " requires work-group size " +
                                        std::to_string(k.reqd_workgroup_size[d]) + " in dim " +
                                        std::to_string(d) + "; the launch uses " +
                                        std::to_string(l.group_size[d]));
    if (l.groups[d] == 0)
      throw Error(SPARKLE_INTERNAL, "launch of " + k.name + " has an empty grid");
  }
}

// Write-combined CPU writes (kernargs, upload staging) must leave the CPU's
// buffers before the GPU is told to read them.
void flush_cpu_writes() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_sfence();
#endif
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace

QueueCore::QueueCore(std::shared_ptr<DeviceCore> core, std::shared_ptr<ProgramCache> programs)
    : core_(std::move(core)), programs_(std::move(programs)) {
  core_->check_alive();
  const int rc = core_->api().cs_ctx_create(core_->handle(), &ctx_);
  if (rc != 0) {
    ctx_ = nullptr;
    core_->fail(rc, "amdgpu_cs_ctx_create");
  }
}

QueueCore::~QueueCore() {
  std::deque<std::shared_ptr<Submission>> pending;
  {
    std::lock_guard lock(mutex_);
    pending = in_flight_;
  }
  for (const auto& s : pending) {
    try {
      wait(s);
    } catch (const std::exception& e) {
      plugin::log(SPARKLE_LOG_WARN, std::string("queue teardown: ") + e.what());
      break;  // a lost or hung device: the rest cannot complete either
    }
  }
  {
    std::lock_guard lock(mutex_);
    in_flight_.clear();
    free_blocks_.clear();
  }
  if (ctx_ != nullptr) core_->api().cs_ctx_free(ctx_);
}

std::shared_ptr<GpuBo> QueueCore::take_block(uint64_t bytes) {
  if (bytes <= kBlockBytes && !free_blocks_.empty()) {
    auto b = std::move(free_blocks_.back());
    free_blocks_.pop_back();
    return b;
  }
  return std::make_shared<GpuBo>(core_, std::max(bytes, kBlockBytes), Domain::GttCached,
                                 "command buffer and kernel arguments");
}

std::shared_ptr<Submission> QueueCore::submit(const std::vector<DispatchWork>& work,
                                              const Dependencies& deps,
                                              std::vector<std::shared_ptr<GpuBo>> keep,
                                              std::function<void()> on_complete,
                                              const std::string& what) {
  core_->check_alive();
  retire_finished();
  for (const auto& w : work) check_runnable(*w.kernel, w.launch);
  std::shared_ptr<const LoadedProgram> program;
  if (!work.empty()) program = programs_->program();

  // Block layout: [kernargs (+ dispatch packets)...][2 timestamps][IB].
  uint64_t args_bytes = 0;
  for (const auto& w : work) args_bytes += kernarg_bytes(*w.kernel);
  const uint64_t ts_offset = align_up(args_bytes, 8);
  const uint64_t ib_offset = align_up(ts_offset + 16, 256);

  std::lock_guard lock(mutex_);
  const Generation gen = core_->generation();
  // The IB is built before the block is taken, to know its size.
  std::vector<uint8_t> args(static_cast<size_t>(args_bytes), 0);
  // Placeholder base address: the block's VA is known only once taken, so
  // the IB is built twice at most (only when a fresh block is needed).
  auto s = std::make_shared<Submission>();
  s->what = what;
  uint64_t need = ib_offset + 4096;
  std::shared_ptr<GpuBo> block;
  pm4::CommandBuffer cb(gen);
  for (int attempt = 0; attempt < 2; ++attempt) {
    block = take_block(need);
    cb = pm4::CommandBuffer(gen);
    uint64_t at = 0;
    cb.event_write(pm4::kEventCsPartialFlush, pm4::kEventIndexPartialFlush);
    cb.acquire_mem_all();
    cb.release_mem_timestamp(block->va() + ts_offset);
    for (const auto& w : work) {
      const Kernel& k = *w.kernel;
      const uint64_t kernarg_va = block->va() + at;
      const uint64_t packet_va =
          kernarg_va + align_up(std::max<uint64_t>(k.kernarg_segment_size, 1), kKernargAlign);
      write_kernargs(k, w, args.data() + at);
      if (k.descriptor.kernel_code_properties & KernelDescriptor::kDispatchPtr) {
        uint8_t* p = args.data() + (packet_va - block->va());
        std::memset(p, 0, kDispatchPacketBytes);
        put16(p + 2, 3);  // setup: dimensions
        for (int d = 0; d < 3; ++d) {
          put16(p + 4 + 2 * d, static_cast<uint16_t>(w.launch.group_size[d]));
          put32(p + 12 + 4 * d, w.launch.groups[d] * w.launch.group_size[d]);
        }
        put32(p + 24, k.private_segment_fixed_size);
        put32(p + 28, k.group_segment_fixed_size);
        put64(p + 32, program->image->va() + k.descriptor_vaddr);
        put64(p + 40, kernarg_va);
      }
      pm4::DispatchSetup ds;
      ds.code_address = program->entry_va(k);
      ds.rsrc1 = k.descriptor.compute_pgm_rsrc1;
      ds.rsrc2 = k.descriptor.compute_pgm_rsrc2;
      ds.rsrc3 = k.descriptor.compute_pgm_rsrc3;
      ds.write_rsrc3 = gen != Generation::Gfx9 || k.descriptor.compute_pgm_rsrc3 != 0;
      ds.lds_bytes = k.group_segment_fixed_size;
      ds.wave32 = k.descriptor.wave32();
      ds.user_data = user_data(k, kernarg_va, packet_va,
                               dispatch_id_ + static_cast<uint64_t>(&w - work.data()));
      for (int d = 0; d < 3; ++d) {
        ds.group_size[d] = w.launch.group_size[d];
        ds.groups[d] = w.launch.groups[d];
      }
      pm4::emit_dispatch(cb, ds);
      at += kernarg_bytes(k);
    }
    cb.event_write(pm4::kEventCsPartialFlush, pm4::kEventIndexPartialFlush);
    cb.release_mem_timestamp(block->va() + ts_offset + 8);
    cb.pad_to(core_->ib_pad_dwords());
    need = ib_offset + cb.size() * 4;
    if (need <= block->size()) break;
    if (attempt == 1) throw Error(SPARKLE_INTERNAL, "command block too small for " + what);
    // Too small for this IB: keep it for later and take a bigger one.
    if (block->size() == kBlockBytes) free_blocks_.push_back(block);
    block.reset();
  }
  // Never submit a stream the decoder rejects.
  try {
    pm4::decode(cb.words(), gen, core_->ib_pad_dwords());
  } catch (const pm4::Pm4Error& e) {
    free_blocks_.push_back(block);
    throw Error(SPARKLE_INTERNAL, "built an invalid command stream for " + what + ": " + e.what());
  }
  if (!args.empty()) std::memcpy(block->cpu(), args.data(), args.size());
  std::memset(block->cpu() + ts_offset, 0, 16);
  std::memcpy(block->cpu() + ib_offset, cb.words().data(), cb.size() * 4);
  flush_cpu_writes();

  // The kernel needs every buffer the IB touches in the submission's list.
  std::vector<amdgpu_bo_handle> handles;
  handles.push_back(block->handle());
  if (program) handles.push_back(program->image->handle());
  for (const auto& b : keep)
    if (b && std::find(handles.begin(), handles.end(), b->handle()) == handles.end())
      handles.push_back(b->handle());
  DrmApi& api = core_->api();
  amdgpu_bo_list_handle list = nullptr;
  int rc = api.bo_list_create(core_->handle(), static_cast<uint32_t>(handles.size()),
                              handles.data(), nullptr, &list);
  if (rc != 0) {
    free_blocks_.push_back(block);
    core_->fail(
        rc, "amdgpu_bo_list_create(" + std::to_string(handles.size()) + " buffers, " + what + ")");
  }
  amdgpu_cs_ib_info ib{};
  ib.ib_mc_address = block->va() + ib_offset;
  ib.size = static_cast<uint32_t>(cb.size());
  std::vector<amdgpu_cs_fence> dep_copy = deps.gpu;
  amdgpu_cs_request req{};
  req.ip_type = AMDGPU_HW_IP_COMPUTE;
  req.ip_instance = 0;
  req.ring = 0;
  req.resources = list;
  req.number_of_dependencies = static_cast<uint32_t>(dep_copy.size());
  req.dependencies = dep_copy.empty() ? nullptr : dep_copy.data();
  req.number_of_ibs = 1;
  req.ibs = &ib;
  rc = api.cs_submit(ctx_, 0, &req, 1);
  api.bo_list_destroy(list);
  if (rc != 0) {
    free_blocks_.push_back(block);
    core_->fail(rc, "amdgpu_cs_submit(" + what + ")");
  }
  dispatch_id_ += work.size();
  s->fence.context = ctx_;
  s->fence.ip_type = AMDGPU_HW_IP_COMPUTE;
  s->fence.ip_instance = 0;
  s->fence.ring = 0;
  s->fence.fence = req.seq_no;
  s->keep_ = std::move(keep);
  if (program) s->keep_.push_back(program->image);
  s->block_ = std::move(block);
  s->timestamp_offset_ = ts_offset;
  s->on_complete_ = std::move(on_complete);
  s->prerequisites_ = deps.host;
  in_flight_.push_back(s);
  return s;
}

bool QueueCore::query(const std::shared_ptr<Submission>& s, uint64_t timeout_ns) {
  {
    std::lock_guard lock(mutex_);
    if (!s->error.empty()) throw Error(SPARKLE_DEVICE_ERROR, s->error);
    if (s->done) return true;
  }
  core_->check_alive();
  amdgpu_cs_fence f = s->fence;
  uint32_t expired = 0;
  const int rc = core_->api().cs_query_fence_status(&f, timeout_ns, 0, &expired);
  if (rc != 0) {
    try {
      core_->fail(rc, "amdgpu_cs_query_fence_status(" + s->what + ", sequence " +
                          std::to_string(s->fence.fence) + ")");
    } catch (const Error& e) {
      std::lock_guard lock(mutex_);
      s->error = e.what();
      throw;
    }
  }
  if (expired == 0) return false;
  // The host sides of other queues' work that what retires here waited for
  // run first (without our lock: they take their own queues' locks).
  std::vector<HostPrerequisite> before;
  {
    std::lock_guard lock(mutex_);
    for (const auto& f : in_flight_) {
      if (f->fence.fence > s->fence.fence) break;
      before.insert(before.end(), f->prerequisites_.begin(), f->prerequisites_.end());
    }
  }
  for (const auto& p : before) p.queue->wait(p.submission);
  std::lock_guard lock(mutex_);
  retire_through(s->fence.fence);
  return true;
}

bool QueueCore::poll(const std::shared_ptr<Submission>& s) { return query(s, 0); }

void QueueCore::wait(const std::shared_ptr<Submission>& s) {
  if (query(s, core_->fence_timeout_ns())) return;
  const std::string msg = "amdgpu_cs_query_fence_status on " + core_->node() + ": " + s->what +
                          " (sequence " + std::to_string(s->fence.fence) +
                          ") did not finish within " +
                          std::to_string(core_->fence_timeout_ns() / 1000000) +
                          " ms (SPARKLE_AMDGPU_FENCE_TIMEOUT_MS); the GPU may be hung";
  throw Error(SPARKLE_DEVICE_ERROR, msg);
}

void QueueCore::wait_host_completions() {
  std::vector<std::shared_ptr<Submission>> pending;
  {
    std::lock_guard lock(mutex_);
    for (const auto& s : in_flight_)
      if (s->on_complete_) pending.push_back(s);
  }
  for (const auto& s : pending) wait(s);
}

void QueueCore::retire_through(uint64_t seq) {
  const double freq_khz = core_->description().gpu.gpu_counter_freq;
  while (!in_flight_.empty() && in_flight_.front()->fence.fence <= seq) {
    auto s = std::move(in_flight_.front());
    in_flight_.pop_front();
    if (s->on_complete_) s->on_complete_();
    s->on_complete_ = nullptr;
    if (s->block_ && freq_khz > 0) {
      uint64_t t[2];
      std::memcpy(t, s->block_->cpu() + s->timestamp_offset_, sizeof t);
      if (t[1] >= t[0] && t[0] != 0)
        s->elapsed_ns = static_cast<int64_t>(static_cast<double>(t[1] - t[0]) * 1e6 / freq_khz);
    }
    if (s->block_ && s->block_->size() == kBlockBytes) free_blocks_.push_back(std::move(s->block_));
    s->block_.reset();
    s->keep_.clear();
    s->prerequisites_.clear();
    s->done = true;
  }
}

void QueueCore::retire_finished() {
  // At most a few zero-timeout queries, so a queue nobody waits on still
  // recycles its memory.
  for (int i = 0; i < 4; ++i) {
    std::shared_ptr<Submission> oldest;
    {
      std::lock_guard lock(mutex_);
      if (in_flight_.empty()) return;
      oldest = in_flight_.front();
    }
    try {
      if (!query(oldest, 0)) return;
    } catch (const Error&) {
      return;  // reported to whoever waits on it
    }
  }
}

}  // namespace sparkle::amdgpu
