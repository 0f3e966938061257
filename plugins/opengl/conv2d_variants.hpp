// The kernel variants the OpenGL backend offers for a descriptor: the
// space a tuner searches (through the plugin ABI's variant members), and
// the model's first guess among them (what plan_conv2d picks when nothing
// was measured). The list is a function of the descriptor, the device and
// the plugin build, so a variant name a tuner recorded means the same
// kernel in a later process. SPARKLE_GL_KERNEL / _TILE / _SPLIT_K restrict
// it (docs/OPENGL.md).
#pragma once

#include <sparkle/plugin.h>

#include <sparkle/plugin.hpp>
#include <vector>

#include "conv2d_kernels.hpp"
#include "gl_caps.hpp"

namespace sparkle::opengl {

struct Variant {
  KernelConfig config;
  plugin::VariantInfo info;  // info.is_default marks the first guess
};

// Every variant for d on this device, in a deterministic order, with the
// environment's restrictions applied. Never empty: when the restrictions
// leave nothing (a forced tile outside the list), the forced config itself
// is the only entry. Throws plugin::Error(SPARKLE_INVALID_ARGUMENT) for a
// malformed variable and SPARKLE_UNSUPPORTED for a forced config that
// cannot run here.
std::vector<Variant> list_variants(const sparkle_conv2d_desc& d, const GlInfo& info,
                                   const GlCaps& caps);

// The block tiles the generator offers (before per-layer filtering).
const std::vector<TileShape>& candidate_tiles();

// True when SPARKLE_GL_KERNEL, SPARKLE_GL_TILE or SPARKLE_GL_SPLIT_K force
// a choice (a compile failure then is an error, not a fallback).
bool kernel_forced();

// Throws plugin::Error naming the variable for a bad SPARKLE_GL_KERNEL,
// SPARKLE_GL_TILE or SPARKLE_GL_SPLIT_K (called at init).
void check_variant_environment();

}  // namespace sparkle::opengl
