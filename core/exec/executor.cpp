// The per-device dispatcher and completion threads (see executor.hpp).
#include "exec/executor.hpp"

#include <chrono>
#include <future>
#include <sparkle/error.hpp>

#include "log/log.hpp"
#include "registry/plugin_registry.hpp"

namespace sparkle::exec {

namespace {

// A job that only marks its place in the order (drain).
class Barrier final : public Job {
 public:
  explicit Barrier(std::shared_ptr<std::promise<void>> done) : done_(std::move(done)) {}
  std::vector<FenceRef> dispatch(Executor&) override { return {}; }
  void finish(const Status&) noexcept override { done_->set_value(); }

 private:
  std::shared_ptr<std::promise<void>> done_;
};

std::vector<sparkle_fence> pending_handles(std::span<const FenceRef> waits) {
  std::vector<sparkle_fence> out;
  out.reserve(waits.size());
  for (const auto& f : waits)
    if (f)
      if (sparkle_fence h = f->pending_handle()) out.push_back(h);
  return out;
}

int64_t since_ns(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              start)
      .count();
}

}  // namespace

Executor::Executor(const sparkle_plugin* api, sparkle_device device, std::string name,
                   int max_in_flight)
    : api_(api), device_(device), name_(std::move(name)), slots_(max_in_flight) {
  if (api_->queue_create != nullptr) {
    auto make = [&](uint32_t flags) -> sparkle_queue {
      sparkle_queue q = nullptr;
      sparkle_status st = api_->queue_create(device_, flags, &q);
      if (st == nullptr) return q;
      log::debug("exec", name_ + ": no queue (flags " + std::to_string(flags) +
                             "): " + registry::take_message(st));
      return nullptr;
    };
    compute_ = make(0);
    if (compute_ != nullptr) {
      upload_ = make(SPARKLE_QUEUE_TRANSFER);
      download_ = make(SPARKLE_QUEUE_TRANSFER);
    }
  }
  if (compute_ == nullptr) log::debug("exec", name_ + ": synchronous device (no queues)");
  dispatcher_ = std::thread(&Executor::dispatch_loop, this);
  completer_ = std::thread(&Executor::completion_loop, this);
}

Executor::~Executor() {
  const bool on_completer = std::this_thread::get_id() == completer_.get_id();
  if (!on_completer) drain();
  submitted_.push(nullptr);  // the dispatcher forwards it; the completer then stops
  submitted_count_.release();
  dispatcher_.join();
  if (on_completer) {
    // Destroyed by the last job's clean-up on the completion thread; every
    // other job has finished (each holds a reference to the device). The
    // dispatcher's stop marker is still queued for this thread: free it.
    alive_->store(false);
    completer_.detach();
    for (Pending* p = nullptr; dispatched_.pop(p);) delete p;
  } else {
    completer_.join();
  }
  for (sparkle_queue q : {download_, upload_})
    if (q != nullptr && q != compute_) api_->queue_destroy(q);
  if (compute_ != nullptr) api_->queue_destroy(compute_);
}

void Executor::submit(std::unique_ptr<Job> job, bool caller_waits) {
  if (caller_waits && job != nullptr && try_run_inline(job)) return;
  slots_.acquire();
  in_flight_.fetch_add(1, std::memory_order_acq_rel);
  submitted_.push(job.release());
  submitted_count_.release();
}

bool Executor::try_run_inline(std::unique_ptr<Job>& job) {
  // Allocated before the device is claimed: nothing below may fail before
  // the job is dispatched, or the claim would have to be undone.
  auto p = std::make_unique<Pending>();
  // Claim the device only when no job is queued, dispatching or waiting to
  // finish. order_ is taken first (try_lock: the dispatcher holds it only
  // while it dispatches a job, which means work is in flight), so a job
  // submitted after the claim dispatches only after this one finished.
  std::unique_lock lock(order_, std::try_to_lock);
  if (!lock.owns_lock()) return false;
  int idle = 0;
  if (!in_flight_.compare_exchange_strong(idle, 1, std::memory_order_acq_rel)) return false;
  slots_.acquire();  // free: nothing else is in flight
  p->job = job.release();
  dispatch_one(*p);
  bool ready = true;
  for (const auto& f : p->fences) ready = ready && f->signalled();
  if (ready) {
    try {
      for (const auto& f : p->fences) {
        sparkle_code code = SPARKLE_OK;
        std::string error = f->wait(&code);  // returns at once
        if (!error.empty() && p->status.ok()) p->status = {name_ + ": " + error, code};
      }
    } catch (const std::bad_alloc&) {
      ready = false;  // the completion thread waits and reports instead
    }
  }
  if (!ready) {
    // Device work still running: the completion thread waits for it, in
    // order (later jobs reach it only after this one, through order_).
    dispatched_.push(p.release());
    dispatched_count_.release();
    return true;
  }
  std::unique_ptr<Job> done(p->job);
  done->finish(p->status);
  p.reset();
  in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  slots_.release();
  lock.unlock();
  done.reset();  // after the lock: may release the last reference to the device
  return true;
}

void Executor::dispatch_one(Pending& p) {
  try {
    p.fences = p.job->dispatch(*this);
  } catch (const Error& e) {
    p.status = {e.what(), static_cast<sparkle_code>(e.code())};
  } catch (const std::bad_alloc&) {
    p.status = {name_ + ": out of host memory", SPARKLE_OUT_OF_MEMORY};
  } catch (const std::exception& e) {
    p.status = {e.what(), SPARKLE_INTERNAL};
  }
}

