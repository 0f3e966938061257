// HostQueue: a ready-made ABI 1.3 queue for plugins whose buffers are host
// memory (Buffer::map() returns their address) and whose plans compute on
// the calling thread. One worker thread runs the queue's work in order,
// each item after the fences it waits for; fences block without spinning.
// Return one from Device::create_queue to make such a plugin asynchronous.
// With Inline::when_idle, work that finds the queue idle and its waits
// signalled runs on the enqueuing thread instead (the CPU backend: it saves
// two thread wake-ups per call). A subclass may override the transfers and
// hand its own work to push().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <sparkle/plugin.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace sparkle::plugin {

// A fence signalled by a HostQueue's worker.
class HostFence final : public Fence {
 public:
  struct State {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    int64_t elapsed_ns = -1;
    std::exception_ptr error;

    void signal(int64_t ns, std::exception_ptr e) {
      {
        std::lock_guard lock(mutex);
        elapsed_ns = ns;
        error = std::move(e);
        done = true;
      }
      cv.notify_all();
    }
    // Blocks; rethrows the failure of the fenced work.
    void wait() {
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return done; });
      if (error) std::rethrow_exception(error);
    }
  };

  explicit HostFence(std::shared_ptr<State> state) : state_(std::move(state)) {}
  bool poll() override {
    std::lock_guard lock(state_->mutex);
    return state_->done;
  }
  void wait() override { state_->wait(); }
  int64_t elapsed_ns() override {
    std::lock_guard lock(state_->mutex);
    return state_->done ? state_->elapsed_ns : -1;
  }
  const std::shared_ptr<State>& state() const { return state_; }

 private:
  std::shared_ptr<State> state_;
};

class HostQueue : public Queue {
 public:
  enum class Inline { never, when_idle };
  explicit HostQueue(Inline mode = Inline::never)
      : inline_(mode == Inline::when_idle), thread_([this] { loop(); }) {}
  ~HostQueue() override {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();  // the queued work runs first
  }
  HostQueue(const HostQueue&) = delete;
  HostQueue& operator=(const HostQueue&) = delete;

  std::unique_ptr<Fence> write(Buffer* dst, size_t offset, const void* src, size_t bytes,
                               WaitList waits) override {
    char* to = address(dst, offset, bytes, "write");
    return push(waits, [=] { std::memcpy(to, src, bytes); });
  }
  std::unique_ptr<Fence> read(Buffer* src, size_t offset, void* dst, size_t bytes,
                              WaitList waits) override {
    const char* from = address(src, offset, bytes, "read");
    return push(waits, [=] { std::memcpy(dst, from, bytes); });
  }
  std::unique_ptr<Fence> copy(Buffer* src, size_t src_offset, Buffer* dst, size_t dst_offset,
                              size_t bytes, WaitList waits) override {
    const char* from = address(src, src_offset, bytes, "copy source");
    char* to = address(dst, dst_offset, bytes, "copy destination");
    return push(waits, [=] { std::memmove(to, from, bytes); });
  }
  std::unique_ptr<Fence> conv2d(Plan* plan, Buffer* x, Buffer* w, Buffer* bias, Buffer* y,
                                WaitList waits) override {
    if (plan == nullptr) throw Error(SPARKLE_INVALID_ARGUMENT, "conv2d without a plan");
    auto elapsed = std::make_shared<int64_t>(-1);
    return push(
        waits,
        [=] {
          std::unique_ptr<Fence> f = plan->enqueue(x, w, bias, y);
          f->wait();
          *elapsed = f->elapsed_ns();
        },
        elapsed);
  }

 protected:
  // Runs work in queue order once every fence of waits has signalled; the
  // returned fence signals when it has run (with its exception, if any).
  // elapsed: set by work itself (conv2d) to report its own time.
  std::unique_ptr<Fence> push(WaitList waits, std::function<void()> work,
                              std::shared_ptr<int64_t> elapsed = nullptr) {
    Item item;
    bool ready = true;  // every fence waited for has signalled
    for (Fence* f : waits) {
      auto* hf = dynamic_cast<HostFence*>(f);
      if (hf == nullptr)
        throw Error(SPARKLE_INVALID_ARGUMENT, "wait list holds a fence of another device");
      item.waits.push_back(hf->state());
      ready = ready && hf->poll();
    }
    item.work = std::move(work);
    item.fence = std::make_shared<HostFence::State>();
    item.elapsed = std::move(elapsed);
    auto fence = std::make_unique<HostFence>(item.fence);
    {
      std::lock_guard lock(mutex_);
      if (!inline_ || !ready || running_ || !queue_.empty()) {
        queue_.push_back(std::move(item));
        cv_.notify_all();
        return fence;
      }
      running_ = true;
    }
    // Nothing is ahead of this work and nothing holds it back: it runs
    // here; later work queues up behind it.
    execute(item);
    {
      std::lock_guard lock(mutex_);
      running_ = false;
    }
    cv_.notify_all();
    return fence;
  }

 private:
  // The buffer's address at [offset, offset + bytes), checked.
  char* address(Buffer* b, size_t offset, size_t bytes, const char* what) {
    if (b == nullptr)
      throw Error(SPARKLE_INVALID_ARGUMENT, std::string(what) + " buffer is missing");
    auto* base = static_cast<char*>(b->map());
    if (base == nullptr)
      throw Error(SPARKLE_INVALID_ARGUMENT, std::string(what) + " buffer is not host memory");
    const size_t size = b->size();
    if (offset > size || bytes > size - offset)
      throw Error(SPARKLE_INVALID_ARGUMENT, std::string(what) + " of " + std::to_string(bytes) +
                                                " bytes at offset " + std::to_string(offset) +
                                                " exceeds the buffer's " + std::to_string(size));
    return base + offset;
  }

  struct Item {
    std::vector<std::shared_ptr<HostFence::State>> waits;
    std::function<void()> work;
    std::shared_ptr<HostFence::State> fence;
    std::shared_ptr<int64_t> elapsed;  // set by work itself (conv2d); else timed here
  };

  void execute(Item& item) {
    // Fences of other queues of the device; a failed one does not stop this
    // work (the host decides what a failure means downstream).
    for (auto& w : item.waits) {
      try {
        w->wait();
      } catch (...) {
      }
    }
    std::exception_ptr error;
    const auto start = std::chrono::steady_clock::now();
    try {
      item.work();
    } catch (...) {
      error = std::current_exception();
    }
    int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     std::chrono::steady_clock::now() - start)
                     .count();
    if (item.elapsed && *item.elapsed >= 0) ns = *item.elapsed;
    item.fence->signal(ns, error);
  }

  void loop() {
    for (;;) {
      Item item;
      {
        std::unique_lock lock(mutex_);
        // Not while inline work runs on an enqueuing thread: order.
        cv_.wait(lock, [&] { return !running_ && (stop_ || !queue_.empty()); });
        if (queue_.empty()) return;
        item = std::move(queue_.front());
        queue_.pop_front();
        running_ = true;
      }
      execute(item);
      {
        std::lock_guard lock(mutex_);
        running_ = false;
      }
      cv_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false;
  bool running_ = false;  // an item is executing (worker or inline)
  const bool inline_;
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace sparkle::plugin
