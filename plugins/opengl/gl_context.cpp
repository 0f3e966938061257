// GL worker thread: context creation, driver queries and the task loop.
#include "gl_context.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <vector>

#include "program_cache.hpp"

namespace sparkle::opengl {

using plugin::Error;

namespace {

const char* egl_error_name(EGLint e) {
  switch (e) {
    case EGL_SUCCESS:
      return "EGL_SUCCESS";
    case EGL_NOT_INITIALIZED:
      return "EGL_NOT_INITIALIZED";
    case EGL_BAD_ACCESS:
      return "EGL_BAD_ACCESS";
    case EGL_BAD_ALLOC:
      return "EGL_BAD_ALLOC";
    case EGL_BAD_ATTRIBUTE:
      return "EGL_BAD_ATTRIBUTE";
    case EGL_BAD_CONFIG:
      return "EGL_BAD_CONFIG";
    case EGL_BAD_CONTEXT:
      return "EGL_BAD_CONTEXT";
    case EGL_BAD_DISPLAY:
      return "EGL_BAD_DISPLAY";
    case EGL_BAD_MATCH:
      return "EGL_BAD_MATCH";
    case EGL_BAD_PARAMETER:
      return "EGL_BAD_PARAMETER";
    default:
      return "EGL error";
  }
}

const char* gl_error_name(GLenum e) {
  switch (e) {
    case GL_INVALID_ENUM:
      return "GL_INVALID_ENUM";
    case GL_INVALID_VALUE:
      return "GL_INVALID_VALUE";
    case GL_INVALID_OPERATION:
      return "GL_INVALID_OPERATION";
    case GL_INVALID_FRAMEBUFFER_OPERATION:
      return "GL_INVALID_FRAMEBUFFER_OPERATION";
    case GL_OUT_OF_MEMORY:
      return "GL_OUT_OF_MEMORY";
    case GL_STACK_UNDERFLOW:
      return "GL_STACK_UNDERFLOW";
    case GL_STACK_OVERFLOW:
      return "GL_STACK_OVERFLOW";
    default:
      return "GL error";
  }
}

std::string gl_string(const GladGLContext& gl, GLenum name) {
  const GLubyte* s = gl.GetString(name);
  return s != nullptr ? reinterpret_cast<const char*>(s) : "";
}

bool has_word(const char* list, const char* word) {
  if (list == nullptr) return false;
  const size_t n = std::strlen(word);
  for (const char* p = list; (p = std::strstr(p, word)) != nullptr; p += n) {
    const bool start = p == list || p[-1] == ' ';
    const bool end = p[n] == '\0' || p[n] == ' ';
    if (start && end) return true;
  }
  return false;
}

// A compute shader that does a little work, to see whether GL_TIME_ELAPSED
// measures anything (llvmpipe reads 0).
const char* kTimerProbe = R"(#version 430
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer B { float v[]; };
void main() {
  float a = float(gl_GlobalInvocationID.x);
  for (int i = 0; i < 256; ++i) a = a * 0.999 + 1.0;
  v[gl_GlobalInvocationID.x] = a;
}
)";

}  // namespace

void clear_gl_errors(const GladGLContext& gl) {
  for (int i = 0; i < 64 && gl.GetError() != GL_NO_ERROR; ++i) {
  }
}

void check_gl(const GladGLContext& gl, const char* what) {
  GLenum first = gl.GetError();
  if (first == GL_NO_ERROR) return;
  bool oom = first == GL_OUT_OF_MEMORY;
  std::string names = gl_error_name(first);
  for (int i = 0; i < 64; ++i) {
    GLenum e = gl.GetError();
    if (e == GL_NO_ERROR) break;
    oom = oom || e == GL_OUT_OF_MEMORY;
    names += std::string(", ") + gl_error_name(e);
  }
  throw Error(oom ? SPARKLE_OUT_OF_MEMORY : SPARKLE_DEVICE_ERROR,
              std::string(what) + " failed: " + names);
}

