// A submission context (amdgpu_cs_ctx_create) and what runs on it: each
// enqueue becomes one indirect buffer on the compute ring, submitted with
// amdgpu_cs_submit and waited for with amdgpu_cs_query_fence_status and a
// timeout. Submissions on one context complete in order, so observing one
// complete retires every earlier one too (running their host-side
// completions, e.g. the memcpy of a read, and recycling their memory).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "device_core.hpp"
#include "launch.hpp"
#include "program_cache.hpp"

namespace sparkle::amdgpu {

class QueueCore;
class Submission;

// Work of another queue that a submission waited for on the GPU. Its host
// side (the memcpy of a read) must also have run before the dependent
// submission reports completion: whoever sees the dependent done may read
// the earlier read's destination.
struct HostPrerequisite {
  std::shared_ptr<QueueCore> queue;
  std::shared_ptr<Submission> submission;
};

struct Dependencies {
  std::vector<amdgpu_cs_fence> gpu;  // amdgpu_cs_request.dependencies
  std::vector<HostPrerequisite> host;
};

class Submission {
 public:
  amdgpu_cs_fence fence{};  // context, ip, ring, sequence number
  std::string what;         // "conv2d_tiled", "write of 4096 bytes", for errors
  // Guarded by the owning queue's mutex:
  bool done = false;
  std::string error;  // non-empty once waiting failed for good
  int64_t elapsed_ns = -1;

 private:
  friend class QueueCore;
  std::vector<std::shared_ptr<GpuBo>> keep_;  // every buffer the work touches
  std::shared_ptr<GpuBo> block_;              // IB, kernargs and timestamps
  uint64_t timestamp_offset_ = 0;             // in block_
  std::function<void()> on_complete_;         // host side, after the GPU
  std::vector<HostPrerequisite> prerequisites_;
};

// Where a launch's buffer operands live (GPU virtual addresses).
struct Bindings {
  uint64_t x = 0, w = 0, bias = 0, y = 0, src = 0, dst = 0;
};

struct DispatchWork {
  const Kernel* kernel = nullptr;
  Launch launch;
  Bindings bindings;
};

class QueueCore {
 public:
  QueueCore(std::shared_ptr<DeviceCore> core, std::shared_ptr<ProgramCache> programs);
  // Waits for what is still in flight (each within the fence timeout), then
  // frees the context.
  ~QueueCore();
  QueueCore(const QueueCore&) = delete;
  QueueCore& operator=(const QueueCore&) = delete;

  DeviceCore& core() const { return *core_; }
  const std::shared_ptr<ProgramCache>& programs() const { return programs_; }

  // Records the dispatches into one IB (cache invalidation first, a
  // timestamp before and after) and submits it after `deps`. `keep` are the
  // buffers the work uses; `on_complete` runs once the GPU finished it.
  std::shared_ptr<Submission> submit(const std::vector<DispatchWork>& work,
                                     const Dependencies& deps,
                                     std::vector<std::shared_ptr<GpuBo>> keep,
                                     std::function<void()> on_complete, const std::string& what);

  // true once the submission (and so its host completion) is done; throws
  // its error when it failed.
  bool poll(const std::shared_ptr<Submission>& s);
  // Blocks up to the device's fence timeout; throws on timeout or loss.
  void wait(const std::shared_ptr<Submission>& s);
  // Waits for every submission whose host completion has not run yet.
  void wait_host_completions();

 private:
  bool query(const std::shared_ptr<Submission>& s, uint64_t timeout_ns);
  void retire_through(uint64_t seq);  // holds mutex_
  void retire_finished();             // cheap poll of the oldest ones
  std::shared_ptr<GpuBo> take_block(uint64_t bytes);

  std::shared_ptr<DeviceCore> core_;
  std::shared_ptr<ProgramCache> programs_;
  amdgpu_context_handle ctx_ = nullptr;
  std::mutex mutex_;
  std::deque<std::shared_ptr<Submission>> in_flight_;
  std::vector<std::shared_ptr<GpuBo>> free_blocks_;
  uint64_t dispatch_id_ = 0;
};

}  // namespace sparkle::amdgpu
