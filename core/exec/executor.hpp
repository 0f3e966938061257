// Executor: runs the work of one device. Callers on any thread push jobs
// into a lock-free queue; one dispatcher thread takes them in submission
// order and enqueues them on the device's queues (compute, upload,
// download), passing each op the fences it depends on; one completion
// thread waits for each job's fences in the same order and finishes it.
// Neither thread spins: both block on a semaphore or in the plugin's fence
// wait. A plugin without ABI 1.3 queues is driven synchronously on the
// dispatcher thread, so callers see the same asynchronous behaviour.
#pragma once

#include <sparkle/plugin.h>

#include <atomic>
#include <boost/lockfree/queue.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <semaphore>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "exec/fence.hpp"

namespace sparkle::exec {

enum class QueueRole { compute, upload, download };

// An error as it reaches a job's finish step: empty message for success.
struct Status {
  std::string message;
  sparkle_code code = SPARKLE_OK;
  bool ok() const { return message.empty(); }
};

class Executor;

// One unit of submitted work.
class Job {
 public:
  virtual ~Job() = default;
  // Dispatcher thread, in submission order: enqueue the work and return the
  // fences whose signal completes it. May throw: the job then finishes with
  // the error (in order, like any other).
  virtual std::vector<FenceRef> dispatch(Executor& ex) = 0;
  // Completion thread, in submission order, once every returned fence has
  // signalled (status: the first failure). Must not throw.
  virtual void finish(const Status& status) noexcept = 0;
};

class Executor {
 public:
  // Opens the device's queues (if the plugin has them) and starts the two
  // threads. max_in_flight bounds the jobs submitted but not yet finished:
  // submit blocks beyond it, so memory held by queued work stays bounded.
  Executor(const sparkle_plugin* api, sparkle_device device, std::string name,
           int max_in_flight = 64);
  // Finishes every job already submitted, then stops.
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // True when the plugin runs work asynchronously on its own queues.
  bool asynchronous() const { return compute_ != nullptr; }
  // True when uploads and downloads have queues of their own (they may
  // overlap compute).
  bool separate_transfer_queues() const { return upload_ != compute_ || download_ != compute_; }
  const std::string& name() const { return name_; }

  // Queues the job for the dispatcher thread. caller_waits: the caller
  // blocks on the job's result next (a synchronous conv2d); when nothing
  // else is in flight the job is then dispatched on the caller's thread,
  // and finished there too when its fences have already signalled (a CPU
  // conv run inline), saving the two thread hand-offs that dominate small
  // calls. Order is kept: no other job dispatches or finishes meanwhile.
  void submit(std::unique_ptr<Job> job, bool caller_waits = false);
  // Blocks until every job submitted before the call has finished.
  void drain();

  // Enqueue helpers for Job::dispatch (dispatcher thread only). Each op
  // waits for the pending fences in `waits`; synchronous plugins run it
  // now. Failures throw sparkle::Error naming the device and the op.
  FenceRef write(QueueRole role, sparkle_buffer dst, size_t offset, const void* src, size_t bytes,
                 std::span<const FenceRef> waits);
  FenceRef read(QueueRole role, sparkle_buffer src, size_t offset, void* dst, size_t bytes,
                std::span<const FenceRef> waits);
  FenceRef copy(QueueRole role, sparkle_buffer src, size_t src_offset, sparkle_buffer dst,
                size_t dst_offset, size_t bytes, std::span<const FenceRef> waits);
  FenceRef conv2d(sparkle_plan plan, sparkle_buffer x, sparkle_buffer w, sparkle_buffer bias,
                  sparkle_buffer y, std::span<const FenceRef> waits);

 private:
  struct Pending {
    Job* job = nullptr;
    std::vector<FenceRef> fences;
    Status status;
  };
  sparkle_queue queue_of(QueueRole role) const;
  FenceRef adopt(sparkle_status st, sparkle_fence fence, const char* what);
  // Job::dispatch with its errors turned into the Pending's status.
  void dispatch_one(Pending& p);
  bool try_run_inline(std::unique_ptr<Job>& job);
  void dispatch_loop();
  void completion_loop();

  const sparkle_plugin* api_;
  sparkle_device device_;
  std::string name_;
  sparkle_queue compute_ = nullptr;
  sparkle_queue upload_ = nullptr;
  sparkle_queue download_ = nullptr;

  std::counting_semaphore<> slots_;  // free places for jobs in flight
  // Jobs submitted and not yet finished; held at 1 by an inline job.
  std::atomic<int> in_flight_{0};
  // Held while a job is dispatched (on the dispatcher or a caller's thread),
  // and while an inline job finishes: dispatch and finish stay in order.
  std::mutex order_;
  boost::lockfree::queue<Job*> submitted_{64};
  std::counting_semaphore<> submitted_count_{0};
  boost::lockfree::queue<Pending*> dispatched_{64};
  std::counting_semaphore<> dispatched_count_{0};
  std::thread dispatcher_;
  std::thread completer_;
  // Cleared when the executor is destroyed from its own completion thread
  // (a finished job held the last reference to the device): the loop then
  // returns without touching the destroyed object.
  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);
};

}  // namespace sparkle::exec
