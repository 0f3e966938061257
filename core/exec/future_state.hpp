// FutureState: what a sparkle::Future waits on. The completion thread
// fulfills it once; any number of threads may wait.
#pragma once

#include <condition_variable>
#include <mutex>
#include <sparkle/run.hpp>

#include "exec/executor.hpp"

namespace sparkle::exec {

struct FutureState {
  void complete(RunResult result) noexcept;
  void fail(const Status& status) noexcept;

  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  RunResult result;
  Status status;
};

}  // namespace sparkle::exec
