// Device probes of the OpenGL backend: compute units, subgroups, parallel
// compilation. Each probe is a tiny compute shader whose output is checked,
// so an extension that is listed but behaves differently is not trusted.
#include "gl_caps.hpp"

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "../common/env.hpp"
#include "../common/fingerprint.hpp"

namespace sparkle::opengl {

namespace {

// Compiles and runs `source` as local_size x groups invocations and returns
// `words` uint32 of its buffer at binding 0, or an empty vector if the
// driver refused it. GL thread.
std::vector<uint32_t> run_probe(const GladGLContext& gl, const std::string& source, size_t words,
                                GLuint groups = 1) {
  clear_gl_errors(gl);
  std::vector<uint32_t> out;
  const char* text = source.c_str();
  GLuint shader = gl.CreateShader(GL_COMPUTE_SHADER);
  gl.ShaderSource(shader, 1, &text, nullptr);
  gl.CompileShader(shader);
  GLint ok = 0;
  gl.GetShaderiv(shader, GL_COMPILE_STATUS, &ok);
  GLuint program = 0;
  if (ok != 0) {
    program = gl.CreateProgram();
    gl.AttachShader(program, shader);
    gl.LinkProgram(program);
    gl.GetProgramiv(program, GL_LINK_STATUS, &ok);
  }
  gl.DeleteShader(shader);
  if (ok != 0) {
    GLuint buf = 0;
    gl.CreateBuffers(1, &buf);
    std::vector<uint32_t> init(words, 0xffffffffu);
    gl.NamedBufferData(buf, static_cast<GLsizeiptr>(words * 4), init.data(), GL_DYNAMIC_COPY);
    gl.UseProgram(program);
    gl.BindBufferBase(GL_SHADER_STORAGE_BUFFER, 0, buf);
    gl.DispatchCompute(groups, 1, 1);
    gl.MemoryBarrier(GL_BUFFER_UPDATE_BARRIER_BIT);
    out.resize(words);
    gl.GetNamedBufferSubData(buf, 0, static_cast<GLsizeiptr>(words * 4), out.data());
    gl.UseProgram(0);
    gl.DeleteBuffers(1, &buf);
    if (gl.GetError() != GL_NO_ERROR) out.clear();
  }
  if (program != 0) gl.DeleteProgram(program);
  clear_gl_errors(gl);
  return out;
}

// NVIDIA: the SM count and resident warps per SM are shader built-ins.
void probe_nv_thread_group(const GladGLContext& gl, GlCaps* caps) {
  if (!has_gl_extension(gl, "GL_NV_shader_thread_group")) return;
  const auto v = run_probe(gl, R"(#version 450
#extension GL_NV_shader_thread_group : require
layout(local_size_x = 1) in;
layout(std430, binding = 0) buffer B { uint v[]; };
void main() { v[0] = gl_SMCountNV; v[1] = gl_WarpsPerSMNV; v[2] = gl_WarpSizeNV; }
)",
                           3);
  if (v.size() != 3 || v[0] == 0 || v[0] > 65536 || v[1] == 0 || v[2] == 0 || v[2] > 256) return;
  caps->units.count = v[0];
  caps->units.threads_per_cu = int64_t{v[1]} * v[2];
  // GL cannot report the register file. On NVIDIA it holds exactly enough
  // for every resident thread at 32 registers (the occupancy rule of every
  // generation since Kepler), so it follows from the resident threads.
  caps->units.registers_per_cu = caps->units.threads_per_cu * 32;
  caps->units_source = "GL_NV_shader_thread_group (" + std::to_string(v[1]) + " warps of " +
                       std::to_string(v[2]) + " per SM)";
}

// Subgroup shuffles are usable when the probe shows that lanes of a
// subgroup are consecutive local invocation indices and reading lane 3
// returns lane 3's value, for the work-group sizes the kernels use.
void probe_subgroups(const GladGLContext& gl, GlCaps* caps) {
  struct Flavour {
    const char* extension;
    const char* header;
    const char* size;
    const char* lane;
    const char* broadcast;
  };
  const Flavour flavours[] = {
      // The shuffle the kernels use (not only a broadcast): a driver with
      // the basic extension but no shuffle must not offer subgroup variants.
      {"GL_KHR_shader_subgroup",
       "#extension GL_KHR_shader_subgroup_basic : require\n"
       "#extension GL_KHR_shader_subgroup_shuffle : require\n",
       "gl_SubgroupSize", "gl_SubgroupInvocationID", "subgroupShuffle(i, 3u)"},
      {"GL_ARB_shader_ballot", "#extension GL_ARB_shader_ballot : require\n", "gl_SubGroupSizeARB",
       "gl_SubGroupInvocationARB", "readInvocationARB(i, 3u)"},
  };
  for (const auto& f : flavours) {
    if (!has_gl_extension(gl, f.extension)) continue;
    int size = 0;
    bool ok = true;
    for (int local : {64, 128, 256}) {
      const std::string src = std::string("#version 450\n") + f.header +
                              "layout(local_size_x = " + std::to_string(local) +
                              ") in;\n"
                              "layout(std430, binding = 0) buffer B { uint v[]; };\n"
                              "void main() {\n"
                              "  uint i = gl_LocalInvocationIndex;\n"
                              "  v[3u * i] = " +
                              f.size + ";\n  v[3u * i + 1u] = " + f.lane +
                              ";\n  v[3u * i + 2u] = " + f.broadcast + ";\n}\n";
      const auto v = run_probe(gl, src, 3 * static_cast<size_t>(local));
      if (v.empty()) {
        ok = false;
        break;
      }
      const uint32_t s = v[0];
      if (s < 4 || s > 128 || (s & (s - 1)) != 0 || (size != 0 && static_cast<int>(s) != size)) {
        ok = false;
        break;
      }
      size = static_cast<int>(s);
      for (uint32_t i = 0; i < static_cast<uint32_t>(local) && ok; ++i) {
        ok = v[3 * i] == s && v[3 * i + 1] == i % s && v[3 * i + 2] == (i / s) * s + 3;
      }
      if (!ok) break;
    }
    if (ok && size > 0) {
      caps->subgroup_size = size;
      caps->subgroup_extension = f.extension;
      return;
    }
  }
}

std::mutex& caps_mutex() {
  static std::mutex m;
  return m;
}
std::map<const GlContext*, std::unique_ptr<GlCaps>>& caps_table() {
  static std::map<const GlContext*, std::unique_ptr<GlCaps>> t;
  return t;
}

}  // namespace

