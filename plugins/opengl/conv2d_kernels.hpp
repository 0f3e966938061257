// Conv2d kernel variants: which ones exist, which one a descriptor gets, and
// their GLSL, generated from the templates in shaders/ with #defines.
#pragma once

#include <sparkle/plugin.h>

#include <cstdint>
#include <optional>
#include <string>

#include "gl_context.hpp"

namespace sparkle::opengl {

// Register-blocked implicit-GEMM tile: a work group computes bm x bn outputs
// (output channels x pixels), stepping the reduction by bk; each invocation
// computes tm x tn of them.
struct TileShape {
  int bm = 128, bn = 128, bk = 8, tm = 8, tn = 8;
};

struct Conv2dKernel {
  std::string name;           // e.g. "gl_tiled_128x128x8_8x8_1x1"
  std::string source;         // complete GLSL
  uint32_t local_size = 0;    // invocations per work group (x only)
  uint64_t total_groups = 0;  // linear work groups to dispatch
  // Split-K: the main kernel writes split_k partial results to a workspace
  // of split_k * y elements, and this second kernel sums them into y.
  int split_k = 1;
  std::string reduce_name;
  std::string reduce_source;
  uint64_t reduce_groups = 0;
};

enum class KernelKind { kAuto, kNaive, kTiled };

// SPARKLE_GL_KERNEL=naive|tiled (unset or "auto": kAuto). Throws
// plugin::Error(SPARKLE_INVALID_ARGUMENT) for anything else.
KernelKind kernel_override();
// SPARKLE_GL_TILE=BMxBNxBK_TMxTN, e.g. "64x128x8_8x8", for tuning by hand.
std::optional<TileShape> tile_override();

// Empty when every coordinate the shaders compute for d fits their 32-bit
// ints, else the field that does not (checked by supports_conv2d, so that
// "auto" picks another device).
std::string index_range_problem(const sparkle_conv2d_desc& d);

// Empty when the shape can run on this device, else why not.
std::string tile_problem(const TileShape& t, const GlInfo& info);

Conv2dKernel make_naive_kernel(const sparkle_conv2d_desc& d, const GlInfo& info);
Conv2dKernel make_tiled_kernel(const sparkle_conv2d_desc& d, const TileShape& t, const GlInfo& info,
                               int split_k = 1);

// How many slices to split the reduction into so that enough work groups
// exist (1 = no split). SPARKLE_GL_SPLIT_K=<n> forces n.
int choose_split_k(const sparkle_conv2d_desc& d, const TileShape& t, const GlInfo& info);

// The tile that should run d fastest on this device, or nullopt when the
// tiled kernel is a poor fit (depthwise-like groups with < 8 outputs).
std::optional<TileShape> choose_tile(const sparkle_conv2d_desc& d, const GlInfo& info);

// Applies the overrides, then choose_tile, else the naive kernel.
Conv2dKernel select_kernel(const sparkle_conv2d_desc& d, const GlInfo& info);

}  // namespace sparkle::opengl
