// The sparkle device, buffer, plan and fence of the OpenGL backend. Every GL
// call goes through the device's GlContext worker thread.
#pragma once

#include <atomic>
#include <future>
#include <memory>
#include <sparkle/plugin.hpp>
#include <string>

#include "conv2d_kernels.hpp"
#include "gl_context.hpp"
#include "program_cache.hpp"

namespace sparkle::opengl {

// Shader storage buffer.
class GlBuffer final : public plugin::Buffer {
 public:
  GlBuffer(std::shared_ptr<GlContext> ctx, size_t bytes);
  ~GlBuffer() override;
  void upload(size_t offset, const void* src, size_t bytes) override;
  void download(size_t offset, void* dst, size_t bytes) override;

  GLuint id() const { return id_; }
  size_t size() const { return bytes_; }
  const GlContext* context() const { return ctx_.get(); }

 private:
  void check_range(size_t offset, size_t bytes, const char* what) const;

  std::shared_ptr<GlContext> ctx_;
  size_t bytes_;
  GLuint id_ = 0;
};

// Written on the GL thread; read by the fence's owner after a future or a
// call() has synchronised with it.
struct FenceState {
  GLsync sync = nullptr;
  GLuint query = 0;
  int64_t elapsed_ns = -1;
  std::atomic<bool> complete{false};  // set last, after elapsed_ns
};

class GlFence final : public plugin::Fence {
 public:
  GlFence(std::shared_ptr<GlContext> ctx, std::shared_future<void> submitted,
          std::shared_ptr<FenceState> state);
  ~GlFence() override;
  bool poll() override;
  void wait() override;
  int64_t elapsed_ns() override;

 private:
  std::shared_ptr<GlContext> ctx_;
  std::shared_future<void> submitted_;
  std::shared_ptr<FenceState> state_;
};

class GlPlan final : public plugin::Plan {
 public:
  // reduce_program and workspace are used only when kernel.split_k > 1.
  GlPlan(std::shared_ptr<GlContext> ctx, const sparkle_conv2d_desc& desc, Conv2dKernel kernel,
         ProgramPtr program, ProgramPtr reduce_program, std::unique_ptr<GlBuffer> workspace);
  const char* kernel_name() const override { return kernel_.name.c_str(); }
  std::unique_ptr<plugin::Fence> enqueue(plugin::Buffer* x, plugin::Buffer* w, plugin::Buffer* bias,
                                         plugin::Buffer* y) override;

 private:
  std::shared_ptr<GlContext> ctx_;  // first: destroyed after the programs
  sparkle_conv2d_desc desc_;
  Conv2dKernel kernel_;
  // Shared with the context's program cache, which never evicts them while
  // the plan lives.
  ProgramPtr program_;
  ProgramPtr reduce_program_;
  std::unique_ptr<GlBuffer> workspace_;  // split-K partial sums
  uint64_t max_groups_x_;
  uint64_t max_groups_y_;
};

class GlDevice final : public plugin::Device {
 public:
  explicit GlDevice(std::shared_ptr<GlContext> ctx) : ctx_(std::move(ctx)) {}
  void check_supported(const sparkle_conv2d_desc& desc) override;
  std::unique_ptr<plugin::Buffer> create_buffer(size_t bytes) override;
  std::unique_ptr<plugin::Plan> plan_conv2d(const sparkle_conv2d_desc& desc) override;

 private:
  std::shared_ptr<GlContext> ctx_;
};

}  // namespace sparkle::opengl
