// sparkle::Future: the result of submitted work (Engine::submit,
// Stream::submit). Futures of one device complete in submission order.
#pragma once

#include <chrono>
#include <memory>
#include <sparkle/run.hpp>

namespace sparkle {

namespace exec {
struct FutureState;
}

class Future {
 public:
  Future() = default;
  bool valid() const { return state_ != nullptr; }
  // True once the work has completed (successfully or not).
  bool ready() const;
  // Blocks until the work has completed; false if `timeout` passed first.
  bool wait_for(std::chrono::milliseconds timeout) const;
  // Blocks until completion and returns the result, or throws the call's own
  // sparkle::Error. May be called more than once.
  RunResult wait() const;

  explicit Future(std::shared_ptr<exec::FutureState> state) : state_(std::move(state)) {}
  // The engine's internal state (for the engine only).
  const std::shared_ptr<exec::FutureState>& state() const { return state_; }

 private:
  std::shared_ptr<exec::FutureState> state_;
};

}  // namespace sparkle
