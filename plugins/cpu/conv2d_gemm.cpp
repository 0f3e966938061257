// Implicit-GEMM convolution with on-the-fly patch packing. The micro-kernel
// is written with fixed trip counts so that the compiler keeps the MR x NR
// accumulators in vector registers; target_clones builds an AVX2+FMA copy
// next to the portable one and picks at load time.
#include "conv2d_gemm.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sparkle::cpu {
namespace {

constexpr int64_t kNR = 16;      // columns (output pixels) per micro-tile
constexpr int64_t kMR = 4;       // rows (output channels) per micro-tile
constexpr int64_t kTileN = 128;  // pixels per task
constexpr int64_t kTileK = 64;   // output channels per task
constexpr int64_t kBlockC = 256; // reduction elements packed at once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define SPARKLE_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SPARKLE_CLONES
#endif

// acc[m][0..16) += w[m][j] * panel[j][0..16) for j < kc, then added to (or
// stored into) y rows. Panel rows have stride ldp and are zero-padded to 16.
template <int MR>
SPARKLE_CLONES void micro_kernel(const float* const* wrows, int64_t kc, const float* panel,
                                 int64_t ldp, float* const* yrows, int64_t ncols) {
  float acc[MR][kNR] = {};
  for (int64_t j = 0; j < kc; ++j) {
    const float* b = panel + j * ldp;
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) {
      const float a = wrows[m][j];
#pragma GCC unroll 16
      for (int64_t c = 0; c < kNR; ++c) acc[m][c] += a * b[c];
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int64_t c = 0; c < ncols; ++c) yrows[m][c] += acc[m][c];
}

struct Geometry {
  int64_t P, Q, PQ, cg, kg, crs;
};

// Packs patches[j0..j1) x pixels[p0..p0+np) into panel (stride ldp).
void pack_panel(const sparkle_conv2d_desc& d, const Geometry& g, const float* xg, int64_t j0,
                int64_t j1, int64_t p0, int64_t np, float* panel, int64_t ldp) {
  const int64_t rs = d.r * d.s;
  const bool pointwise = d.r == 1 && d.s == 1 && d.stride_h == 1 && d.stride_w == 1 &&
                         d.pad_top == 0 && d.pad_left == 0 && d.pad_bottom == 0 &&
                         d.pad_right == 0;
  for (int64_t j = j0; j < j1; ++j) {
    float* row = panel + (j - j0) * ldp;
    const int64_t ci = j / rs, r = (j / d.s) % d.r, s = j % d.s;
    const float* xc = xg + ci * d.h * d.w;
    if (pointwise) {
      std::copy(xc + p0, xc + p0 + np, row);
    } else {
      int64_t oh = p0 / g.Q, ow = p0 % g.Q;
      for (int64_t i = 0; i < np; ++i) {
        const int64_t ih = oh * d.stride_h - d.pad_top + r * d.dilation_h;
        const int64_t iw = ow * d.stride_w - d.pad_left + s * d.dilation_w;
        row[i] = (ih >= 0 && ih < d.h && iw >= 0 && iw < d.w) ? xc[ih * d.w + iw] : 0.0f;
        if (++ow == g.Q) {
          ow = 0;
          ++oh;
        }
      }
    }
    std::fill(row + np, row + ldp, 0.0f);
  }
}

void run_tile(const sparkle_conv2d_desc& d, const Geometry& g, const float* x, const float* w,
              const float* bias, float* y, int64_t n, int64_t grp, int64_t k0, int64_t nk,
              int64_t p0, int64_t np) {
  thread_local std::vector<float> panel;
  const int64_t ldp = (np + kNR - 1) / kNR * kNR;
  panel.resize(static_cast<size_t>(kBlockC * ldp));
  const float* xg = x + (n * d.c + grp * g.cg) * d.h * d.w;
  // Rows of y and w for this task's output channels.
  auto yrow = [&](int64_t k) { return y + ((n * d.k + k) * g.PQ) + p0; };
  auto wrow = [&](int64_t k) { return w + k * g.crs; };

  for (int64_t k = k0; k < k0 + nk; ++k) std::fill(yrow(k), yrow(k) + np, bias ? bias[k] : 0.f);

  for (int64_t j0 = 0; j0 < g.crs; j0 += kBlockC) {
    const int64_t kc = std::min(kBlockC, g.crs - j0);
    pack_panel(d, g, xg, j0, j0 + kc, p0, np, panel.data(), ldp);
    for (int64_t c0 = 0; c0 < np; c0 += kNR) {
      const int64_t nc = std::min(kNR, np - c0);
      int64_t k = k0;
      for (; k + kMR <= k0 + nk; k += kMR) {
        const float* wr[kMR];
        float* yr[kMR];
        for (int m = 0; m < kMR; ++m) {
          wr[m] = wrow(k + m) + j0;
          yr[m] = yrow(k + m) + c0;
        }
        micro_kernel<kMR>(wr, kc, panel.data() + c0, ldp, yr, nc);
      }
      for (; k < k0 + nk; ++k) {
        const float* wr[1] = {wrow(k) + j0};
        float* yr[1] = {yrow(k) + c0};
        micro_kernel<1>(wr, kc, panel.data() + c0, ldp, yr, nc);
      }
    }
  }
  if (d.relu)
    for (int64_t k = k0; k < k0 + nk; ++k)
      for (float* v = yrow(k); v != yrow(k) + np; ++v) *v = std::max(*v, 0.0f);
}

}  // namespace

void conv2d_gemm(const sparkle_conv2d_desc& d, const float* x, const float* w, const float* bias,
                 float* y) {
  Geometry g{};
  g.P = d.out_h;
  g.Q = d.out_w;
  g.PQ = g.P * g.Q;
  g.cg = d.c / d.groups;
  g.kg = d.k / d.groups;
  g.crs = g.cg * d.r * d.s;
  const int64_t tiles_n = (g.PQ + kTileN - 1) / kTileN;
  const int64_t tiles_k = (g.kg + kTileK - 1) / kTileK;
  const int64_t tasks = d.n * d.groups * tiles_k * tiles_n;
  const float* b = d.has_bias ? bias : nullptr;
  tbb::parallel_for(int64_t{0}, tasks, [&](int64_t t) {
    const int64_t tn = t % tiles_n;
    const int64_t tk = (t / tiles_n) % tiles_k;
    const int64_t grp = (t / (tiles_n * tiles_k)) % d.groups;
    const int64_t n = t / (tiles_n * tiles_k * d.groups);
    const int64_t k0 = grp * g.kg + tk * kTileK;
    const int64_t nk = std::min(kTileK, g.kg - tk * kTileK);
    const int64_t p0 = tn * kTileN;
    const int64_t np = std::min(kTileN, g.PQ - p0);
    run_tile(d, g, x, w, b, y, n, grp, k0, nk, p0, np);
  });
}

}  // namespace sparkle::cpu
