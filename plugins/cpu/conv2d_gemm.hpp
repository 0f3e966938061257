// The CPU convolution: per (image, group) an implicit GEMM
//   Y[k, pixels] = W[k, c*r*s] x patches[c*r*s, pixels]
// on NCHW activations and KCRS weights, with no layout change of x, w or y
// and nothing cached between calls (so weights changed in place are always
// seen). A task owns a tile of output channels x output pixels and runs the
// ISA's micro-kernel, which reads the weights in place. Patches come from
//  - packed panels of NR columns, built per task one reduction block at a
//    time (im2col with the padding folded in; a plain copy for 1x1 stride 1),
//    or built once for all tasks when several tasks share a pixel tile;
//  - or, for stride-1 filters larger than 1x1 ("direct"), straight from a
//    zero-padded copy of the input, with no im2col at all.
// Bias and ReLU are applied when the first and last reduction blocks are
// stored.
#pragma once

#include <sparkle/plugin.h>

#include <cstdint>
#include <string>

#include "micro_kernel.hpp"

namespace sparkle::cpu {

struct Tiling {
  int64_t nt = 0;  // output pixels per task (a multiple of NR unless it covers the image)
  int64_t mt = 0;  // output channels per task (a multiple of MR unless it covers the group)
  int64_t kc = 0;  // reduction steps per packed block
  int64_t tasks = 0;
  // Pack all patches once, in parallel, before the tasks run, instead of
  // each task packing its own: chosen when several tasks share a pixel tile
  // (small images split over output channels), so no tile is packed twice.
  bool shared_pack = false;
  int threads = 1;  // the TBB concurrency it was chosen for
};

// Picks tile sizes that balance `threads` workers with little padding.
Tiling choose_tiling(const sparkle_conv2d_desc& d, const KernelSet& ks, int threads);

// Computes the whole convolution on the calling thread's TBB arena.
void conv2d_gemm(const sparkle_conv2d_desc& d, const KernelSet& ks, const Tiling& tiling,
                 const float* x, const float* w, const float* bias, float* y);

}  // namespace sparkle::cpu
