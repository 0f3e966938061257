// Buffers, plans, queues and fences of an amdgpu device (see device.hpp).
#include "device.hpp"

#include <cstring>
#include <string>

namespace sparkle::amdgpu {
namespace {

using plugin::Error;

AmdBuffer& as_buffer(plugin::Buffer* b, const AmdDevice& device, const char* what) {
  auto* ab = dynamic_cast<AmdBuffer*>(b);
  if (ab == nullptr)
    throw Error(SPARKLE_INVALID_ARGUMENT, std::string(what) + " is not an amdgpu buffer");
  if (&ab->device() != &device)
    throw Error(SPARKLE_INVALID_ARGUMENT, std::string(what) + " belongs to another amdgpu device");
  return *ab;
}

uint64_t bytes_of(int64_t elements) { return static_cast<uint64_t>(elements) * sizeof(float); }

}  // namespace

// ---- AmdBuffer ----

AmdBuffer::AmdBuffer(AmdDevice& device, std::shared_ptr<GpuBo> bo, sparkle_memory_kind kind,
                     size_t bytes)
    : device_(device), bo_(std::move(bo)), kind_(kind), bytes_(bytes) {}

void AmdBuffer::check_range(size_t offset, size_t n, const char* what) const {
  if (offset > bytes_ || n > bytes_ - offset)
    throw Error(SPARKLE_INVALID_ARGUMENT, std::string(what) + " of " + std::to_string(n) +
                                              " bytes at offset " + std::to_string(offset) +
                                              " runs past the " + std::to_string(bytes_) +
                                              "-byte buffer");
}

void AmdBuffer::upload(size_t offset, const void* src, size_t bytes) {
  check_range(offset, bytes, "upload");
  if (kind_ != SPARKLE_MEMORY_DEVICE) {
    if (bytes > 0) std::memcpy(bo_->cpu() + offset, src, bytes);
    return;
  }
  device_.own_queue().write(this, offset, src, bytes, {})->wait();
}

void AmdBuffer::download(size_t offset, void* dst, size_t bytes) {
  check_range(offset, bytes, "download");
  if (kind_ != SPARKLE_MEMORY_DEVICE) {
    if (bytes > 0) std::memcpy(dst, bo_->cpu() + offset, bytes);
    return;
  }
  device_.own_queue().read(this, offset, dst, bytes, {})->wait();
}

void* AmdBuffer::map() { return kind_ == SPARKLE_MEMORY_DEVICE ? nullptr : bo_->cpu(); }

// ---- AmdFence ----

int64_t AmdFence::elapsed_ns() {
  if (!queue_->poll(submission_)) return -1;
  return submission_->elapsed_ns;
}

// ---- AmdPlan ----

AmdPlan::AmdPlan(AmdDevice& device, const sparkle_conv2d_desc& desc, Conv2dKernel kernel,
                 std::shared_ptr<const LoadedProgram> program)
    : device_(device),
      desc_(desc),
      kernel_(kernel),
      program_(std::move(program)),
      kernel_info_(program_->code.kernel(conv2d_kernel_name(kernel))),
      launch_(plan_conv2d(desc, kernel)) {
  if (kernel_info_ == nullptr)
    throw Error(SPARKLE_INTERNAL, std::string("the ") + program_->code.target +
                                      " code object has no kernel " + conv2d_kernel_name(kernel));
}

std::unique_ptr<plugin::Fence> AmdPlan::enqueue(plugin::Buffer* x, plugin::Buffer* w,
                                                plugin::Buffer* bias, plugin::Buffer* y) {
  return device_.own_queue().conv2d(this, x, w, bias, y, {});
}

// ---- AmdQueue ----

Dependencies AmdQueue::dependencies(plugin::WaitList waits) {
  Dependencies deps;
  for (plugin::Fence* f : waits) {
    if (dynamic_cast<plugin::CompletedFence*>(f) != nullptr) continue;
    auto* af = dynamic_cast<AmdFence*>(f);
    if (af == nullptr)
      throw Error(SPARKLE_INVALID_ARGUMENT, "wait list holds a fence of another plugin");
    if (&af->queue()->core() != &core_->core())
      throw Error(SPARKLE_INVALID_ARGUMENT, "wait list holds a fence of another amdgpu device");
    // A signalled fence needs no dependency, and its context may be gone.
    if (af->poll()) continue;
    deps.gpu.push_back(af->submission()->fence);
    deps.host.push_back({af->queue(), af->submission()});
  }
  return deps;
}

std::unique_ptr<plugin::Fence> AmdQueue::fence(std::shared_ptr<Submission> s) {
  return std::make_unique<AmdFence>(core_, std::move(s));
}

std::unique_ptr<plugin::Fence> AmdQueue::write(plugin::Buffer* dst, size_t offset, const void* src,
                                               size_t bytes, plugin::WaitList waits) {
  AmdBuffer& d = as_buffer(dst, device_, "write destination");
  d.check_range(offset, bytes, "write");
  // The bytes of src are read when this write runs: after its wait list, and
  // after earlier work on this queue that delivers data to host memory (a
  // read) - any of them may be what produces src. The GPU part cannot wait
  // for host memory, so those are waited for here, on the CPU.
  for (plugin::Fence* f : waits) f->wait();
  core_->wait_host_completions();
  auto staging = std::make_shared<GpuBo>(device_.core(), std::max<size_t>(bytes, 1),
                                         Domain::GttWriteCombined, "upload staging");
  if (bytes > 0) std::memcpy(staging->cpu(), src, bytes);
  std::vector<DispatchWork> work;
  auto program = core_->programs()->program();
  for (auto& l : plan_copy(0, offset, bytes)) {
    DispatchWork dw;
    dw.kernel = program->code.kernel(l.kernel);
    dw.launch = std::move(l);
    dw.bindings.src = staging->va();
    dw.bindings.dst = d.bo()->va();
    work.push_back(std::move(dw));
  }
  auto s = core_->submit(work, Dependencies{}, {staging, d.bo()}, nullptr,
                         "write of " + std::to_string(bytes) + " bytes");
  return fence(std::move(s));
}

std::unique_ptr<plugin::Fence> AmdQueue::read(plugin::Buffer* src, size_t offset, void* dst,
                                              size_t bytes, plugin::WaitList waits) {
  AmdBuffer& sb = as_buffer(src, device_, "read source");
  sb.check_range(offset, bytes, "read");
  const auto deps = dependencies(waits);
  auto staging = std::make_shared<GpuBo>(device_.core(), std::max<size_t>(bytes, 1),
                                         Domain::GttCached, "readback staging");
  std::vector<DispatchWork> work;
  auto program = core_->programs()->program();
  for (auto& l : plan_copy(offset, 0, bytes)) {
    DispatchWork dw;
    dw.kernel = program->code.kernel(l.kernel);
    dw.launch = std::move(l);
    dw.bindings.src = sb.bo()->va();
    dw.bindings.dst = staging->va();
    work.push_back(std::move(dw));
  }
  GpuBo* stage = staging.get();
  auto s = core_->submit(
      work, deps, {staging, sb.bo()},
      [stage, dst, bytes] {
        if (bytes > 0) std::memcpy(dst, stage->cpu(), bytes);
      },
      "read of " + std::to_string(bytes) + " bytes");
  return fence(std::move(s));
}

std::unique_ptr<plugin::Fence> AmdQueue::copy(plugin::Buffer* src, size_t src_offset,
                                              plugin::Buffer* dst, size_t dst_offset, size_t bytes,
                                              plugin::WaitList waits) {
  AmdBuffer& s = as_buffer(src, device_, "copy source");
  AmdBuffer& d = as_buffer(dst, device_, "copy destination");
  s.check_range(src_offset, bytes, "copy source range");
  d.check_range(dst_offset, bytes, "copy destination range");
  const auto deps = dependencies(waits);
  std::vector<DispatchWork> work;
  auto program = core_->programs()->program();
  for (auto& l : plan_copy(src_offset, dst_offset, bytes)) {
    DispatchWork dw;
    dw.kernel = program->code.kernel(l.kernel);
    dw.launch = std::move(l);
    dw.bindings.src = s.bo()->va();
    dw.bindings.dst = d.bo()->va();
    work.push_back(std::move(dw));
  }
  return fence(core_->submit(work, deps, {s.bo(), d.bo()}, nullptr,
                             "copy of " + std::to_string(bytes) + " bytes"));
}

std::unique_ptr<plugin::Fence> AmdQueue::conv2d(plugin::Plan* plan, plugin::Buffer* x,
                                                plugin::Buffer* w, plugin::Buffer* bias,
                                                plugin::Buffer* y, plugin::WaitList waits) {
  auto* p = dynamic_cast<AmdPlan*>(plan);
  if (p == nullptr || &p->device() != &device_)
    throw Error(SPARKLE_INVALID_ARGUMENT, "plan does not belong to this amdgpu device");
  const auto& d = p->desc();
  AmdBuffer& xb = as_buffer(x, device_, "x");
  AmdBuffer& wb = as_buffer(w, device_, "w");
  AmdBuffer& yb = as_buffer(y, device_, "y");
  const int64_t cg = d.c / d.groups;
  xb.check_range(0, bytes_of(d.n * d.c * d.h * d.w), "x");
  wb.check_range(0, bytes_of(d.k * cg * d.r * d.s), "w");
  yb.check_range(0, bytes_of(d.n * d.k * d.out_h * d.out_w), "y");
  DispatchWork dw;
  dw.kernel = &p->kernel();
  dw.launch = p->launch();
  dw.bindings.x = xb.bo()->va();
  dw.bindings.w = wb.bo()->va();
  dw.bindings.y = yb.bo()->va();
  std::vector<std::shared_ptr<GpuBo>> keep = {xb.bo(), wb.bo(), yb.bo()};
  if (d.has_bias) {
    if (bias == nullptr)
      throw Error(SPARKLE_INVALID_ARGUMENT, "desc has a bias but no bias buffer was given");
    AmdBuffer& bb = as_buffer(bias, device_, "bias");
    bb.check_range(0, bytes_of(d.k), "bias");
    dw.bindings.bias = bb.bo()->va();
    keep.push_back(bb.bo());
  }
  const auto deps = dependencies(waits);
  return fence(core_->submit({dw}, deps, std::move(keep), nullptr, p->kernel_name()));
}

// ---- AmdDevice ----

AmdDevice::AmdDevice(std::shared_ptr<DeviceCore> core)
    : core_(std::move(core)),
      programs_(std::make_shared<ProgramCache>(core_)),
      choice_(kernel_choice_from_env()) {}

AmdDevice::~AmdDevice() = default;

void AmdDevice::check_supported(const sparkle_conv2d_desc& desc) {
  core_->check_alive();
  check_conv2d_limits(desc);
}

std::unique_ptr<plugin::Buffer> AmdDevice::create_buffer(size_t bytes) {
  auto bo =
      std::make_shared<GpuBo>(core_, std::max<size_t>(bytes, 1), Domain::Vram, "a device buffer");
  return std::make_unique<AmdBuffer>(*this, std::move(bo), SPARKLE_MEMORY_DEVICE, bytes);
}

std::unique_ptr<plugin::Buffer> AmdDevice::create_buffer_ex(const sparkle_buffer_desc& desc) {
  Domain domain;
  const char* purpose;
  switch (desc.kind) {
    case SPARKLE_MEMORY_DEVICE:
      return create_buffer(desc.bytes);
    case SPARKLE_MEMORY_UPLOAD:
      domain = Domain::GttWriteCombined;
      purpose = "an upload staging buffer";
      break;
    case SPARKLE_MEMORY_READBACK:
      domain = Domain::GttCached;
      purpose = "a readback staging buffer";
      break;
    default:
      throw Error(SPARKLE_UNSUPPORTED, "amdgpu has no memory kind " + std::to_string(desc.kind));
  }
  auto bo = std::make_shared<GpuBo>(core_, std::max<size_t>(desc.bytes, 1), domain, purpose);
  return std::make_unique<AmdBuffer>(*this, std::move(bo),
                                     static_cast<sparkle_memory_kind>(desc.kind), desc.bytes);
}

std::unique_ptr<plugin::Plan> AmdDevice::plan_conv2d(const sparkle_conv2d_desc& desc) {
  check_supported(desc);
  const Conv2dKernel kernel = choose_conv2d_kernel(desc, choice_);
  return std::make_unique<AmdPlan>(*this, desc, kernel, programs_->program());
}

std::unique_ptr<plugin::Queue> AmdDevice::create_queue(uint32_t /*flags*/) {
  // SPARKLE_QUEUE_TRANSFER is a hint; transfers run as copy kernels on the
  // compute ring like everything else (no SDMA path).
  return std::make_unique<AmdQueue>(*this, std::make_shared<QueueCore>(core_, programs_));
}

AmdQueue& AmdDevice::own_queue() {
  std::lock_guard lock(queue_mutex_);
  if (!own_queue_)
    own_queue_ = std::make_unique<AmdQueue>(*this, std::make_shared<QueueCore>(core_, programs_));
  return *own_queue_;
}

}  // namespace sparkle::amdgpu
