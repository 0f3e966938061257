// The CPU device's ABI 1.3 queue: plugin::HostQueue's shape (one worker
// thread, work in order, each item after its wait list, HostFence fences;
// work that finds the queue idle and its wait list signalled runs at once
// on the enqueuing thread),
// with transfers that go through HostBuffer so that blocked tensors are
// converted to and from dense NCHW there and nowhere else.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <sparkle/plugin_host_queue.hpp>
#include <thread>
#include <vector>

namespace sparkle::cpu {

class CpuQueue final : public plugin::Queue {
 public:
  CpuQueue();
  ~CpuQueue() override;
  CpuQueue(const CpuQueue&) = delete;
  CpuQueue& operator=(const CpuQueue&) = delete;

  std::unique_ptr<plugin::Fence> write(plugin::Buffer* dst, size_t offset, const void* src,
                                       size_t bytes, plugin::WaitList waits) override;
  std::unique_ptr<plugin::Fence> read(plugin::Buffer* src, size_t offset, void* dst, size_t bytes,
                                      plugin::WaitList waits) override;
  std::unique_ptr<plugin::Fence> copy(plugin::Buffer* src, size_t src_offset, plugin::Buffer* dst,
                                      size_t dst_offset, size_t bytes,
                                      plugin::WaitList waits) override;
  std::unique_ptr<plugin::Fence> conv2d(plugin::Plan* plan, plugin::Buffer* x, plugin::Buffer* w,
                                        plugin::Buffer* bias, plugin::Buffer* y,
                                        plugin::WaitList waits) override;

 private:
  struct Item {
    std::vector<std::shared_ptr<plugin::HostFence::State>> waits;
    std::function<void()> work;
    std::shared_ptr<plugin::HostFence::State> fence;
    std::shared_ptr<int64_t> elapsed;  // set by the work itself (conv2d); else timed here
  };
  std::unique_ptr<plugin::Fence> push(plugin::WaitList waits, std::function<void()> work,
                                      std::shared_ptr<int64_t> elapsed = nullptr);
  void loop();
  void execute(Item& item);

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false;
  bool running_ = false;  // an item is executing (on the worker or inline)
  std::thread thread_;    // last: starts after the members it uses
};

}  // namespace sparkle::cpu
