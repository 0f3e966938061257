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

constexpr int64_t kNR = 16;       // columns (output pixels) per micro-tile: two 8-wide vectors
constexpr int64_t kMR = 6;        // rows (output channels) per micro-tile: 12 accumulators
constexpr int64_t kTileN = 128;   // pixels per task
constexpr int64_t kTileK = 96;    // output channels per task (a multiple of kMR)
constexpr int64_t kBlockC = 256;  // reduction elements packed at once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define SPARKLE_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SPARKLE_CLONES
#endif

// 8 floats; GCC lowers it to one AVX register or two SSE ones.
typedef float v8 __attribute__((vector_size(32)));

// C[m][0..nc) += sum_j A[j][m] * B[j][0..16) for m < mr.
// A is packed [kc][kMR] (zero rows past mr), B rows have stride ldp and are
// zero-padded to 16 columns, so the loop has no edge cases.
SPARKLE_CLONES void micro_kernel(const float* a, const float* b, int64_t ldp, int64_t kc,
                                 float* const* c, int64_t mr, int64_t nc) {
  v8 acc[kMR][2] = {};
  for (int64_t j = 0; j < kc; ++j) {
    v8 b0, b1;  // unaligned loads
    __builtin_memcpy(&b0, b + j * ldp, sizeof b0);
    __builtin_memcpy(&b1, b + j * ldp + 8, sizeof b1);
    const float* aj = a + j * kMR;
#pragma GCC unroll 6
    for (int m = 0; m < kMR; ++m) {
      acc[m][0] += b0 * aj[m];
      acc[m][1] += b1 * aj[m];
    }
  }
  for (int64_t m = 0; m < mr; ++m) {
    float out[kNR];
    __builtin_memcpy(out, acc[m], sizeof out);
    for (int64_t col = 0; col < nc; ++col) c[m][col] += out[col];
  }
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
      // One output row at a time: ih is fixed, and the input columns that
      // fall inside the image form one range, so only the edges need zeros.
      const int64_t off = s * d.dilation_w - d.pad_left;
      int64_t oh = p0 / g.Q, ow = p0 % g.Q;
      for (int64_t i = 0; i < np; ++oh, ow = 0) {
        const int64_t seg = std::min(g.Q - ow, np - i);
        float* dst = row + i;
        const int64_t ih = oh * d.stride_h - d.pad_top + r * d.dilation_h;
        if (ih < 0 || ih >= d.h) {
          std::fill(dst, dst + seg, 0.0f);
        } else {
          // t in [lo, hi) has 0 <= (ow + t) * stride_w + off < w.
          const int64_t sw = d.stride_w;
          const int64_t first = std::max<int64_t>(0, (-off + sw - 1) / sw);  // smallest valid ow
          const int64_t last = (d.w - 1 - off) >= 0 ? (d.w - 1 - off) / sw + 1 : 0;  // past end
          const int64_t lo = std::clamp(first - ow, int64_t{0}, seg);
          const int64_t hi = std::clamp(last - ow, lo, seg);
          const float* src = xc + ih * d.w + (ow + lo) * sw + off;
          std::fill(dst, dst + lo, 0.0f);
          if (sw == 1) {
            std::copy(src, src + (hi - lo), dst + lo);
          } else {
            for (int64_t t = lo; t < hi; ++t) dst[t] = src[(t - lo) * sw];
          }
          std::fill(dst + hi, dst + seg, 0.0f);
        }
        i += seg;
      }
    }
    std::fill(row + np, row + ldp, 0.0f);
  }
}

void run_tile(const sparkle_conv2d_desc& d, const Geometry& g, const float* x, const float* w,
              const float* bias, float* y, int64_t n, int64_t grp, int64_t k0, int64_t nk,
              int64_t p0, int64_t np) {
  thread_local std::vector<float> panel, packed_w;
  const int64_t ldp = (np + kNR - 1) / kNR * kNR;
  const int64_t row_blocks = (nk + kMR - 1) / kMR;
  panel.resize(static_cast<size_t>(kBlockC * ldp));
  packed_w.resize(static_cast<size_t>(row_blocks * kBlockC * kMR));
  const float* xg = x + (n * d.c + grp * g.cg) * d.h * d.w;
  auto yrow = [&](int64_t k) { return y + ((n * d.k + k) * g.PQ) + p0; };

  for (int64_t k = k0; k < k0 + nk; ++k) std::fill(yrow(k), yrow(k) + np, bias ? bias[k] : 0.f);

  for (int64_t j0 = 0; j0 < g.crs; j0 += kBlockC) {
    const int64_t kc = std::min(kBlockC, g.crs - j0);
    pack_panel(d, g, xg, j0, j0 + kc, p0, np, panel.data(), ldp);
    // Weights of this block as [row block][j][kMR], zero past the last row.
    for (int64_t rb = 0; rb < row_blocks; ++rb) {
      float* dst = packed_w.data() + rb * kBlockC * kMR;
      for (int64_t m = 0; m < kMR; ++m) {
        const int64_t k = k0 + rb * kMR + m;
        const float* src = w + k * g.crs + j0;
        for (int64_t j = 0; j < kc; ++j) dst[j * kMR + m] = k < k0 + nk ? src[j] : 0.0f;
      }
    }
    for (int64_t rb = 0; rb < row_blocks; ++rb) {
      const int64_t mr = std::min(kMR, nk - rb * kMR);
      const float* a = packed_w.data() + rb * kBlockC * kMR;
      for (int64_t c0 = 0; c0 < np; c0 += kNR) {
        float* rows[kMR];
        for (int64_t m = 0; m < kMR; ++m) rows[m] = yrow(k0 + rb * kMR + std::min(m, mr - 1)) + c0;
        micro_kernel(a, panel.data() + c0, ldp, kc, rows, mr, std::min(kNR, np - c0));
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