void Executor::drain() {
  auto done = std::make_shared<std::promise<void>>();
  auto f = done->get_future();
  submit(std::make_unique<Barrier>(done));
  f.wait();
}

void Executor::dispatch_loop() {
  for (;;) {
    submitted_count_.acquire();
    Job* job = nullptr;
    while (!submitted_.pop(job)) {
    }
    auto* p = new Pending{job, {}, {}};
    {
      std::lock_guard lock(order_);
      if (job != nullptr) dispatch_one(*p);
      dispatched_.push(p);
      dispatched_count_.release();
    }
    if (job == nullptr) return;
  }
}

void Executor::completion_loop() {
  const auto alive = alive_;
  for (;;) {
    dispatched_count_.acquire();
    Pending* p = nullptr;
    while (!dispatched_.pop(p)) {
    }
    std::unique_ptr<Pending> pending(p);
    if (pending->job == nullptr) return;
    for (const auto& f : pending->fences) {
      sparkle_code code = SPARKLE_OK;
      std::string error = f->wait(&code);
      if (!error.empty() && pending->status.ok()) pending->status = {name_ + ": " + error, code};
    }
    std::unique_ptr<Job> job(pending->job);
    job->finish(pending->status);
    in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    slots_.release();
    pending.reset();
    job.reset();  // may destroy this executor (see alive_)
    if (!alive->load()) return;
  }
}

sparkle_queue Executor::queue_of(QueueRole role) const {
  switch (role) {
    case QueueRole::upload:
      return upload_ != nullptr ? upload_ : compute_;
    case QueueRole::download:
      return download_ != nullptr ? download_ : compute_;
    case QueueRole::compute:
      break;
  }
  return compute_;
}

FenceRef Executor::adopt(sparkle_status st, sparkle_fence fence, const char* what) {
  registry::throw_if_error(st, name_ + ": " + what);
  if (fence == nullptr)
    throw Error(ErrorCode::internal, name_ + ": " + what + " returned no fence");
  return std::make_shared<Fence>(api_, fence);
}

FenceRef Executor::write(QueueRole role, sparkle_buffer dst, size_t offset, const void* src,
                         size_t bytes, std::span<const FenceRef> waits) {
  if (!asynchronous()) {
    const auto start = std::chrono::steady_clock::now();
    registry::throw_if_error(api_->buffer_upload(dst, offset, src, bytes), name_ + ": upload");
    return Fence::completed(since_ns(start));
  }
  const auto list = pending_handles(waits);
  sparkle_fence out = nullptr;
  sparkle_status st =
      api_->enqueue_write(queue_of(role), dst, offset, src, bytes, list.data(), list.size(), &out);
  return adopt(st, out, "write");
}

FenceRef Executor::read(QueueRole role, sparkle_buffer src, size_t offset, void* dst, size_t bytes,
                        std::span<const FenceRef> waits) {
  if (!asynchronous()) {
    const auto start = std::chrono::steady_clock::now();
    registry::throw_if_error(api_->buffer_download(src, offset, dst, bytes), name_ + ": download");
    return Fence::completed(since_ns(start));
  }
  const auto list = pending_handles(waits);
  sparkle_fence out = nullptr;
  sparkle_status st =
      api_->enqueue_read(queue_of(role), src, offset, dst, bytes, list.data(), list.size(), &out);
  return adopt(st, out, "read");
}

FenceRef Executor::copy(QueueRole role, sparkle_buffer src, size_t src_offset, sparkle_buffer dst,
                        size_t dst_offset, size_t bytes, std::span<const FenceRef> waits) {
  if (!asynchronous())
    throw Error(ErrorCode::internal, name_ + ": device-side copy on a synchronous device");
  const auto list = pending_handles(waits);
  sparkle_fence out = nullptr;
  sparkle_status st = api_->enqueue_copy(queue_of(role), src, src_offset, dst, dst_offset, bytes,
                                         list.data(), list.size(), &out);
  return adopt(st, out, "copy");
}

FenceRef Executor::conv2d(sparkle_plan plan, sparkle_buffer x, sparkle_buffer w,
                          sparkle_buffer bias, sparkle_buffer y, std::span<const FenceRef> waits) {
  sparkle_fence out = nullptr;
  if (!asynchronous()) {
    const auto start = std::chrono::steady_clock::now();
    registry::throw_if_error(api_->enqueue_conv2d(plan, x, w, bias, y, &out), name_ + ": enqueue");
    if (out == nullptr) throw Error(ErrorCode::internal, name_ + ": enqueue returned no fence");
    // Synchronous devices finish each op before the next one starts.
    sparkle_status st = api_->fence_wait(out);
    if (st != nullptr) {
      api_->fence_destroy(out);
      registry::throw_if_error(st, name_ + ": conv2d");
    }
    return Fence::completed(since_ns(start), api_, out);
  }
  const auto list = pending_handles(waits);
  sparkle_status st = api_->enqueue_conv2d_on(queue_of(QueueRole::compute), plan, x, w, bias, y,
                                              list.data(), list.size(), &out);
  return adopt(st, out, "conv2d");
}

}  // namespace sparkle::exec
