// The CPU device's ABI 1.3 queue: plugin::HostQueue (one worker thread,
// work in order, each item after its wait list, HostFence fences), run
// inline when idle (work that finds the queue idle and its wait list
// signalled runs at once on the enqueuing thread), with transfers that go
// through HostBuffer so that blocked tensors are converted to and from
// dense NCHW there and nowhere else.
#pragma once

#include <memory>
#include <sparkle/plugin_host_queue.hpp>

namespace sparkle::cpu {

class CpuQueue final : public plugin::HostQueue {
 public:
  CpuQueue() : HostQueue(Inline::when_idle) {}

  std::unique_ptr<plugin::Fence> write(plugin::Buffer* dst, size_t offset, const void* src,
                                       size_t bytes, plugin::WaitList waits) override;
  std::unique_ptr<plugin::Fence> read(plugin::Buffer* src, size_t offset, void* dst, size_t bytes,
                                      plugin::WaitList waits) override;
  std::unique_ptr<plugin::Fence> copy(plugin::Buffer* src, size_t src_offset, plugin::Buffer* dst,
                                      size_t dst_offset, size_t bytes,
                                      plugin::WaitList waits) override;
};

}  // namespace sparkle::cpu
