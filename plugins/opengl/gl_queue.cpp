// GL queues: wait lists, timer queries and fences around each item (see
// gl_queue.hpp).
#include "gl_queue.hpp"

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "../common/env.hpp"

namespace sparkle::opengl {

using plugin::Error;

bool transfer_queues_requested() {
  const auto mode = gpu::env_choice("SPARKLE_GL_TRANSFER_QUEUES", {"auto", "on", "off"});
  // auto is off: on the H200 (driver 580.159.04) shared contexts did not
  // run concurrently with the main one, and their cross-context waits made
  // a 3-slot stream 37% slower (docs/EXECUTOR.md).
  return mode && *mode == "on";
}

bool transfer_queues_enabled(const GlInfo& info) {
  if (!transfer_queues_requested()) return false;
  if (!info.egl_syncs)
    throw Error(SPARKLE_UNSUPPORTED,
                "SPARKLE_GL_TRANSFER_QUEUES=on needs EGL 1.5 fence syncs, which this display "
                "lacks");
  return true;
}

GlQueue::GlQueue(std::shared_ptr<GlContext> ctx, std::shared_ptr<GlContext> main)
    : ctx_(std::move(ctx)), main_(std::move(main)) {}

GlBuffer* GlQueue::buffer(plugin::Buffer* b, const char* name) const {
  auto* g = dynamic_cast<GlBuffer*>(b);
  if (g == nullptr)
    throw Error(SPARKLE_INVALID_ARGUMENT,
                std::string(name) + " is missing or not an OpenGL buffer");
  if (g->context() != main_.get())
    throw Error(SPARKLE_INVALID_ARGUMENT, std::string(name) + " belongs to another OpenGL device");
  return g;
}

std::unique_ptr<plugin::Fence> GlQueue::issue(plugin::WaitList waits,
                                              std::function<void(GlContext&)> body,
                                              std::string what) {
  std::vector<std::shared_ptr<FenceState>> deps;
  for (plugin::Fence* f : waits) {
    auto* g = dynamic_cast<GlFence*>(f);
    if (g == nullptr || g->group() != main_.get())
      throw Error(SPARKLE_INVALID_ARGUMENT, what + ": wait list holds a fence of another device");
    if (!g->state()->complete) deps.push_back(g->state());
  }
  auto state = std::make_shared<FenceState>();
  state->owner = ctx_.get();
  state->display = ctx_->display();
  std::future<void> submitted = ctx_->submit([captured = state, deps = std::move(deps),
                                              body = std::move(body),
                                              what = std::move(what)](GlContext& c) mutable {
    // The fence state holds this closure's future, which holds the closure:
    // the captures are moved out so that the cycle ends when it returns.
    const std::shared_ptr<FenceState> state = std::move(captured);
    const std::vector<std::shared_ptr<FenceState>> waits_for = std::move(deps);
    const auto& gl = c.gl();
    // Work of this context is already ordered; others' is waited for on
    // the device. Their closures were queued before ours (wait lists
    // name earlier work), so waiting for them to have run is brief.
    for (const auto& d : waits_for) {
      if (d->owner == &c || d->complete) continue;
      d->submitted.wait();
      if (d->egl_sync != EGL_NO_SYNC) eglWaitSync(c.display(), d->egl_sync, 0);
    }
    const bool timer = c.info().timer_queries;
    clear_gl_errors(gl);
    GlContext::TimerSlot slot;
    if (timer) {
      // The ring's query when there is one (no per-op query to create and
      // delete), else a query of its own.
      slot = c.next_timer_slot();
      if (slot.query == 0) gl.CreateQueries(GL_TIME_ELAPSED, 1, &state->query);
      gl.BeginQuery(GL_TIME_ELAPSED, slot.query != 0 ? slot.query : state->query);
    }
    const auto t0 = std::chrono::steady_clock::now();
    // What the body holds (a plan's programs) goes before anyone can see
    // the work finish, so a plan destroyed after a wait frees them.
    const std::function<void(GlContext&)> run = std::move(body);
    run(c);
    // (run is destroyed at the end of the closure, before submitted is set)
    if (timer) {
      gl.EndQuery(GL_TIME_ELAPSED);
      if (slot.query != 0) {
        // The GPU writes the result into the mapped ring when it is ready;
        // the fence below covers it.
        gl.GetQueryBufferObjectui64v(slot.query, c.timer_buffer(), GL_QUERY_RESULT, slot.offset);
        gl.MemoryBarrier(GL_QUERY_BUFFER_BARRIER_BIT | GL_CLIENT_MAPPED_BUFFER_BARRIER_BIT);
        state->timer_result = slot.result;
      }
    } else {
      // No device timer: only software rasterisers (llvmpipe), which run
      // compute dispatches and copies inside the call, so the host's
      // clock around the body is the work's time. Completion still goes
      // through the fence below, as on hardware.
      state->elapsed_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::steady_clock::now() - t0)
                              .count();
    }
    try {
      check_gl(gl, (what + " on " + c.label()).c_str());
    } catch (...) {
      if (state->query != 0) gl.DeleteQueries(1, &state->query);
      state->query = 0;
      throw;
    }
    if (c.info().egl_syncs) {
      state->egl_sync = eglCreateSync(c.display(), EGL_SYNC_FENCE, nullptr);
      if (state->egl_sync == EGL_NO_SYNC)
        state->sync = gl.FenceSync(GL_SYNC_GPU_COMMANDS_COMPLETE, 0);
    } else {
      state->sync = gl.FenceSync(GL_SYNC_GPU_COMMANDS_COMPLETE, 0);
    }
    gl.Flush();  // other threads wait on the sync: it must reach the device
  });
  state->submitted = submitted.share();
  return std::make_unique<GlFence>(ctx_, main_.get(), state);
}

