// What the OpenGL backend learns about a device beyond GL's limits: how many
// compute units run its work groups, whether subgroup broadcasts work (and
// how wide a subgroup is), and whether the driver compiles in parallel.
// Everything is read from the device (an extension's built-ins, a probe
// shader's output), or left unknown; nothing is a constant for a GPU model.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "../common/occupancy_model.hpp"
#include "gl_context.hpp"

namespace sparkle::opengl {

struct GlCaps {
  gpu::ComputeUnits units;   // count 0 = unknown
  std::string units_source;  // where units.count came from, for `sparkle-run devices`
  // Subgroup broadcast usable by the generator: lanes of a subgroup are
  // consecutive gl_LocalInvocationIndex values (checked by a probe) and
  // every subgroup has subgroup_size lanes. 0 = not usable.
  int subgroup_size = 0;
  std::string subgroup_extension;  // "GL_KHR_shader_subgroup" or "GL_ARB_shader_ballot"
  bool parallel_compile = false;   // GL_KHR_parallel_shader_compile (or ARB)
};

// GL thread: runs the probes on the current context. Never throws; what a
// probe cannot tell stays unknown. SPARKLE_GL_COMPUTE_UNITS overrides the
// unit count (for GPUs without a way to read it, and for tests).
GlCaps probe_caps(GlContext& c);

// SPARKLE_GL_COMPUTE_UNITS, or nullopt when unset; throws plugin::Error
// naming it when it is not an integer in [1, 2^20].
std::optional<int64_t> forced_compute_units();

// Any thread: the caps of ctx, probed once (through its GL thread).
const GlCaps& caps_of(GlContext& ctx);
// Forgets every context's caps (the backend shuts down).
void forget_caps();

// The device fingerprint used for the device list, the program cache, the
// selector and the tuner (see plugins/common/fingerprint.hpp).
std::string gl_fingerprint(const GlInfo& info);

// True if the context lists the extension (glGetStringi). GL thread.
bool has_gl_extension(const GladGLContext& gl, const char* name);

}  // namespace sparkle::opengl
