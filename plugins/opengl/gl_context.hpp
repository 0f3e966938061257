// One GL 4.5 core context on an EGL display, owned by a worker thread that
// makes every GL call. Other threads hand it closures and get futures.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <sparkle/live_cache.hpp>
#include <sparkle/plugin.hpp>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "glad_egl.h"
#include "glad_gl.h"

namespace sparkle::opengl {

class Program;  // program_cache.hpp
// Live programs of one context, keyed by kernel name + '\n' + source.
using ProgramCache = LiveCache<std::string, Program>;

// What the driver reports; read once when the context starts.
struct GlInfo {
  std::string vendor;
  std::string renderer;
  std::string version;
  std::string glsl_version;
  std::string binary_formats;   // "0x875f,..." or "none"
  int binary_format_count = 0;  // GL_NUM_PROGRAM_BINARY_FORMATS
  int64_t max_invocations = 0;
  int64_t max_size[3] = {0, 0, 0};
  int64_t max_count[3] = {0, 0, 0};
  int64_t max_shared_bytes = 0;
  int64_t max_ssbo_block_bytes = 0;
  bool timer_queries = false;  // GL_TIME_ELAPSED gives non-zero times
  bool software = false;       // llvmpipe / softpipe
  // EGL 1.5 fence syncs work on this display: any thread can wait for GL
  // work without the GL thread, and another context can wait on the device.
  bool egl_syncs = false;
};

class GlContext {
 public:
  // Starts the worker thread and creates the context there. Throws
  // plugin::Error when the display cannot give a GL 4.5 core context.
  GlContext(EGLDisplay display, bool software_hint, std::string label);
  // A second context in `share`'s share group (buffers, programs and syncs
  // are common), on a thread of its own: a transfer queue.
  GlContext(const GlContext& share, std::string label);
  ~GlContext();
  GlContext(const GlContext&) = delete;
  GlContext& operator=(const GlContext&) = delete;

  // Runs fn(*this) on the GL thread; the future carries its result or
  // exception.
  template <class F>
  auto submit(F&& fn) -> std::future<std::invoke_result_t<F&, GlContext&>> {
    using R = std::invoke_result_t<F&, GlContext&>;
    auto task = std::make_shared<std::packaged_task<R()>>(
        [this, f = std::forward<F>(fn)]() mutable { return f(*this); });
    auto future = task->get_future();
    if (on_gl_thread()) {
      (*task)();  // a closure that submits more work must not wait on itself
    } else {
      push([task] { (*task)(); });
    }
    return future;
  }

  // submit() and wait.
  template <class F>
  auto call(F&& fn) {
    return submit(std::forward<F>(fn)).get();
  }

  bool on_gl_thread() const { return std::this_thread::get_id() == thread_id_; }

  // GL thread only.
  const GladGLContext& gl() const { return gl_; }

  // Any thread. The live programs (see program_cache.hpp); emptied on the GL
  // thread when the context is destroyed.
  ProgramCache& programs() { return *programs_; }
  // Any thread: glDeleteProgram(id) now on the GL thread, else queued behind
  // the work already submitted (which may still use the program).
  void delete_program(GLuint id);

  // GL thread only: a timer query of the context's ring and where its
  // result lands (a mapped buffer the GPU writes the result into, so the
  // host reads it after the fence without a trip to this thread). Slots are
  // reused after kTimerSlots queries; far more than the work in flight.
  // nullptr slot: no ring on this driver.
  static constexpr uint32_t kTimerSlots = 4096;
  struct TimerSlot {
    GLuint query = 0;
    GLintptr offset = 0;
    const volatile uint64_t* result = nullptr;
  };
  TimerSlot next_timer_slot();
  GLuint timer_buffer() const { return timer_buffer_; }

  const GlInfo& info() const { return info_; }
  const std::string& label() const { return label_; }
  EGLDisplay display() const { return display_; }

 private:
  void push(std::function<void()> task);
  void run(EGLDisplay display, bool software_hint, EGLContext share, std::promise<void> ready);
  void create(EGLDisplay display, EGLContext share);
  void probe_egl_syncs();
  void query_info(bool software_hint);
  void destroy();

  std::string label_;
  GlInfo info_;
  GladGLContext gl_{};
  EGLDisplay display_ = EGL_NO_DISPLAY;
  EGLContext context_ = EGL_NO_CONTEXT;
  std::unique_ptr<ProgramCache> programs_;
  GLuint timer_buffer_ = 0;  // kTimerSlots uint64 results, mapped
  uint64_t* timer_results_ = nullptr;
  std::vector<GLuint> timer_queries_;
  uint32_t next_timer_ = 0;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
  std::thread::id thread_id_;
};

// Drains glGetError. Throws plugin::Error naming `what` if anything was set:
// SPARKLE_OUT_OF_MEMORY for GL_OUT_OF_MEMORY, else SPARKLE_DEVICE_ERROR.
void check_gl(const GladGLContext& gl, const char* what);

// Clears pending GL errors (after a failure, so the next call starts clean).
void clear_gl_errors(const GladGLContext& gl);

}  // namespace sparkle::opengl
