// sparkle::Future over FutureState.
#include <sparkle/error.hpp>
#include <sparkle/future.hpp>

#include "exec/future_state.hpp"

namespace sparkle {

namespace exec {

namespace {
void run_all(std::vector<std::function<void()>>& fns) noexcept {
  for (auto& fn : fns) {
    try {
      fn();
    } catch (...) {
    }
  }
}
}  // namespace

void FutureState::complete(RunResult r) noexcept {
  std::vector<std::function<void()>> then;
  {
    std::lock_guard lock(mutex);
    result = std::move(r);
    done = true;
    then.swap(continuations);
  }
  cv.notify_all();
  run_all(then);
}

void FutureState::on_done(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex);
    if (!done) {
      continuations.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

void FutureState::fail(const Status& s) noexcept {
  std::vector<std::function<void()>> then;
  {
    std::lock_guard lock(mutex);
    try {
      status = s;
    } catch (...) {
      status.code = s.code;  // out of memory copying the message: keep the code
    }
    if (status.message.empty()) status.message = "failed";
    done = true;
    then.swap(continuations);
  }
  cv.notify_all();
  run_all(then);
}

}  // namespace exec

namespace {
void require(const std::shared_ptr<exec::FutureState>& s) {
  if (!s) throw Error(ErrorCode::invalid_argument, "future is empty (default-constructed)");
}
}  // namespace

bool Future::ready() const {
  require(state_);
  std::lock_guard lock(state_->mutex);
  return state_->done;
}

bool Future::wait_for(std::chrono::milliseconds timeout) const {
  require(state_);
  std::unique_lock lock(state_->mutex);
  return state_->cv.wait_for(lock, timeout, [&] { return state_->done; });
}

RunResult Future::wait() const {
  require(state_);
  std::unique_lock lock(state_->mutex);
  state_->cv.wait(lock, [&] { return state_->done; });
  if (!state_->status.ok()) {
    const sparkle_code code =
        state_->status.code == SPARKLE_OK ? SPARKLE_INTERNAL : state_->status.code;
    throw Error(static_cast<ErrorCode>(code), state_->status.message);
  }
  return state_->result;
}

}  // namespace sparkle
