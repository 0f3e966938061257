// The sparkle device, buffer, plan and fence of the OpenGL backend. Every GL
// call goes through the device's GlContext worker thread.
#pragma once

#include <atomic>
#include <future>
#include <memory>
#include <sparkle/plugin.hpp>
#include <string>

#include "conv2d_program.hpp"
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
  // program: the compiled passes and workspaces of the chosen variant
  // (conv2d_program.hpp), which also records the dispatches.
  GlPlan(std::shared_ptr<GlContext> ctx, const sparkle_conv2d_desc& desc,
         std::shared_ptr<const ConvProgram> program);
  const char* kernel_name() const override { return program_->name().c_str(); }
  std::unique_ptr<plugin::Fence> enqueue(plugin::Buffer* x, plugin::Buffer* w, plugin::Buffer* bias,
                                         plugin::Buffer* y) override;

 private:
  std::shared_ptr<GlContext> ctx_;  // first: destroyed after the programs
  sparkle_conv2d_desc desc_;
  // Its programs are shared with the context's program cache, which never
  // evicts them while the plan lives; queued dispatches hold it too.
  std::shared_ptr<const ConvProgram> program_;
};

class GlDevice final : public plugin::Device {
 public:
  explicit GlDevice(std::shared_ptr<GlContext> ctx) : ctx_(std::move(ctx)) {}
  void check_supported(const sparkle_conv2d_desc& desc) override;
  std::unique_ptr<plugin::Buffer> create_buffer(size_t bytes) override;
  std::unique_ptr<plugin::Plan> plan_conv2d(const sparkle_conv2d_desc& desc) override;
  // ABI 1.4 variant hooks, defined in conv2d_program.cpp.
  std::vector<plugin::VariantInfo> conv2d_variants(const sparkle_conv2d_desc& desc) override;
  std::unique_ptr<plugin::Plan> plan_conv2d_variant(const sparkle_conv2d_desc& desc,
                                                    size_t index) override;

 private:
  std::shared_ptr<GlContext> ctx_;
};

}  // namespace sparkle::opengl
