// Host-side fence handles (see fence.hpp).
#include "exec/fence.hpp"

#include "registry/plugin_registry.hpp"

namespace sparkle::exec {

Fence::Fence(const sparkle_plugin* api, sparkle_fence handle) : api_(api), handle_(handle) {}

std::shared_ptr<Fence> Fence::completed(int64_t host_ns, const sparkle_plugin* api,
                                        sparkle_fence handle) {
  std::shared_ptr<Fence> f(new Fence());
  f->api_ = api;
  f->handle_ = handle;
  f->elapsed_ns_ = host_ns;
  f->elapsed_read_ = handle == nullptr;
  f->done_.store(true, std::memory_order_release);
  return f;
}

Fence::~Fence() {
  if (handle_ != nullptr && api_ != nullptr) api_->fence_destroy(handle_);
}

sparkle_fence Fence::pending_handle() const { return done() ? nullptr : handle_; }

bool Fence::signalled() const {
  return done() || handle_ == nullptr || api_->fence_poll(handle_) != 0;
}

std::string Fence::wait(sparkle_code* code) {
  std::lock_guard lock(mutex_);
  if (!done_.load(std::memory_order_relaxed) && handle_ != nullptr) {
    sparkle_status st = api_->fence_wait(handle_);
    if (st != nullptr) {
      error_ = registry::take_message(st, &code_);
      if (code_ == SPARKLE_OK) code_ = SPARKLE_INTERNAL;
    }
    done_.store(true, std::memory_order_release);
  }
  if (code != nullptr) *code = code_;
  return error_;
}

int64_t Fence::elapsed_ns() {
  std::lock_guard lock(mutex_);
  if (!elapsed_read_ && done_.load(std::memory_order_relaxed)) {
    elapsed_read_ = true;
    if (error_.empty() && handle_ != nullptr && api_->fence_elapsed_ns != nullptr) {
      const int64_t ns = api_->fence_elapsed_ns(handle_);
      if (ns >= 0) elapsed_ns_ = ns;
    }
  }
  return elapsed_ns_;
}

}  // namespace sparkle::exec
