// GlQueue: an ABI 1.3 queue on one GL context. Its work runs in order on
// that context's thread; each item first waits, on the device, for the
// fences of other contexts in its wait list (eglWaitSync), then records its
// commands between a timer query and a fence. Transfer queues may have a
// shared context of their own, so that copies can overlap compute if the
// driver runs the contexts concurrently (SPARKLE_GL_TRANSFER_QUEUES).
#pragma once

#include <functional>
#include <memory>
#include <sparkle/plugin.hpp>
#include <string>

#include "gl_context.hpp"
#include "gl_device.hpp"

namespace sparkle::opengl {

class GlQueue final : public plugin::Queue {
 public:
  // ctx: the context this queue issues on; main: the device's main context
  // (the share group's identity, and the one that runs dispatches).
  GlQueue(std::shared_ptr<GlContext> ctx, std::shared_ptr<GlContext> main);

  std::unique_ptr<plugin::Fence> write(plugin::Buffer* dst, size_t offset, const void* src,
                                       size_t bytes, plugin::WaitList waits) override;
  // glGetNamedBufferSubData: blocks this queue's thread until the data is
  // there. The host reads back through readback staging (copy) instead.
  std::unique_ptr<plugin::Fence> read(plugin::Buffer* src, size_t offset, void* dst, size_t bytes,
                                      plugin::WaitList waits) override;
  std::unique_ptr<plugin::Fence> copy(plugin::Buffer* src, size_t src_offset, plugin::Buffer* dst,
                                      size_t dst_offset, size_t bytes,
                                      plugin::WaitList waits) override;
  std::unique_ptr<plugin::Fence> conv2d(plugin::Plan* plan, plugin::Buffer* x, plugin::Buffer* w,
                                        plugin::Buffer* bias, plugin::Buffer* y,
                                        plugin::WaitList waits) override;

 private:
  std::unique_ptr<plugin::Fence> issue(plugin::WaitList waits, std::function<void(GlContext&)> body,
                                       std::string what);
  GlBuffer* buffer(plugin::Buffer* b, const char* name) const;

  std::shared_ptr<GlContext> ctx_;
  std::shared_ptr<GlContext> main_;
};

// SPARKLE_GL_TRANSFER_QUEUES: auto (default: off, see gl_queue.cpp), on, or
// off. Throws plugin::Error for other values, and for "on" where EGL syncs
// are missing (cross-context waits need them).
bool transfer_queues_enabled(const GlInfo& info);
// Whether SPARKLE_GL_TRANSFER_QUEUES is on; throws plugin::Error naming it
// for a value other than auto, on or off.
bool transfer_queues_requested();

}  // namespace sparkle::opengl
