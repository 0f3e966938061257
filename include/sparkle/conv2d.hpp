// Conv2dDesc: the shape of one 2-D convolution, with its validation and
// output-shape math. fp32, NCHW activations, K x (C/groups) x R x S weights.
#pragma once

#include <sparkle/plugin.h>

#include <cstdint>
#include <string>

namespace sparkle {

struct Conv2dDesc {
  int64_t n = 1, c = 1, h = 1, w = 1;  // input
  int64_t k = 1, r = 1, s = 1;         // output channels, filter height and width
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  bool has_bias = false;
  bool relu = false;

  // Throws sparkle::Error(invalid_argument) naming the first bad field:
  // non-positive sizes, negative padding, groups that do not divide C or K,
  // an empty output, or element counts / byte sizes that overflow int64.
  void validate() const;

  // Output size; call validate() first (these do not check).
  int64_t out_h() const;
  int64_t out_w() const;

  int64_t input_elements() const { return n * c * h * w; }
  int64_t weight_elements() const { return k * (c / groups) * r * s; }
  int64_t bias_elements() const { return has_bias ? k : 0; }
  int64_t output_elements() const { return n * k * out_h() * out_w(); }
  // Multiply-adds x 2 (the usual GFLOPS convention).
  double flops() const;

  // "n1c64h56w56_k64r3s3_st1x1_p1.1.1.1_d1x1_g1_b0_r0"
  std::string to_string() const;
  // For the plugin ABI; validate() first.
  sparkle_conv2d_desc to_c() const;
};

}  // namespace sparkle
