// The OpenGL conv2d kernel generator: a KernelConfig (algorithm and its
// parameters) plus a descriptor and the device's limits become the GLSL of
// every pass of one call, generated from the templates in shaders/ with
// #defines. Which configs exist for a descriptor, and which one is the
// first guess, is conv2d_variants.hpp's business.
#pragma once

#include <sparkle/plugin.h>

#include <cstdint>
#include <sparkle/plugin.hpp>
#include <string>
#include <vector>

#include "gl_caps.hpp"
#include "gl_context.hpp"

namespace sparkle::opengl {

// Implicit-GEMM block tile: a work group computes bm x bn outputs (output
// channels x pixels), stepping the reduction by bk; each invocation
// computes tm x tn of them.
struct TileShape {
  int bm = 128, bn = 128, bk = 8, tm = 8, tn = 8;
};

enum class Algo { kNaive, kGemm, kWinograd };

struct KernelConfig {
  Algo algo = Algo::kNaive;
  int wino_m = 0;  // Winograd output tile: 2 (F(2x2,3x3)) or 4 (F(4x4,3x3))
  // The GEMM: the whole convolution (kGemm) or Winograd's batched GEMM.
  TileShape tile{};
  int split_k = 1;          // > 1: the reduction runs in that many slices plus a sum pass
  bool m_fastest = false;   // consecutive work groups share B tiles instead of A tiles
  bool subgroup_a = false;  // A in registers, shared through subgroup shuffles
};

// What a pass binds at each of its four buffer binding points.
enum class Slot : uint8_t { kNone, kX, kW, kBias, kY, kWs0, kWs1, kWs2, kWs3 };

struct Pass {
  std::string name;     // program name: kernel cache key and error messages
  std::string source;   // complete GLSL
  uint64_t groups = 0;  // linear work groups (the dispatcher tiles the grid)
  Slot bind[4] = {Slot::kNone, Slot::kNone, Slot::kNone, Slot::kNone};
};

// Every pass of one call, in order, and the workspaces they share.
struct ConvKernel {
  std::string name;  // the variant's name (plan_kernel_name)
  std::vector<Pass> passes;
  std::vector<uint64_t> workspace_bytes;  // kWs0, kWs1, ...
};

// Empty when every coordinate the shaders compute for d fits their 32-bit
// ints, else the field that does not (checked by supports_conv2d, so that
// "auto" picks another device).
std::string index_range_problem(const sparkle_conv2d_desc& d);

// Empty when config can run d on this device, else why not (shared memory,
// invocation limits, loader constraints, subgroups, 32-bit indexing).
std::string config_problem(const sparkle_conv2d_desc& d, const KernelConfig& config,
                           const GlInfo& info, const GlCaps& caps);

// The variant name, e.g. "gl_tiled_128x64x8_8x8_1x1_v4_sk4" or
// "gl_wino4_64x64x8_8x8_mo". Unique per config for a given descriptor.
std::string kernel_name(const sparkle_conv2d_desc& d, const KernelConfig& config);

// The passes of config for d. Throws plugin::Error(SPARKLE_UNSUPPORTED)
// with config_problem's reason when it cannot run here.
ConvKernel generate_kernel(const sparkle_conv2d_desc& d, const KernelConfig& config,
                           const GlInfo& info, const GlCaps& caps);

// What the occupancy model needs to know of config (see
// plugins/common/occupancy_model.hpp): grid, group size, shared memory,
// registers, arithmetic, traffic and a guess of its efficiency.
plugin::VariantInfo describe_kernel(const sparkle_conv2d_desc& d, const KernelConfig& config,
                                    const GlInfo& info, const GlCaps& caps);

// 3x3, stride 1, dilation 1, one group: the layers Winograd serves.
bool winograd_applies(const sparkle_conv2d_desc& d);
// The batched GEMM of Winograd F(m x m, 3x3) for d, as a grouped 1x1
// convolution (one group per transform point): n 1, c alpha^2 C, h 1,
// w P_PAD (tiles, rounded up to 4), k alpha^2 K, groups alpha^2.
sparkle_conv2d_desc winograd_gemm_desc(const sparkle_conv2d_desc& d, int m);

// Largest element count a tensor or workspace may have: indices are 32-bit
// in GLSL, with a margin for the out-of-range indices tile edges compute
// (and never dereference).
constexpr int64_t kMaxIndexElements = (int64_t{1} << 31) - (int64_t{1} << 20);

}  // namespace sparkle::opengl
