// A small process-wide pool for large memcpys (see parallel_copy.hpp).
#include "exec/parallel_copy.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <latch>
#include <mutex>
#include <thread>
#include <vector>

namespace sparkle::exec {

namespace {

// Below this a single memcpy wins: waking threads costs microseconds.
constexpr size_t kParallelFrom = size_t{4} << 20;
constexpr size_t kChunkMin = size_t{1} << 20;

class CopyPool {
 public:
  CopyPool() {
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    // Memory bandwidth saturates long before every core is busy.
    const unsigned n = std::clamp(hw / 2, 1u, 8u);
    for (unsigned i = 0; i + 1 < n; ++i) workers_.emplace_back([this] { loop(); });
  }
  ~CopyPool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  size_t threads() const { return workers_.size() + 1; }

  void run(std::vector<std::function<void()>>& tasks) {
    std::latch left(static_cast<std::ptrdiff_t>(tasks.size()));
    {
      std::lock_guard lock(mutex_);
      for (size_t i = 1; i < tasks.size(); ++i)
        queue_.push_back([&, i] {
          tasks[i]();
          left.count_down();
        });
    }
    cv_.notify_all();
    tasks[0]();
    left.count_down();
    // Help with what the workers have not taken yet, then wait.
    for (;;) {
      std::function<void()> t;
      {
        std::lock_guard lock(mutex_);
        if (queue_.empty()) break;
        t = std::move(queue_.front());
        queue_.pop_front();
      }
      t();
    }
    left.wait();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> t;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        t = std::move(queue_.front());
        queue_.pop_front();
      }
      t();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

CopyPool& pool() {
  static CopyPool p;
  return p;
}

}  // namespace

void parallel_copy(void* dst, const void* src, size_t bytes) {
  if (bytes < kParallelFrom) {
    std::memcpy(dst, src, bytes);
    return;
  }
  CopyPool& p = pool();
  const size_t parts = std::min(p.threads(), bytes / kChunkMin);
  if (parts <= 1) {
    std::memcpy(dst, src, bytes);
    return;
  }
  // Chunks on 4 KiB boundaries.
  const size_t chunk = (bytes / parts + 4095) / 4096 * 4096;
  std::vector<std::function<void()>> tasks;
  for (size_t off = 0; off < bytes; off += chunk) {
    const size_t n = std::min(chunk, bytes - off);
    tasks.emplace_back([=] {
      std::memcpy(static_cast<char*>(dst) + off, static_cast<const char*>(src) + off, n);
    });
  }
  p.run(tasks);
}

}  // namespace sparkle::exec
