// Fence: the host's shared handle on one plugin fence. Hazard lists, wait
// lists and the completion thread share it; the plugin fence is destroyed
// through its own plugin when the last holder lets go.
#pragma once

#include <sparkle/plugin.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace sparkle::exec {

class Fence {
 public:
  // Takes ownership of `handle` (from an enqueue of `api`).
  Fence(const sparkle_plugin* api, sparkle_fence handle);
  // Work that already ran to completion (synchronous devices): elapsed_ns()
  // is the plugin's time for `handle` when it has one, else `host_ns` (the
  // host's measure of the call).
  static std::shared_ptr<Fence> completed(int64_t host_ns, const sparkle_plugin* api = nullptr,
                                          sparkle_fence handle = nullptr);
  ~Fence();
  Fence(const Fence&) = delete;
  Fence& operator=(const Fence&) = delete;

  // The plugin handle for a wait list, or nullptr once signalled (nothing to
  // wait for any more).
  sparkle_fence pending_handle() const;
  // True once a wait has returned (the fence signalled or failed).
  bool done() const { return done_.load(std::memory_order_acquire); }
  // True when the work has finished (a plugin poll, no blocking); wait()
  // then returns at once.
  bool signalled() const;
  // Blocks until signalled. Returns "" or the error of the fenced work, with
  // its code in *code. Thread-safe and idempotent.
  std::string wait(sparkle_code* code = nullptr);
  // Device time of the fenced work in ns after wait(), or -1.
  int64_t elapsed_ns();

 private:
  Fence() = default;
  const sparkle_plugin* api_ = nullptr;
  sparkle_fence handle_ = nullptr;
  std::mutex mutex_;
  std::atomic<bool> done_{false};
  std::string error_;
  sparkle_code code_ = SPARKLE_OK;
  int64_t elapsed_ns_ = -1;
  bool elapsed_read_ = false;
};

using FenceRef = std::shared_ptr<Fence>;

}  // namespace sparkle::exec
