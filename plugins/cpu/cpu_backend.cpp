// The oneTBB CPU backend: one device (the host), host-memory buffers that can
// alias the caller's arrays, activation tensors kept in a blocked channel
// layout (cpu_buffer.hpp), and execution on TBB's arena: synchronous for
// v1.0 callers, or in order on ABI 1.3 queues (a worker thread each).
#include <sparkle/plugin.hpp>
#include <string>

#include "conv_plan.hpp"
#include "cpu_buffer.hpp"
#include "cpu_info.hpp"
#include "cpu_queue.hpp"
#include "isa.hpp"

#ifndef SPARKLE_CPU_BUILD_ID
#define SPARKLE_CPU_BUILD_ID "dev"
#endif

namespace sparkle::cpu {
namespace {

using plugin::Error;

class CpuDevice final : public plugin::Device {
 public:
  // Every valid descriptor, on the ISA SPARKLE_CPU_ISA names (or the best).
  void check_supported(const sparkle_conv2d_desc&) override { check_cpu_environment(); }
  std::unique_ptr<plugin::Buffer> create_buffer(size_t bytes) override {
    return std::make_unique<HostBuffer>(bytes);
  }
  std::unique_ptr<plugin::Buffer> wrap_host(void* host, size_t bytes) override {
    return std::make_unique<HostBuffer>(host, bytes);
  }
  // Every kind is host memory here; staging is just memory with an address.
  // An activation tensor (rank 4, N C H W) of device memory is kept blocked.
  std::unique_ptr<plugin::Buffer> create_buffer_ex(const sparkle_buffer_desc& desc) override {
    if (desc.kind > SPARKLE_MEMORY_READBACK)
      throw Error(SPARKLE_INVALID_ARGUMENT, "unknown memory kind " + std::to_string(desc.kind));
    if (desc.kind == SPARKLE_MEMORY_DEVICE && desc.rank == 4 &&
        desc.bytes ==
            static_cast<size_t>(desc.dims[0] * desc.dims[1] * desc.dims[2] * desc.dims[3]) *
                sizeof(float)) {
      const int block = tensor_block(desc.dims[1]);
      if (block > 0)
        return std::make_unique<HostBuffer>(
            Layout{block, desc.dims[0], desc.dims[1], desc.dims[2], desc.dims[3]});
    }
    return std::make_unique<HostBuffer>(desc.bytes);
  }
  std::unique_ptr<plugin::Queue> create_queue(uint32_t) override {
    return std::make_unique<CpuQueue>();
  }
  std::unique_ptr<plugin::Plan> plan_conv2d(const sparkle_conv2d_desc& d) override {
    check_cpu_environment();
    return make_cpu_plan(d, selected_isa());
  }
};

class CpuBackend final : public plugin::Backend {
 public:
  // At init: a bad SPARKLE_CPU_* value (an ISA this CPU lacks included) is
  // the user's configuration error, reported before any Engine starts.
  CpuBackend() {
    try {
      check_cpu_environment();
    } catch (const Error& e) {
      throw Error(SPARKLE_INVALID_ARGUMENT, e.what());
    }
  }
  std::vector<plugin::DeviceEntry> devices() override { return {describe_host_cpu()}; }
  std::unique_ptr<plugin::Device> open_device(size_t) override {
    return std::make_unique<CpuDevice>();
  }
};

}  // namespace
}  // namespace sparkle::cpu

SPARKLE_DEFINE_PLUGIN(sparkle::cpu::CpuBackend, "cpu", "0.1.0", SPARKLE_CPU_BUILD_ID)