GlContext::GlContext(EGLDisplay display, bool software_hint, std::string label)
    : label_(std::move(label)),
      programs_(std::make_unique<ProgramCache>(program_cache_capacity())) {
  std::promise<void> ready;
  auto started = ready.get_future();
  thread_ =
      std::thread(&GlContext::run, this, display, software_hint, EGL_NO_CONTEXT, std::move(ready));
  try {
    started.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

GlContext::GlContext(const GlContext& share, std::string label)
    : label_(std::move(label)), info_(share.info_), programs_(std::make_unique<ProgramCache>(1)) {
  std::promise<void> ready;
  auto started = ready.get_future();
  thread_ = std::thread(&GlContext::run, this, share.display_, info_.software, share.context_,
                        std::move(ready));
  try {
    started.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

GlContext::~GlContext() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GlContext::delete_program(GLuint id) {
  auto drop = [this, id] {
    if (context_ != EGL_NO_CONTEXT && gl_.DeleteProgram != nullptr) gl_.DeleteProgram(id);
  };
  if (on_gl_thread()) {
    drop();
  } else {
    push(drop);  // FIFO: a dispatch already queued that uses the program runs first
  }
}

void GlContext::push(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void GlContext::run(EGLDisplay display, bool software_hint, EGLContext share,
                    std::promise<void> ready) {
  thread_id_ = std::this_thread::get_id();
  try {
    create(display, share);
    // A shared context has the first one's driver and limits.
    if (share == EGL_NO_CONTEXT) {
      query_info(software_hint);
      probe_egl_syncs();
    }
  } catch (...) {
    destroy();
    ready.set_exception(std::current_exception());
    return;
  }
  ready.set_value();
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) break;  // stop_ and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();  // packaged_task: exceptions land in its future
  }
  destroy();
}

void GlContext::create(EGLDisplay display, EGLContext share) {
  display_ = display;
  if (eglBindAPI(EGL_OPENGL_API) != EGL_TRUE) {
    throw Error(SPARKLE_UNSUPPORTED,
                std::string("eglBindAPI(EGL_OPENGL_API) failed: ") + egl_error_name(eglGetError()));
  }
  const char* exts = eglQueryString(display, EGL_EXTENSIONS);
  EGLConfig config = EGL_NO_CONFIG_KHR;
  if (!has_word(exts, "EGL_KHR_no_config_context")) {
    const EGLint want[] = {EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT, EGL_SURFACE_TYPE, 0, EGL_NONE};
    EGLint found = 0;
    if (eglChooseConfig(display, want, &config, 1, &found) != EGL_TRUE || found < 1) {
      throw Error(SPARKLE_UNSUPPORTED, "no EGL config with desktop OpenGL");
    }
  }
  const EGLint attribs[] = {EGL_CONTEXT_MAJOR_VERSION,
                            4,
                            EGL_CONTEXT_MINOR_VERSION,
                            5,
                            EGL_CONTEXT_OPENGL_PROFILE_MASK,
                            EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT,
                            EGL_NONE};
  context_ = eglCreateContext(display, config, share, attribs);
  if (context_ == EGL_NO_CONTEXT) {
    throw Error(SPARKLE_UNSUPPORTED, std::string("no OpenGL 4.5 core context: eglCreateContext: ") +
                                         egl_error_name(eglGetError()));
  }
  if (eglMakeCurrent(display, EGL_NO_SURFACE, EGL_NO_SURFACE, context_) != EGL_TRUE) {
    throw Error(SPARKLE_UNSUPPORTED,
                std::string("surfaceless eglMakeCurrent failed: ") + egl_error_name(eglGetError()));
  }
  // eglGetProcAddress returns core functions too (EGL 1.5).
  if (gladLoadGLContext(&gl_, reinterpret_cast<GLADloadfunc>(eglGetProcAddress)) == 0) {
    throw Error(SPARKLE_UNSUPPORTED, "could not load OpenGL functions through eglGetProcAddress");
  }
  if (gl_.VERSION_4_5 == 0) {
    throw Error(SPARKLE_UNSUPPORTED, "driver gives OpenGL " + gl_string(gl_, GL_VERSION) +
                                         ", the backend needs 4.5 core");
  }
}

void GlContext::query_info(bool software_hint) {
  const auto& gl = gl_;
  info_.vendor = gl_string(gl, GL_VENDOR);
  info_.renderer = gl_string(gl, GL_RENDERER);
  info_.version = gl_string(gl, GL_VERSION);
  info_.glsl_version = gl_string(gl, GL_SHADING_LANGUAGE_VERSION);
  info_.software = software_hint || info_.renderer.find("llvmpipe") != std::string::npos ||
                   info_.renderer.find("softpipe") != std::string::npos;
  GLint v = 0;
  gl.GetIntegerv(GL_MAX_COMPUTE_WORK_GROUP_INVOCATIONS, &v);
  info_.max_invocations = v;
  for (GLuint i = 0; i < 3; ++i) {
    GLint s = 0, c = 0;
    gl.GetIntegeri_v(GL_MAX_COMPUTE_WORK_GROUP_SIZE, i, &s);
    gl.GetIntegeri_v(GL_MAX_COMPUTE_WORK_GROUP_COUNT, i, &c);
    info_.max_size[i] = s;
    info_.max_count[i] = static_cast<uint32_t>(c);  // NVIDIA reports 2^31-1 in x
  }
  gl.GetIntegerv(GL_MAX_COMPUTE_SHARED_MEMORY_SIZE, &v);
  info_.max_shared_bytes = v;
  GLint64 block = 0;
  gl.GetInteger64v(GL_MAX_SHADER_STORAGE_BLOCK_SIZE, &block);
  info_.max_ssbo_block_bytes = block;
  GLint nformats = 0;
  gl.GetIntegerv(GL_NUM_PROGRAM_BINARY_FORMATS, &nformats);
  info_.binary_format_count = nformats > 0 ? nformats : 0;
  if (nformats > 0) {
    std::vector<GLint> formats(static_cast<size_t>(nformats));
    gl.GetIntegerv(GL_PROGRAM_BINARY_FORMATS, formats.data());
    std::ostringstream os;
    for (size_t i = 0; i < formats.size(); ++i) {
      os << (i ? "," : "") << "0x" << std::hex << formats[i];
    }
    info_.binary_formats = os.str();
  } else {
    info_.binary_formats = "none";
  }
  check_gl(gl, "querying compute limits");
  if (info_.max_invocations < 64 || info_.max_ssbo_block_bytes <= 0) {
    throw Error(SPARKLE_UNSUPPORTED, "driver lacks usable compute shaders");
  }

  // Timer probe.
  GLuint shader = gl.CreateShader(GL_COMPUTE_SHADER);
  gl.ShaderSource(shader, 1, &kTimerProbe, nullptr);
  gl.CompileShader(shader);
  GLuint program = gl.CreateProgram();
  gl.AttachShader(program, shader);
  gl.LinkProgram(program);
  gl.DeleteShader(shader);
  GLint linked = 0;
  gl.GetProgramiv(program, GL_LINK_STATUS, &linked);
  if (linked != 0) {
    GLuint buf = 0, query = 0;
    gl.CreateBuffers(1, &buf);
    gl.NamedBufferData(buf, 64 * 64 * 4, nullptr, GL_DYNAMIC_DRAW);
    gl.CreateQueries(GL_TIME_ELAPSED, 1, &query);
    gl.UseProgram(program);
    gl.BindBufferBase(GL_SHADER_STORAGE_BUFFER, 0, buf);
    gl.BeginQuery(GL_TIME_ELAPSED, query);
    gl.DispatchCompute(64, 1, 1);
    gl.EndQuery(GL_TIME_ELAPSED);
    GLuint64 ns = 0;
    gl.GetQueryObjectui64v(query, GL_QUERY_RESULT, &ns);
    // llvmpipe answers, but with times that do not cover the dispatch (0 for
    // real convolutions); wall time around glFinish is the honest figure.
    info_.timer_queries = ns > 0 && !info_.software;
    gl.UseProgram(0);
    gl.DeleteQueries(1, &query);
    gl.DeleteBuffers(1, &buf);
  }
  gl.DeleteProgram(program);
  clear_gl_errors(gl);
}

GlContext::TimerSlot GlContext::next_timer_slot() {
  if (timer_buffer_ == 0) {
    if (gl_.GetQueryBufferObjectui64v == nullptr) return {};
    const auto bytes = static_cast<GLsizeiptr>(kTimerSlots * sizeof(uint64_t));
    const GLbitfield access = GL_MAP_READ_BIT | GL_MAP_PERSISTENT_BIT | GL_MAP_COHERENT_BIT;
    gl_.CreateBuffers(1, &timer_buffer_);
    gl_.NamedBufferStorage(timer_buffer_, bytes, nullptr, access | GL_CLIENT_STORAGE_BIT);
    timer_results_ =
        static_cast<uint64_t*>(gl_.MapNamedBufferRange(timer_buffer_, 0, bytes, access));
    if (timer_results_ == nullptr) {
      gl_.DeleteBuffers(1, &timer_buffer_);
      timer_buffer_ = 0;
      clear_gl_errors(gl_);
      return {};
    }
    timer_queries_.resize(kTimerSlots);
    gl_.CreateQueries(GL_TIME_ELAPSED, static_cast<GLsizei>(kTimerSlots), timer_queries_.data());
  }
  const uint32_t slot = next_timer_++ % kTimerSlots;
  return {timer_queries_[slot], static_cast<GLintptr>(slot * sizeof(uint64_t)),
          timer_results_ + slot};
}

void GlContext::probe_egl_syncs() {
  // EGL 1.5 core syncs (eglCreateSync and friends); glad leaves them NULL
  // on an older display. One real fence proves the driver takes them here.
  info_.egl_syncs = false;
  if (eglCreateSync == nullptr || eglClientWaitSync == nullptr || eglDestroySync == nullptr ||
      eglWaitSync == nullptr)
    return;
  EGLint major = 0, minor = 0;
  const char* v = eglQueryString(display_, EGL_VERSION);
  if (v == nullptr || std::sscanf(v, "%d.%d", &major, &minor) != 2 || (major == 1 && minor < 5))
    return;
  EGLSync sync = eglCreateSync(display_, EGL_SYNC_FENCE, nullptr);
  if (sync == EGL_NO_SYNC) return;
  gl_.Flush();
  const EGLint r = eglClientWaitSync(display_, sync, 0, 1000000000ull);
  eglDestroySync(display_, sync);
  info_.egl_syncs = r == EGL_CONDITION_SATISFIED;
}

void GlContext::destroy() {
  // Every plan holds the context, so only the cache holds programs now: they
  // are deleted here, on the GL thread, while the context is current.
  programs_.reset();
  if (!timer_queries_.empty())
    gl_.DeleteQueries(static_cast<GLsizei>(timer_queries_.size()), timer_queries_.data());
  if (timer_buffer_ != 0) gl_.DeleteBuffers(1, &timer_buffer_);
  if (context_ != EGL_NO_CONTEXT) {
    eglMakeCurrent(display_, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    eglDestroyContext(display_, context_);
    context_ = EGL_NO_CONTEXT;
  }
  eglReleaseThread();
}

}  // namespace sparkle::opengl
