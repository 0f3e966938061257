// Winograd convolution F(m x m, 3 x 3), m = 4 or 2, for 3x3 stride-1
// layers on blocked activations: the input tiles are transformed (B^T d B),
// the alpha^2 = (m+2)^2 element-wise products over channels are 1x1
// convolutions over the tiles, run by the JIT kernels (direct_conv.hpp),
// and the results are transformed back (A^T M A) with the bias and ReLU.
// F(4x4) does 4x fewer multiplications than direct convolution and F(2x2)
// 2.25x fewer; both stay within the conformance bound (tests force each).
#pragma once

#include <sparkle/plugin.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "direct_conv.hpp"
#include "isa.hpp"

namespace sparkle::cpu {

bool winograd_applicable(const sparkle_conv2d_desc& d, Isa isa);

class WinogradConv {
 public:
  WinogradConv(const sparkle_conv2d_desc& d, Isa isa, int m, int threads);

  int m() const { return m_; }
  // Transformed weights G g G^T, packed per alpha^2 position for the GEMMs.
  // Channel blocks per group of the inner GEMM: the packed layout's key.
  int blocking() const;
  size_t packed_floats() const;
  // w: dense KCRS weights.
  void pack(const float* w, float* out) const;
  // x and y nChwVc; bias_padded as DirectConv::padded_bias (or null).
  void run(const float* x, const float* wpacked, const float* bias_padded, float* y) const;

 private:
  sparkle_conv2d_desc d_;
  Isa isa_;
  int v_, m_, alpha_;
  int64_t th_, tw_, tiles_, icb_, kb_;
  std::unique_ptr<DirectConv> gemm_;  // K x C over the tiles, one alpha^2 position
};

}  // namespace sparkle::cpu
