// conv2d kernels for the AMDGPU backend (fp32, NCHW activations, KCRS
// weights). The host side (plugins/amdgpu/launch.cpp) sets every argument by
// name and the grid; the AMDGPU build and the PoCL tests are both driven by
// that one launch description. Builtins: workitem.h.
#include "workitem.h"

// Output channels per work-item in conv2d_tiled.
#define SPK_TILE_K 8

// One output element per work-item, in NCHW order over the whole output.
// Groups of 64 along x; y and z extend the grid past 2^32 work-items.
__attribute__((reqd_work_group_size(SPK_GROUP_SIZE, 1, 1))) kernel void conv2d_direct(
    global const float* restrict x, global const float* restrict w,
    global const float* restrict bias, global float* restrict y, int n, int c, int h, int iw,
    int k, int r, int s, int out_h, int out_w, int stride_h, int stride_w, int pad_top,
    int pad_left, int dilation_h, int dilation_w, int groups, int has_bias, int relu,
    uint groups_x) {
  const ulong item = ((ulong)SPK_GROUP_ID(y) * groups_x + SPK_GROUP_ID(x)) * SPK_GROUP_SIZE +
                     SPK_LOCAL_ID_X();
  const ulong total = (ulong)n * k * out_h * out_w;
  if (item >= total) return;
  const int q = (int)(item % (ulong)out_w);
  const int p = (int)((item / (ulong)out_w) % (ulong)out_h);
  const int ko = (int)((item / ((ulong)out_w * out_h)) % (ulong)k);
  const int no = (int)(item / ((ulong)out_w * out_h * k));
  const int cg = c / groups, kg = k / groups;
  const int c0 = (ko / kg) * cg;
  float acc = has_bias ? bias[ko] : 0.0f;
  for (int ci = 0; ci < cg; ++ci) {
    global const float* xc = x + ((ulong)no * c + c0 + ci) * h * iw;
    global const float* wc = w + ((ulong)ko * cg + ci) * r * s;
    for (int rr = 0; rr < r; ++rr) {
      const int ih = p * stride_h - pad_top + rr * dilation_h;
      if (ih < 0 || ih >= h) continue;
      for (int ss = 0; ss < s; ++ss) {
        const int ix = q * stride_w - pad_left + ss * dilation_w;
        if (ix < 0 || ix >= iw) continue;
        acc = SPK_FMA(xc[(ulong)ih * iw + ix], wc[rr * s + ss], acc);
      }
    }
  }
  if (relu && acc < 0.0f) acc = 0.0f;
  y[item] = acc;
}

// A tile of SPK_GROUP_SIZE output pixels x SPK_TILE_K output channels of one
// image and one group per work-group: each work-item owns one pixel and
// SPK_TILE_K channels. The weights of the tile's channels are staged through
// local memory SPK_GROUP_SIZE reduction steps at a time, so each is read from
// global memory once per work-group instead of once per pixel.
//   grid x: ceil(out_h * out_w / 64) pixel blocks
//   grid y: groups * ceil((k / groups) / SPK_TILE_K) channel blocks
//   grid z: n
__attribute__((reqd_work_group_size(SPK_GROUP_SIZE, 1, 1))) kernel void conv2d_tiled(
    global const float* restrict x, global const float* restrict w,
    global const float* restrict bias, global float* restrict y, int n, int c, int h, int iw,
    int k, int r, int s, int out_h, int out_w, int stride_h, int stride_w, int pad_top,
    int pad_left, int dilation_h, int dilation_w, int groups, int has_bias, int relu,
    int k_blocks_per_group) {
  local float wtile[SPK_TILE_K][SPK_GROUP_SIZE];
  const int lid = (int)SPK_LOCAL_ID_X();
  const int pixels = out_h * out_w;
  const int pix = (int)SPK_GROUP_ID(x) * SPK_GROUP_SIZE + lid;
  const int kblock = (int)SPK_GROUP_ID(y);
  const int no = (int)SPK_GROUP_ID(z);
  const int cg = c / groups, kg = k / groups;
  const int g = kblock / k_blocks_per_group;
  const int k0 = g * kg + (kblock % k_blocks_per_group) * SPK_TILE_K;  // first channel
  const int k_end = SPK_MIN(k0 + SPK_TILE_K, (g + 1) * kg);                // one past the last
  const int p = pix / out_w, q = pix % out_w;
  const bool active = pix < pixels;
  const int reduction = cg * r * s;
  global const float* xg = x + ((ulong)no * c + (ulong)g * cg) * h * iw;

  float acc[SPK_TILE_K];
  for (int t = 0; t < SPK_TILE_K; ++t) acc[t] = 0.0f;

  for (int e0 = 0; e0 < reduction; e0 += SPK_GROUP_SIZE) {
    // Stage weights [k0, k_end) x [e0, e0 + 64); missing ones are zero.
    const int e = e0 + lid;
    for (int t = 0; t < SPK_TILE_K; ++t) {
      const int kk = k0 + t;
      wtile[t][lid] = (kk < k_end && e < reduction) ? w[(ulong)kk * reduction + e] : 0.0f;
    }
    SPK_LOCAL_BARRIER();
    if (active) {
      const int steps = SPK_MIN(SPK_GROUP_SIZE, reduction - e0);
      for (int j = 0; j < steps; ++j) {
        const int ee = e0 + j;
        const int ci = ee / (r * s);
        const int rs = ee - ci * r * s;
        const int rr = rs / s, ss = rs - rr * s;
        const int ih = p * stride_h - pad_top + rr * dilation_h;
        const int ix = q * stride_w - pad_left + ss * dilation_w;
        if (ih < 0 || ih >= h || ix < 0 || ix >= iw) continue;
        const float xv = xg[((ulong)ci * h + ih) * iw + ix];
        for (int t = 0; t < SPK_TILE_K; ++t) acc[t] = SPK_FMA(xv, wtile[t][j], acc[t]);
      }
    }
    SPK_LOCAL_BARRIER();
  }
  if (!active) return;
  for (int t = 0; t < SPK_TILE_K; ++t) {
    const int kk = k0 + t;
    if (kk >= k_end) break;
    float v = acc[t] + (has_bias ? bias[kk] : 0.0f);
    if (relu && v < 0.0f) v = 0.0f;
    y[(((ulong)no * k + kk) * out_h + p) * out_w + q] = v;
  }
}
