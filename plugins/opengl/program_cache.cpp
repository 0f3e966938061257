// Programs per context: LiveCache in memory, program binaries in the host's
// blob store, GLSL compilation last.
#include "program_cache.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "../common/blob_programs.hpp"
#include "../common/env.hpp"
#include "gl_caps.hpp"

namespace sparkle::opengl {

using plugin::Error;

namespace {

constexpr size_t kDefaultCapacity = 256;
constexpr const char* kBlobKind = "gl-program-binary";
// Everything besides the source that changes the binary. The SPARKLE_GL_*
// variables that pick kernels and tiles only change the generated source,
// which is part of the key; SPARKLE_GL_DISPATCH_LIMIT changes no code.
constexpr const char* kBlobOptions = "glsl-compute;GL_PROGRAM_BINARY_RETRIEVABLE_HINT=1";
// Payload: the binary format (u32, little-endian), then the binary.
constexpr size_t kFormatBytes = 4;

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string shader_log(const GladGLContext& gl, GLuint shader) {
  GLint len = 0;
  gl.GetShaderiv(shader, GL_INFO_LOG_LENGTH, &len);
  std::vector<char> log(static_cast<size_t>(len > 0 ? len : 1), '\0');
  gl.GetShaderInfoLog(shader, static_cast<GLsizei>(log.size()), nullptr, log.data());
  return log.data();
}

std::string program_log(const GladGLContext& gl, GLuint program) {
  GLint len = 0;
  gl.GetProgramiv(program, GL_INFO_LOG_LENGTH, &len);
  std::vector<char> log(static_cast<size_t>(len > 0 ? len : 1), '\0');
  gl.GetProgramInfoLog(program, static_cast<GLsizei>(log.size()), nullptr, log.data());
  return log.data();
}

std::string hex(uint32_t v) {
  char out[16];
  std::snprintf(out, sizeof out, "0x%x", v);
  return out;
}

// GL thread. The program from a stored payload, or 0 with the reason.
GLuint load_binary(GlContext& c, const std::string& payload, std::string* why) {
  const auto& gl = c.gl();
  if (payload.size() <= kFormatBytes) {
    *why = "payload of " + std::to_string(payload.size()) + " bytes holds no program binary";
    return 0;
  }
  uint32_t format = 0;
  for (size_t i = 0; i < kFormatBytes; ++i) {
    format |= uint32_t{static_cast<uint8_t>(payload[i])} << (8 * i);
  }
  clear_gl_errors(gl);
  GLuint program = gl.CreateProgram();
  gl.ProgramBinary(program, static_cast<GLenum>(format), payload.data() + kFormatBytes,
                   static_cast<GLsizei>(payload.size() - kFormatBytes));
  GLint linked = 0;
  gl.GetProgramiv(program, GL_LINK_STATUS, &linked);
  const GLenum error = gl.GetError();
  clear_gl_errors(gl);
  if (linked == 0 || error != GL_NO_ERROR) {
    std::string log = linked == 0 ? program_log(gl, program) : std::string();
    while (!log.empty() && (log.back() == '\n' || log.back() == ' ')) log.pop_back();
    *why = "glProgramBinary(format " + hex(format) + ") " +
           (error != GL_NO_ERROR ? "raised GL error " + hex(error) : std::string("did not link")) +
           (log.empty() ? "" : ": " + log);
    gl.DeleteProgram(program);
    clear_gl_errors(gl);
    return 0;
  }
  return program;
}

// A compile in flight: with GL_KHR_parallel_shader_compile the driver
// compiles and links on threads of its own, and the GL thread is free for
// other work (other compiles, dispatches) until the result is asked for.
struct Pending {
  GLuint shader = 0;
  GLuint program = 0;
  Clock::time_point t0;
};

// GL thread: hands the source to the compiler and links (both may return
// before they are done).
Pending start_compile(GlContext& c, const std::string& source, bool want_binary) {
  const auto& gl = c.gl();
  clear_gl_errors(gl);
  Pending p;
  p.t0 = Clock::now();
  p.shader = gl.CreateShader(GL_COMPUTE_SHADER);
  const char* text = source.c_str();
  gl.ShaderSource(p.shader, 1, &text, nullptr);
  gl.CompileShader(p.shader);
  p.program = gl.CreateProgram();
  if (want_binary) gl.ProgramParameteri(p.program, GL_PROGRAM_BINARY_RETRIEVABLE_HINT, GL_TRUE);
  gl.AttachShader(p.program, p.shader);
  gl.LinkProgram(p.program);
  return p;
}

// GL thread: true once the driver has finished (always true without the
// parallel-compile extension, whose status queries then block).
bool compile_done(GlContext& c, const Pending& p, bool parallel) {
  if (!parallel) return true;
  GLint done = 0;
  c.gl().GetProgramiv(p.program, GL_COMPLETION_STATUS_KHR, &done);
  return done != 0;
}

// GL thread: the result of a compile, with its binary when wanted. Throws
// plugin::Error(SPARKLE_DEVICE_ERROR) with the kernel name and the driver's
// log when compile or link failed.
gpu::Compiled<GLuint> finish_compile(GlContext& c, const std::string& kernel_name, Pending p,
                                     bool want_binary) {
  const auto& gl = c.gl();
  GLint ok = 0;
  gl.GetShaderiv(p.shader, GL_COMPILE_STATUS, &ok);
  if (ok == 0) {
    std::string log = shader_log(gl, p.shader);
    gl.DeleteShader(p.shader);
    gl.DeleteProgram(p.program);
    clear_gl_errors(gl);
    throw Error(SPARKLE_DEVICE_ERROR, "kernel " + kernel_name + ": GLSL compile failed on " +
                                          c.info().renderer + ": " + log);
  }
  gl.GetProgramiv(p.program, GL_LINK_STATUS, &ok);
  gl.DetachShader(p.program, p.shader);
  gl.DeleteShader(p.shader);
  const GLuint program = p.program;
  if (ok == 0) {
    std::string log = program_log(gl, program);
    gl.DeleteProgram(program);
    clear_gl_errors(gl);
    throw Error(SPARKLE_DEVICE_ERROR, "kernel " + kernel_name + ": GLSL link failed on " +
                                          c.info().renderer + ": " + log);
  }
  try {
    check_gl(gl, ("building kernel " + kernel_name).c_str());
  } catch (...) {
    gl.DeleteProgram(program);
    throw;
  }
  gpu::Compiled<GLuint> out;
  out.program = program;
  out.ms = ms_since(p.t0);
  if (want_binary) {
    GLint length = 0;
    gl.GetProgramiv(program, GL_PROGRAM_BINARY_LENGTH, &length);
    if (length > 0) {
      out.payload.assign(kFormatBytes + static_cast<size_t>(length), '\0');
      GLsizei written = 0;
      GLenum format = 0;
      gl.GetProgramBinary(program, length, &written, &format, out.payload.data() + kFormatBytes);
      if (gl.GetError() != GL_NO_ERROR || written <= 0) {
        out.payload.clear();  // not cached; the program itself is fine
      } else {
        out.payload.resize(kFormatBytes + static_cast<size_t>(written));
        for (size_t i = 0; i < kFormatBytes; ++i) {
          out.payload[i] = static_cast<char>(static_cast<uint32_t>(format) >> (8 * i));
        }
      }
    }
    clear_gl_errors(gl);
  }
  return out;
}

// Compiles on the calling thread's behalf: the GL thread only starts the
// compile and later collects it, polling in between from this thread, so
// several callers compile at once where the driver allows it.
gpu::Compiled<GLuint> compile_source(GlContext& ctx, const std::string& kernel_name,
                                     const std::string& source, bool want_binary) {
  const bool parallel = caps_of(ctx).parallel_compile;
  Pending p = ctx.call([&](GlContext& c) { return start_compile(c, source, want_binary); });
  if (parallel) {
    while (!ctx.call([&](GlContext& c) { return compile_done(c, p, true); })) {
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  }
  return ctx.call([&](GlContext& c) { return finish_compile(c, kernel_name, p, want_binary); });
}

// A LiveCache miss: the blob store, then the compiler.
ProgramPtr build(GlContext& ctx, const std::string& kernel_name, const std::string& source) {
  const GlInfo& info = ctx.info();
  gpu::BlobKeyFields key;
  key.plugin = "opengl";
  key.plugin_build_id = plugin_build_id();
  key.kind = kBlobKind;
  key.name = kernel_name;
  key.device_fingerprint = program_device_fingerprint(info);
  key.options = kBlobOptions;
  key.source = &source;
  auto load = [&](const std::string& payload, std::string* why) -> ProgramPtr {
    const GLuint id = ctx.call([&](GlContext& c) { return load_binary(c, payload, why); });
    return id != 0 ? std::make_shared<Program>(ctx, id) : nullptr;
  };
  auto compile = [&](bool want_binary) {
    gpu::Compiled<GLuint> built = compile_source(ctx, kernel_name, source, want_binary);
    gpu::Compiled<ProgramPtr> out;
    out.program = std::make_shared<Program>(ctx, built.program);
    out.ms = built.ms;
    out.payload = std::move(built.payload);
    return out;
  };
  // Without binary formats (Mesa with its own shader cache off) there is
  // nothing to store.
  return gpu::load_or_compile<ProgramPtr>(key, info.binary_format_count > 0, load, compile);
}

}  // namespace

Program::~Program() { ctx_->delete_program(id_); }

size_t program_cache_capacity() {
  if (!gpu::env_string("SPARKLE_GL_PROGRAM_CACHE_CAPACITY")) return kDefaultCapacity;
  return static_cast<size_t>(*gpu::env_int("SPARKLE_GL_PROGRAM_CACHE_CAPACITY", 0, 1 << 24));
}

std::string program_device_fingerprint(const GlInfo& info) { return gl_fingerprint(info); }

ProgramPtr compile_program(GlContext& ctx, const std::string& kernel_name,
                           const std::string& source) {
  if (ctx.on_gl_thread()) {
    // A miss waits for the GL thread (and single flight for other callers).
    throw Error(SPARKLE_INTERNAL, "compile_program called on the GL thread for " + kernel_name);
  }
  bool hit = false;
  ProgramPtr program = ctx.programs().get(
      kernel_name + '\n' + source, [&] { return build(ctx, kernel_name, source); }, &hit);
  if (hit) gpu::report_cache_event(SPARKLE_CACHE_MEMORY_HIT, 0);
  return program;
}

}  // namespace sparkle::opengl