bool has_gl_extension(const GladGLContext& gl, const char* name) {
  GLint n = 0;
  gl.GetIntegerv(GL_NUM_EXTENSIONS, &n);
  for (GLint i = 0; i < n; ++i) {
    const auto* e =
        reinterpret_cast<const char*>(gl.GetStringi(GL_EXTENSIONS, static_cast<GLuint>(i)));
    if (e != nullptr && std::strcmp(e, name) == 0) return true;
  }
  return false;
}

std::optional<int64_t> forced_compute_units() {
  return gpu::env_int("SPARKLE_GL_COMPUTE_UNITS", 1, 1 << 20);
}

GlCaps probe_caps(GlContext& c) {
  const auto& gl = c.gl();
  GlCaps caps;
  if (c.info().software) {
    // llvmpipe runs each work group on one thread of its pool: LP_NUM_THREADS,
    // else one per CPU the process may use.
    const auto lp = gpu::env_int("LP_NUM_THREADS", 0, 1 << 20);
    caps.units.count =
        lp && *lp > 0 ? *lp : static_cast<int64_t>(std::thread::hardware_concurrency());
    caps.units.groups_per_cu = 1;
    caps.units_source = lp ? "LP_NUM_THREADS" : "llvmpipe threads (CPUs)";
  } else {
    probe_nv_thread_group(gl, &caps);
  }
  probe_subgroups(gl, &caps);
  if (has_gl_extension(gl, "GL_KHR_parallel_shader_compile") && gl.MaxShaderCompilerThreadsKHR) {
    gl.MaxShaderCompilerThreadsKHR(0xFFFFFFFFu);  // as many as the driver likes
    caps.parallel_compile = true;
  } else if (has_gl_extension(gl, "GL_ARB_parallel_shader_compile") &&
             gl.MaxShaderCompilerThreadsARB) {
    gl.MaxShaderCompilerThreadsARB(0xFFFFFFFFu);
    caps.parallel_compile = true;
  }
  clear_gl_errors(gl);
  // A bad value was refused at init (check_caps_environment).
  if (const auto forced = forced_compute_units()) {
    caps.units.count = *forced;
    caps.units_source = "SPARKLE_GL_COMPUTE_UNITS";
  }
  if (caps.units.count == 0) caps.units_source = "unknown";
  return caps;
}

const GlCaps& caps_of(GlContext& ctx) {
  {
    std::lock_guard<std::mutex> lock(caps_mutex());
    auto it = caps_table().find(&ctx);
    if (it != caps_table().end()) return *it->second;
  }
  auto caps = std::make_unique<GlCaps>(ctx.call([](GlContext& c) { return probe_caps(c); }));
  std::lock_guard<std::mutex> lock(caps_mutex());
  auto [it, inserted] = caps_table().emplace(&ctx, std::move(caps));
  return *it->second;  // a racing first probe is discarded; both saw the same device
}

void forget_caps() {
  std::lock_guard<std::mutex> lock(caps_mutex());
  caps_table().clear();
}

std::string gl_fingerprint(const GlInfo& info) {
  return gpu::device_fingerprint("gl",
                                 {info.vendor, info.renderer, info.version, info.binary_formats});
}

}  // namespace sparkle::opengl
