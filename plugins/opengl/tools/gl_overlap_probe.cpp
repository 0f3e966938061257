// A probe for the executor's streams (issue 10, docs/EXECUTOR.md): does a GL
// driver run independent compute dispatches of one context at the same
// time? Copies done by shaders (reading or writing persistent mapped client
// memory over PCIe) beside a heavy ALU dispatch, with and without barriers
// between them, and glCopyNamedBufferSubData beside the same dispatch.
// Not a test: a measurement to run on a GPU machine.
//   usage: gl_overlap_probe [BYTES [ALU_ITERATIONS]]   (default: res2_2b at batch 32)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "glad_egl.h"
#include "glad_gl.h"

static GladGLContext gl;

static GLuint program(const char* src) {
  GLuint s = gl.CreateShader(GL_COMPUTE_SHADER);
  gl.ShaderSource(s, 1, &src, nullptr);
  gl.CompileShader(s);
  GLint ok = 0;
  gl.GetShaderiv(s, GL_COMPILE_STATUS, &ok);
  if (!ok) {
    char log[4096];
    gl.GetShaderInfoLog(s, sizeof log, nullptr, log);
    std::fprintf(stderr, "compile: %s\n", log);
    std::exit(1);
  }
  GLuint p = gl.CreateProgram();
  gl.AttachShader(p, s);
  gl.LinkProgram(p);
  return p;
}

static const char* kCopy = R"(#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer A { uvec4 a[]; };
layout(std430, binding = 1) writeonly buffer B { uvec4 b[]; };
uniform uint n;
void main() {
  for (uint i = gl_GlobalInvocationID.x; i < n; i += gl_NumWorkGroups.x * 256u) b[i] = a[i];
})";
static const char* kHeavy = R"(#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 2) buffer C { float c[]; };
uniform uint iters;
void main() {
  float x = float(gl_GlobalInvocationID.x) * 1e-7, y = 1.0001, z = 0.9999, w = 0.5;
  for (uint i = 0u; i < iters; ++i) { x = fma(x, y, z); w = fma(w, z, y); y = fma(y, w, x); z = fma(z, x, w); }
  c[gl_GlobalInvocationID.x] = x + y + z + w;
})";

