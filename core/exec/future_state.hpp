// FutureState: what a sparkle::Future waits on. The completion thread
// fulfills it once; any number of threads may wait.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <sparkle/run.hpp>
#include <vector>

#include "exec/executor.hpp"

namespace sparkle::exec {

struct FutureState {
  void complete(RunResult result) noexcept;
  void fail(const Status& status) noexcept;
  // Runs fn once the state is done (at once if it already is), on the
  // thread that completes it, after waiters have been woken. fn must not
  // throw.
  void on_done(std::function<void()> fn);

  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  RunResult result;
  Status status;
  std::vector<std::function<void()>> continuations;
};

}  // namespace sparkle::exec
