// Programs per context: LiveCache in memory, program binaries in the host's
// blob store, GLSL compilation last.
#include "program_cache.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

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

// The host's services, with the v1.1 members checked for presence.
const sparkle_host_services* host() { return plugin::detail::state().host; }

bool host_has(size_t member_end) {
  const auto* h = host();
  return h != nullptr && h->struct_size >= member_end;
}

void report(sparkle_cache_event event, double ms) {
  if (host_has(offsetof(sparkle_host_services, cache_event) + sizeof(void*)) &&
      host()->cache_event != nullptr) {
    host()->cache_event(event, ms);
  }
}

// The blob store, or nullptr when the host predates ABI 1.1 or omits it.
const sparkle_host_services* blob_store() {
  const auto* h = host();
  if (!host_has(offsetof(sparkle_host_services, blob_reject) + sizeof(void*))) return nullptr;
  if (h->blob_get == nullptr || h->blob_release == nullptr || h->blob_put == nullptr ||
      h->blob_reject == nullptr) {
    return nullptr;
  }
  return h;
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

struct Compiled {
  GLuint program = 0;
  double ms = 0;       // compile + link
  std::string binary;  // the payload to store; empty if not wanted or not given
};

// GL thread. Compiles and links; with want_binary, also reads the binary back.
Compiled compile_source(GlContext& c, const std::string& kernel_name, const std::string& source,
                        bool want_binary) {
  const auto& gl = c.gl();
  clear_gl_errors(gl);
  const auto t0 = Clock::now();
  GLuint shader = gl.CreateShader(GL_COMPUTE_SHADER);
  const char* text = source.c_str();
  gl.ShaderSource(shader, 1, &text, nullptr);
  gl.CompileShader(shader);
  GLint ok = 0;
  gl.GetShaderiv(shader, GL_COMPILE_STATUS, &ok);
  if (ok == 0) {
    std::string log = shader_log(gl, shader);
    gl.DeleteShader(shader);
    clear_gl_errors(gl);
    throw Error(SPARKLE_DEVICE_ERROR, "kernel " + kernel_name + ": GLSL compile failed on " +
                                          c.info().renderer + ": " + log);
  }
  GLuint program = gl.CreateProgram();
  if (want_binary) gl.ProgramParameteri(program, GL_PROGRAM_BINARY_RETRIEVABLE_HINT, GL_TRUE);
  gl.AttachShader(program, shader);
  gl.LinkProgram(program);
  gl.DetachShader(program, shader);
  gl.DeleteShader(shader);
  gl.GetProgramiv(program, GL_LINK_STATUS, &ok);
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
  Compiled out;
  out.program = program;
  out.ms = ms_since(t0);
  if (want_binary) {
    GLint length = 0;
    gl.GetProgramiv(program, GL_PROGRAM_BINARY_LENGTH, &length);
    if (length > 0) {
      out.binary.assign(kFormatBytes + static_cast<size_t>(length), '\0');
      GLsizei written = 0;
      GLenum format = 0;
      gl.GetProgramBinary(program, length, &written, &format, out.binary.data() + kFormatBytes);
      if (gl.GetError() != GL_NO_ERROR || written <= 0) {
        out.binary.clear();  // not cached; the program itself is fine
      } else {
        out.binary.resize(kFormatBytes + static_cast<size_t>(written));
        for (size_t i = 0; i < kFormatBytes; ++i) {
          out.binary[i] = static_cast<char>(static_cast<uint32_t>(format) >> (8 * i));
        }
      }
    }
    clear_gl_errors(gl);
  }
  return out;
}

// A LiveCache miss: the blob store, then the compiler.
ProgramPtr build(GlContext& ctx, const std::string& kernel_name, const std::string& source) {
  const GlInfo& info = ctx.info();
  const sparkle_host_services* store = info.binary_format_count > 0 ? blob_store() : nullptr;
  const std::string fingerprint = program_device_fingerprint(info);
  sparkle_blob_key key;
  std::memset(&key, 0, sizeof key);
  key.struct_size = sizeof key;
  key.plugin = "opengl";
  key.plugin_build_id = plugin_build_id();
  key.kind = kBlobKind;
  key.name = kernel_name.c_str();
  key.device_fingerprint = fingerprint.c_str();
  key.options = kBlobOptions;
  key.source = source.data();
  key.source_size = source.size();

  if (store != nullptr) {
    const auto t0 = Clock::now();
    size_t size = 0;
    if (void* blob = store->blob_get(&key, &size); blob != nullptr) {
      std::string payload(static_cast<const char*>(blob), size);
      store->blob_release(blob);
      std::string why;
      const GLuint id = ctx.call([&](GlContext& c) { return load_binary(c, payload, &why); });
      if (id != 0) {
        auto program = std::make_shared<Program>(ctx, id);
        report(SPARKLE_CACHE_DISK_HIT, ms_since(t0));
        return program;
      }
      // A driver update, or bytes the store could not tell were wrong.
      store->blob_reject(&key, why.c_str());
    }
  }

  Compiled built = ctx.call(
      [&](GlContext& c) { return compile_source(c, kernel_name, source, store != nullptr); });
  auto program = std::make_shared<Program>(ctx, built.program);
  report(SPARKLE_CACHE_COMPILE, built.ms);
  if (store != nullptr && !built.binary.empty()) {
    store->blob_put(&key, built.binary.data(), built.binary.size(), built.ms);
  }
  return program;
}

}  // namespace

Program::~Program() { ctx_->delete_program(id_); }

size_t program_cache_capacity() {
  const char* v = std::getenv("SPARKLE_GL_PROGRAM_CACHE_CAPACITY");
  if (v == nullptr || *v == '\0') return kDefaultCapacity;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (end == v || *end != '\0' || *v == '-') {
    plugin::log(SPARKLE_LOG_WARN, std::string("SPARKLE_GL_PROGRAM_CACHE_CAPACITY=") + v +
                                      " is not a count; using " + std::to_string(kDefaultCapacity));
    return kDefaultCapacity;
  }
  return static_cast<size_t>(n);
}

std::string program_device_fingerprint(const GlInfo& info) {
  return info.renderer + " | " + info.vendor + " | " + info.version + " | binary formats " +
         info.binary_formats;
}

ProgramPtr compile_program(GlContext& ctx, const std::string& kernel_name,
                           const std::string& source) {
  if (ctx.on_gl_thread()) {
    // A miss waits for the GL thread (and single flight for other callers).
    throw Error(SPARKLE_INTERNAL, "compile_program called on the GL thread for " + kernel_name);
  }
  bool hit = false;
  ProgramPtr program = ctx.programs().get(
      kernel_name + '\n' + source, [&] { return build(ctx, kernel_name, source); }, &hit);
  if (hit) report(SPARKLE_CACHE_MEMORY_HIT, 0);
  return program;
}

}  // namespace sparkle::opengl
