// The CPU convolution: per (image, group) an implicit GEMM
//   Y[k, pixels] = W[k, c*r*s] x patches[c*r*s, pixels]
// on NCHW activations and KCRS weights, with no layout change of x or y. A
// task owns a tile of output channels x output pixels and runs the ISA's
// micro-kernel. Weights are read in place (KCRS rows), or from a copy the
// plan packed once (MR channels interleaved per reduction step) when the
// caller promised constant weights. Patches come from
//  - packed panels of NR columns, built per task one reduction block at a
//    time (im2col with the padding folded in; a plain copy for 1x1 stride 1),
//    or built once for all tasks when several tasks share a pixel tile;
//  - or ("direct") straight from a zero-padded copy of the input split into
//    stride phase planes, with no im2col at all (stride-1 filters larger
//    than 1x1, and conv1-like strided ones);
// and with images whose pixels do not fill whole panels (7x7, 14x14) the
// batch is folded into the columns, one GEMM over all images' pixels.
// Optionally (SPARKLE_CPU_VECTORIZE=channels) the GEMM is transposed:
// vectors along output channels, pixels broadcast.
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
  // Channel-vectorised: nt counts pixels in micro-tiles of MR and mt
  // channels in micro-tiles of NR (the KernelSet's trans kernels); needs
  // weights pre-packed with kvec = true.
  bool kvec = false;
  // Patches read in place from phase planes of the padded input (no
  // im2col); see geometry() in conv2d_gemm.cpp.
  bool direct = false;
};

// Picks tile sizes that balance `threads` workers with little padding.
// The GEMM's vector direction: along output pixels (weights read in place
// or MR-packed), or along output channels (needs weights packed by
// pack_weights with kvec). Channels avoid the pixel padding of small images
// (49 pixels fill 49 of 64 columns) but were slower in paired runs on the
// 2-core AVX2 machine, so they are only used when SPARKLE_CPU_VECTORIZE
// forces them.
enum class Orientation { pixels, channels };

Tiling choose_tiling(const sparkle_conv2d_desc& d, const KernelSet& ks, int threads,
                     Orientation orientation = Orientation::pixels);

// Pre-packed weights: per group, per block of MR output channels, the
// reduction steps in order with the MR channels' values side by side (rows
// past the group's end are zero).
// With kvec (for Tiling::kvec) the blocks are NR channels instead of MR.
size_t packed_weight_floats(const sparkle_conv2d_desc& d, const KernelSet& ks, bool kvec);
void pack_weights(const sparkle_conv2d_desc& d, const KernelSet& ks, bool kvec, const float* w,
                  float* out);

// Computes the whole convolution on the calling thread's TBB arena. With
// wpacked (from pack_weights) the micro-kernels read it instead of w.
void conv2d_gemm(const sparkle_conv2d_desc& d, const KernelSet& ks, const Tiling& tiling,
                 const float* x, const float* w, const float* wpacked, const float* bias, float* y);

}  // namespace sparkle::cpu
