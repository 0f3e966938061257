// The CPU convolution: per (image, group) an implicit GEMM
//   Y[k, pixels] = W[k, c*r*s] x patches[c*r*s, pixels]
// computed in output tiles. Each task packs a strip of input patches
// (im2col on the fly, zero padding folded in) and runs a register-blocked
// micro-kernel over it, so every descriptor the API accepts takes the same
// path.
#pragma once

#include <sparkle/plugin.h>

namespace sparkle::cpu {

// Computes the whole convolution on the calling thread's TBB arena.
void conv2d_gemm(const sparkle_conv2d_desc& d, const float* x, const float* w, const float* bias,
                 float* y);

}  // namespace sparkle::cpu