std::unique_ptr<plugin::Fence> GlQueue::write(plugin::Buffer* dst, size_t offset, const void* src,
                                              size_t bytes, plugin::WaitList waits) {
  GlBuffer* b = buffer(dst, "write destination");
  b->check_range(offset, bytes, "write");
  const GLuint id = b->id();
  return issue(
      waits,
      [=](GlContext& c) {
        c.gl().NamedBufferSubData(id, static_cast<GLintptr>(offset), static_cast<GLsizeiptr>(bytes),
                                  src);
      },
      "buffer write");
}

std::unique_ptr<plugin::Fence> GlQueue::read(plugin::Buffer* src, size_t offset, void* dst,
                                             size_t bytes, plugin::WaitList waits) {
  GlBuffer* b = buffer(src, "read source");
  b->check_range(offset, bytes, "read");
  const GLuint id = b->id();
  return issue(
      waits,
      [=](GlContext& c) {
        c.gl().GetNamedBufferSubData(id, static_cast<GLintptr>(offset),
                                     static_cast<GLsizeiptr>(bytes), dst);
      },
      "buffer read");
}

std::unique_ptr<plugin::Fence> GlQueue::copy(plugin::Buffer* src, size_t src_offset,
                                             plugin::Buffer* dst, size_t dst_offset, size_t bytes,
                                             plugin::WaitList waits) {
  GlBuffer* s = buffer(src, "copy source");
  GlBuffer* d = buffer(dst, "copy destination");
  s->check_range(src_offset, bytes, "copy source");
  d->check_range(dst_offset, bytes, "copy destination");
  const GLuint sid = s->id(), did = d->id();
  return issue(
      waits,
      [=](GlContext& c) {
        c.gl().CopyNamedBufferSubData(sid, did, static_cast<GLintptr>(src_offset),
                                      static_cast<GLintptr>(dst_offset),
                                      static_cast<GLsizeiptr>(bytes));
      },
      "buffer copy");
}

std::unique_ptr<plugin::Fence> GlQueue::conv2d(plugin::Plan* plan, plugin::Buffer* x,
                                               plugin::Buffer* w, plugin::Buffer* bias,
                                               plugin::Buffer* y, plugin::WaitList waits) {
  auto* p = dynamic_cast<GlPlan*>(plan);
  if (p == nullptr || p->context() != main_)
    throw Error(SPARKLE_INVALID_ARGUMENT, "conv2d: the plan is not one of this OpenGL device");
  if (ctx_ != main_)
    throw Error(SPARKLE_INVALID_ARGUMENT,
                "conv2d on a transfer queue: dispatches run on the device's compute queue");
  return issue(waits, p->recorder(p->buffer_ids(x, w, bias, y)),
               "conv2d dispatch (" + std::string(p->kernel_name()) + ")");
}

}  // namespace sparkle::opengl
