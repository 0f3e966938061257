// The sparkle device, buffer, plan and fence of the OpenGL backend. Every GL
// call goes through the device's GlContext worker thread.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <sparkle/plugin.hpp>
#include <string>

#include "conv2d_program.hpp"
#include "gl_context.hpp"
#include "program_cache.hpp"

namespace sparkle::opengl {

// A buffer object: device memory (a shader storage buffer) or, since ABI
// 1.3, upload or readback staging in client memory, mapped persistently.
class GlBuffer final : public plugin::Buffer {
 public:
  GlBuffer(std::shared_ptr<GlContext> ctx, size_t bytes,
           sparkle_memory_kind kind = SPARKLE_MEMORY_DEVICE);
  ~GlBuffer() override;
  void upload(size_t offset, const void* src, size_t bytes) override;
  void download(size_t offset, void* dst, size_t bytes) override;
  void* map() override { return mapped_; }
  size_t size() const override { return bytes_; }

  GLuint id() const { return id_; }
  // The device's main context: buffers are shared by its whole share group.
  const GlContext* context() const { return ctx_.get(); }
  // Throws unless [offset, offset + bytes) lies inside the buffer.
  void check_range(size_t offset, size_t bytes, const char* what) const;

 private:
  std::shared_ptr<GlContext> ctx_;
  size_t bytes_;
  GLuint id_ = 0;
  void* mapped_ = nullptr;
};

// The work behind one fence. Written by the issuing queue's GL thread;
// read by waiters once `submitted` is ready (or after a call() on that
// thread). The EGL sync, when there is one, lives as long as the state, so
// another queue may wait on it while the host destroys the fence.
struct FenceState {
  ~FenceState();
  GlContext* owner = nullptr;  // the context whose thread issued the work
  EGLDisplay display = EGL_NO_DISPLAY;
  std::shared_future<void> submitted;  // the issuing closure has run
  EGLSync egl_sync = EGL_NO_SYNC;      // host and cross-context waits (EGL 1.5)
  GLsync sync = nullptr;               // without EGL syncs: waited on the GL thread
  GLuint query = 0;                    // GL_TIME_ELAPSED, owner thread only
  // Or the result in the owner's mapped timer ring (valid once complete).
  const volatile uint64_t* timer_result = nullptr;
  int64_t elapsed_ns = -1;
  std::atomic<bool> complete{false};  // the work has finished (set after elapsed_ns)
};

class GlFence final : public plugin::Fence {
 public:
  // owner: the context that issued the work; group: the device's main one.
  GlFence(std::shared_ptr<GlContext> owner, const GlContext* group,
          std::shared_ptr<FenceState> state);
  ~GlFence() override;
  bool poll() override;
  void wait() override;
  int64_t elapsed_ns() override;

  const std::shared_ptr<FenceState>& state() const { return state_; }
  const GlContext* group() const { return group_; }

 private:
  std::shared_ptr<GlContext> owner_;
  const GlContext* group_;
  std::shared_ptr<FenceState> state_;
};

class GlPlan final : public plugin::Plan {
 public:
  // program: the compiled passes and workspaces of the chosen variant
  // (conv2d_program.hpp), which also records the dispatches.
  GlPlan(std::shared_ptr<GlContext> ctx, const sparkle_conv2d_desc& desc,
         std::shared_ptr<const ConvProgram> program);
  const char* kernel_name() const override { return program_->name().c_str(); }
  // v1.0: on the device's main context, after the work already issued.
  std::unique_ptr<plugin::Fence> enqueue(plugin::Buffer* x, plugin::Buffer* w, plugin::Buffer* bias,
                                         plugin::Buffer* y) override;

  const std::shared_ptr<GlContext>& context() const { return ctx_; }
  // The buffer ids of x, w, bias and y, checked against the descriptor.
  std::array<GLuint, 4> buffer_ids(plugin::Buffer* x, plugin::Buffer* w, plugin::Buffer* bias,
                                   plugin::Buffer* y) const;
  // The closure that records the dispatches (GL thread); it holds the
  // programs, so a plan destroyed before it runs cannot delete them under it.
  std::function<void(GlContext&)> recorder(const std::array<GLuint, 4>& ids) const;

 private:
  std::shared_ptr<GlContext> ctx_;  // first: destroyed after the programs
  sparkle_conv2d_desc desc_;
  // Its programs are shared with the context's program cache, which never
  // evicts them while the plan lives; recorded closures hold it too.
  std::shared_ptr<const ConvProgram> program_;
};

class GlDevice final : public plugin::Device {
 public:
  explicit GlDevice(std::shared_ptr<GlContext> ctx) : ctx_(std::move(ctx)) {}
  void check_supported(const sparkle_conv2d_desc& desc) override;
  std::unique_ptr<plugin::Buffer> create_buffer(size_t bytes) override;
  std::unique_ptr<plugin::Buffer> create_buffer_ex(const sparkle_buffer_desc& desc) override;
  std::unique_ptr<plugin::Plan> plan_conv2d(const sparkle_conv2d_desc& desc) override;
  // Compute queues issue on the main context. Transfer queues get a shared
  // context on a thread of their own when SPARKLE_GL_TRANSFER_QUEUES allows
  // (see gl_queue.hpp), else the main one too.
  std::unique_ptr<plugin::Queue> create_queue(uint32_t flags) override;
  // ABI 1.4 variant hooks, defined in conv2d_program.cpp.
  std::vector<plugin::VariantInfo> conv2d_variants(const sparkle_conv2d_desc& desc) override;
  std::unique_ptr<plugin::Plan> plan_conv2d_variant(const sparkle_conv2d_desc& desc,
                                                    size_t index) override;

 private:
  std::shared_ptr<GlContext> ctx_;
  int transfer_contexts_ = 0;
};

}  // namespace sparkle::opengl