int main(int argc, char** argv) {
  const size_t bytes = argc > 1 ? std::stoull(argv[1]) : 25690112;  // res2_2b b32
  const unsigned iters = argc > 2 ? std::stoul(argv[2]) : 20000;
  if (!gladLoaderLoadEGL(EGL_NO_DISPLAY) || eglQueryDevicesEXT == nullptr) {
    std::fputs("no EGL with EGL_EXT_device_enumeration\n", stderr);
    return 1;
  }
  EGLDeviceEXT devs[8];
  EGLint n = 0;
  eglQueryDevicesEXT(8, devs, &n);
  EGLDisplay d = EGL_NO_DISPLAY;
  for (int i = 0; i < n && d == EGL_NO_DISPLAY; ++i) {
    EGLDisplay t = eglGetPlatformDisplayEXT(EGL_PLATFORM_DEVICE_EXT, devs[i], nullptr);
    EGLint ma, mi;
    if (t != EGL_NO_DISPLAY && eglInitialize(t, &ma, &mi)) d = t;
  }
  if (d == EGL_NO_DISPLAY) {
    std::fputs("no EGL device display\n", stderr);
    return 1;
  }
  gladLoaderLoadEGL(d);
  eglBindAPI(EGL_OPENGL_API);
  const EGLint cfg_attr[] = {EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT, EGL_NONE};
  EGLConfig cfg;
  EGLint nc = 0;
  eglChooseConfig(d, cfg_attr, &cfg, 1, &nc);
  const EGLint ctx_attr[] = {EGL_CONTEXT_MAJOR_VERSION,
                             4,
                             EGL_CONTEXT_MINOR_VERSION,
                             5,
                             EGL_CONTEXT_OPENGL_PROFILE_MASK,
                             EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT,
                             EGL_NONE};
  EGLContext ctx = eglCreateContext(d, nc ? cfg : nullptr, EGL_NO_CONTEXT, ctx_attr);
  if (ctx == EGL_NO_CONTEXT || !eglMakeCurrent(d, EGL_NO_SURFACE, EGL_NO_SURFACE, ctx) ||
      !gladLoadGLContext(&gl, reinterpret_cast<GLADloadfunc>(eglGetProcAddress))) {
    std::fputs("no OpenGL 4.5 core context\n", stderr);
    return 1;
  }
  std::printf("renderer %s, %zu bytes per copy, %u iterations\n",
              (const char*)gl.GetString(GL_RENDERER), bytes, iters);

  const GLbitfield wflags = GL_MAP_WRITE_BIT | GL_MAP_PERSISTENT_BIT | GL_MAP_COHERENT_BIT;
  const GLbitfield rflags = GL_MAP_READ_BIT | GL_MAP_PERSISTENT_BIT | GL_MAP_COHERENT_BIT;
  GLuint host_in, host_out, dev_in, dev_out, heavy;
  gl.CreateBuffers(1, &host_in);
  gl.NamedBufferStorage(host_in, bytes, nullptr, wflags | GL_CLIENT_STORAGE_BIT);
  gl.CreateBuffers(1, &host_out);
  gl.NamedBufferStorage(host_out, bytes, nullptr, rflags | GL_CLIENT_STORAGE_BIT);
  gl.CreateBuffers(1, &dev_in);
  gl.NamedBufferStorage(dev_in, bytes, nullptr, 0);
  gl.CreateBuffers(1, &dev_out);
  gl.NamedBufferStorage(dev_out, bytes, nullptr, 0);
  const GLuint heavy_threads = 132 * 2048;
  gl.CreateBuffers(1, &heavy);
  gl.NamedBufferStorage(heavy, static_cast<GLsizeiptr>(heavy_threads) * 4, nullptr, 0);
  void* pin = gl.MapNamedBufferRange(host_in, 0, bytes, wflags);
  std::memset(pin, 1, bytes);
  gl.MapNamedBufferRange(host_out, 0, bytes, rflags);
  GLuint copy = program(kCopy), alu = program(kHeavy);
  const GLuint vec4s = static_cast<GLuint>(bytes / 16);

  auto shader_copy = [&](GLuint from, GLuint to, GLuint groups) {
    gl.UseProgram(copy);
    gl.Uniform1ui(gl.GetUniformLocation(copy, "n"), vec4s);
    gl.BindBufferBase(GL_SHADER_STORAGE_BUFFER, 0, from);
    gl.BindBufferBase(GL_SHADER_STORAGE_BUFFER, 1, to);
    gl.DispatchCompute(groups, 1, 1);
  };
  auto heavy_run = [&] {
    gl.UseProgram(alu);
    gl.Uniform1ui(gl.GetUniformLocation(alu, "iters"), iters);
    gl.BindBufferBase(GL_SHADER_STORAGE_BUFFER, 2, heavy);
    gl.DispatchCompute(heavy_threads / 256, 1, 1);
  };
  auto barrier = [&] { gl.MemoryBarrier(GL_ALL_BARRIER_BITS); };
  auto time = [&](const char* name, auto&& body) {
    std::vector<double> ms;
    for (int rep = 0; rep < 25; ++rep) {
      gl.Finish();
      const auto t0 = std::chrono::steady_clock::now();
      for (int k = 0; k < 4; ++k) body();  // 4 back to back: steady state
      gl.Finish();
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
          4);
    }
    std::sort(ms.begin(), ms.end());
    std::printf("%-52s median %.3f ms  (min %.3f, max %.3f)\n", name, ms[ms.size() / 2], ms[0],
                ms.back());
  };
  // warm the clocks
  for (int i = 0; i < 200; ++i) heavy_run();
  gl.Finish();
  for (GLuint groups : {132u, 528u, 2112u}) {
    char name[96];
    std::snprintf(name, sizeof name, "shader copy in  (host->dev), %u groups", groups);
    time(name, [&] {
      shader_copy(host_in, dev_in, groups);
      barrier();
    });
    std::snprintf(name, sizeof name, "shader copy out (dev->host), %u groups", groups);
    time(name, [&] {
      shader_copy(dev_out, host_out, groups);
      barrier();
    });
  }
  time("heavy ALU dispatch", [&] {
    heavy_run();
    barrier();
  });
  time("glCopyNamedBufferSubData in",
       [&] { gl.CopyNamedBufferSubData(host_in, dev_in, 0, 0, bytes); });
  time("glCopyNamedBufferSubData out",
       [&] { gl.CopyNamedBufferSubData(dev_out, host_out, 0, 0, bytes); });
  for (GLuint groups : {132u, 528u}) {
    char name[96];
    std::snprintf(name, sizeof name, "in + heavy + out, no barriers between (%u)", groups);
    time(name, [&] {
      shader_copy(host_in, dev_in, groups);
      heavy_run();
      shader_copy(dev_out, host_out, groups);
      barrier();
    });
    std::snprintf(name, sizeof name, "in + heavy + out, barriers between (%u)", groups);
    time(name, [&] {
      shader_copy(host_in, dev_in, groups);
      barrier();
      heavy_run();
      barrier();
      shader_copy(dev_out, host_out, groups);
      barrier();
    });
    std::snprintf(name, sizeof name, "in + out, no barriers (%u)", groups);
    time(name, [&] {
      shader_copy(host_in, dev_in, groups);
      shader_copy(dev_out, host_out, groups);
      barrier();
    });
  }
  time("glCopy in + heavy + glCopy out", [&] {
    gl.CopyNamedBufferSubData(host_in, dev_in, 0, 0, bytes);
    heavy_run();
    gl.CopyNamedBufferSubData(dev_out, host_out, 0, 0, bytes);
    barrier();
  });
  std::printf("GL error 0x%x\n", gl.GetError());
  return 0;
}
