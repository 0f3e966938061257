// Winograd F(4x4,3x3) and F(2x2,3x3) on blocked activations (see
// winograd.hpp). The transforms are vector code per ISA (GCC target
// attributes, as in micro_kernel.cpp); the GEMMs are the JIT kernels.
#include "winograd.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <sparkle/plugin.hpp>

#include "scratch.hpp"

namespace sparkle::cpu {

namespace {

#if defined(__GNUC__) && !defined(__clang__)
#define SPARKLE_WINO_INLINE __attribute__((always_inline)) inline
#else
#define SPARKLE_WINO_INLINE inline
#endif

typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));
typedef int i8v __attribute__((vector_size(32)));
typedef int i16v __attribute__((vector_size(64)));

// Lavin and Gray's matrices (points 0, +-1, +-2, infinity for m = 4).
constexpr float kBT4[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                              {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
constexpr float kG4[6][3] = {{1.0f / 4, 0, 0},
                             {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                             {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                             {1.0f / 24, 1.0f / 12, 1.0f / 6},
                             {1.0f / 24, -1.0f / 12, 1.0f / 6},
                             {0, 0, 1}};
constexpr float kAT4[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
constexpr float kBT2[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
constexpr float kG2[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
constexpr float kAT2[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};

template <int M>
struct Mats;
template <>
struct Mats<4> {
  static constexpr int A = 6;
  static constexpr const float (&BT)[6][6] = kBT4;
  static constexpr const float (&G)[6][3] = kG4;
  static constexpr const float (&AT)[4][6] = kAT4;
};
template <>
struct Mats<2> {
  static constexpr int A = 4;
  static constexpr const float (&BT)[4][4] = kBT2;
  static constexpr const float (&G)[4][3] = kG2;
  static constexpr const float (&AT)[2][4] = kAT2;
};

struct Geometry {
  int64_t h, w, th, tw, tiles, icb, kb, oh, ow, k;
  int v;
  int64_t pad_top, pad_left;
};

// Input transform of every tile of (image n, tile row ty, channel block b):
// V[xi][b][tile][:] = (B^T d B)[xi] with d the zero-padded alpha x alpha
// input patch at (ty * M - pad_top, tx * M - pad_left).
template <class VT, int M>
SPARKLE_WINO_INLINE void input_row(const Geometry& g, const float* x, float* vbuf, int64_t n,
                                   int64_t ty, int64_t b) {
  using Mt = Mats<M>;
  constexpr int A = Mt::A;
  constexpr int L = sizeof(VT) / sizeof(float);
  const float* xb = x + ((n * g.icb + b) * g.h) * g.w * L;
  const int64_t plane = g.icb * g.tiles * L;  // floats per alpha^2 position
  for (int64_t tx = 0; tx < g.tw; ++tx) {
    VT d[A][A];
    const int64_t y0 = ty * M - g.pad_top, x0 = tx * M - g.pad_left;
    for (int i = 0; i < A; ++i)
      for (int j = 0; j < A; ++j) {
        const int64_t yy = y0 + i, xx = x0 + j;
        if (yy >= 0 && yy < g.h && xx >= 0 && xx < g.w) {
          std::memcpy(&d[i][j], xb + (yy * g.w + xx) * L, sizeof(VT));
        } else {
          d[i][j] = VT{} + 0.0f;
        }
      }
    VT t[A][A];
    for (int i = 0; i < A; ++i)
      for (int j = 0; j < A; ++j) {
        VT s = VT{} + 0.0f;
        for (int k = 0; k < A; ++k)
          if (Mt::BT[i][k] != 0.0f) s += Mt::BT[i][k] * d[k][j];
        t[i][j] = s;
      }
    const int64_t tile = (n * g.th + ty) * g.tw + tx;
    float* out = vbuf + (b * g.tiles + tile) * L;
    for (int i = 0; i < A; ++i)
      for (int j = 0; j < A; ++j) {
        VT s = VT{} + 0.0f;
        for (int k = 0; k < A; ++k)
          if (Mt::BT[j][k] != 0.0f) s += Mt::BT[j][k] * t[i][k];
        std::memcpy(out + (i * A + j) * plane, &s, sizeof(VT));
      }
  }
}

// Output transform of every tile of (n, ty, output block b), with the bias,
// ReLU and zeroed padding lanes.
template <class VT, class IV, int M>
SPARKLE_WINO_INLINE void output_row(const Geometry& g, const float* mbuf, const float* bias,
                                    bool relu, float* y, int64_t n, int64_t ty, int64_t b) {
  using Mt = Mats<M>;
  constexpr int A = Mt::A;
  constexpr int L = sizeof(VT) / sizeof(float);
  const int64_t plane = g.kb * g.tiles * L;
  VT bv = VT{} + 0.0f;
  if (bias != nullptr) std::memcpy(&bv, bias + b * L, sizeof(VT));
  IV keep;
  for (int l = 0; l < L; ++l) keep[l] = b * L + l < g.k ? -1 : 0;
  float* yb = y + ((n * g.kb + b) * g.oh) * g.ow * L;
  for (int64_t tx = 0; tx < g.tw; ++tx) {
    const int64_t tile = (n * g.th + ty) * g.tw + tx;
    const float* in = mbuf + (b * g.tiles + tile) * L;
    VT mv[A][A];
    for (int i = 0; i < A; ++i)
      for (int j = 0; j < A; ++j) std::memcpy(&mv[i][j], in + (i * A + j) * plane, sizeof(VT));
    VT t[M][A];
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < A; ++j) {
        VT s = VT{} + 0.0f;
        for (int k = 0; k < A; ++k)
          if (Mt::AT[i][k] != 0.0f) s += Mt::AT[i][k] * mv[k][j];
        t[i][j] = s;
      }
    for (int i = 0; i < M; ++i) {
      const int64_t yy = ty * M + i;
      if (yy >= g.oh) break;
      for (int j = 0; j < M; ++j) {
        const int64_t xx = tx * M + j;
        if (xx >= g.ow) break;
        VT s = bv;
        for (int k = 0; k < A; ++k)
          if (Mt::AT[j][k] != 0.0f) s += Mt::AT[j][k] * t[i][k];
        if (relu) s = s > 0.0f ? s : VT{} + 0.0f;
        IV bits;
        std::memcpy(&bits, &s, sizeof(VT));
        bits &= keep;
        std::memcpy(yb + (yy * g.ow + xx) * L, &bits, sizeof(VT));
      }
    }
  }
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define SPARKLE_WINO_AVX2 __attribute__((target("avx2,fma")))
#define SPARKLE_WINO_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define SPARKLE_WINO_AVX2
#define SPARKLE_WINO_AVX512
#endif

template <int M>
SPARKLE_WINO_AVX2 void input_avx2(const Geometry& g, const float* x, float* v, int64_t n,
                                  int64_t ty, int64_t b) {
  input_row<v8, M>(g, x, v, n, ty, b);
}
template <int M>
SPARKLE_WINO_AVX512 void input_avx512(const Geometry& g, const float* x, float* v, int64_t n,
                                      int64_t ty, int64_t b) {
  input_row<v16, M>(g, x, v, n, ty, b);
}
template <int M>
SPARKLE_WINO_AVX2 void output_avx2(const Geometry& g, const float* mb, const float* bias, bool relu,
                                   float* y, int64_t n, int64_t ty, int64_t b) {
  output_row<v8, i8v, M>(g, mb, bias, relu, y, n, ty, b);
}
template <int M>
SPARKLE_WINO_AVX512 void output_avx512(const Geometry& g, const float* mb, const float* bias,
                                       bool relu, float* y, int64_t n, int64_t ty, int64_t b) {
  output_row<v16, i16v, M>(g, mb, bias, relu, y, n, ty, b);
}

// The transformed tiles and products: scratch that each calling thread
// reuses across calls (ScratchBuffer), grown to the largest layer.
float* scratch(std::vector<float>& v, size_t floats) {
  if (v.size() < floats) v.resize(floats);
  return v.data();
}

// The batched GEMM of the transformed tiles: one "image" of 1 x tiles
// pixels, C in and K out, 1x1.
sparkle_conv2d_desc tile_gemm_desc(const sparkle_conv2d_desc& d, int m) {
  sparkle_conv2d_desc g{};
  g.struct_size = sizeof g;
  g.n = 1;
  g.c = d.c;
  g.h = 1;
  g.w = d.n * ((d.out_h + m - 1) / m) * ((d.out_w + m - 1) / m);
  g.k = d.k;
  g.r = g.s = 1;
  g.stride_h = g.stride_w = g.dilation_h = g.dilation_w = g.groups = 1;
  g.out_h = 1;
  g.out_w = g.w;
  return g;
}

}  // namespace

bool winograd_applicable(const sparkle_conv2d_desc& d, Isa isa) {
  // F(2x2) has the most tiles: its GEMM must suit the JIT (offsets in 32
  // bits), or a huge layer would fail where the GEMM computes it.
  return jit_vector_lanes(isa) > 0 && d.groups == 1 && d.r == 3 && d.s == 3 && d.stride_h == 1 &&
         d.stride_w == 1 && d.dilation_h == 1 && d.dilation_w == 1 &&
         direct_applicable(tile_gemm_desc(d, 2), isa);
}

WinogradConv::WinogradConv(const sparkle_conv2d_desc& d, Isa isa, int m, int threads)
    : d_(d), isa_(isa), v_(jit_vector_lanes(isa)), m_(m), alpha_(m + 2) {
  if (!winograd_applicable(d, isa) || (m != 2 && m != 4))
    throw plugin::Error(SPARKLE_INTERNAL, "Winograd planned where it does not apply");
  th_ = (d.out_h + m - 1) / m;
  tw_ = (d.out_w + m - 1) / m;
  tiles_ = d.n * th_ * tw_;
  icb_ = (d.c + v_ - 1) / v_;
  kb_ = (d.k + v_ - 1) / v_;
  const sparkle_conv2d_desc g = tile_gemm_desc(d, m);
  // The alpha^2 GEMMs share one parallel loop: the blocking sees them all.
  gemm_ = std::make_unique<DirectConv>(g, isa, false, std::max(1, threads / (alpha_ * alpha_)));
}

int WinogradConv::blocking() const { return gemm_->nb_oc(); }

size_t WinogradConv::packed_floats() const {
  return static_cast<size_t>(alpha_ * alpha_) * gemm_->packed_floats();
}

void WinogradConv::pack(const float* w, float* out) const {
  const int a = alpha_;
  const int64_t kc = d_.k * d_.c;
  std::vector<float> u(static_cast<size_t>(a * a * kc));
  tbb::parallel_for(int64_t{0}, kc, [&](int64_t idx) {
    const float* g = w + idx * 9;
    const float* gm = m_ == 4 ? &kG4[0][0] : &kG2[0][0];
    // t = G g (a x 3), then u = t G^T (a x a), in double: the transform
    // itself adds no rounding beyond one final cast.
    double t[6][3];
    for (int i = 0; i < a; ++i)
      for (int j = 0; j < 3; ++j) {
        double s = 0;
        for (int k = 0; k < 3; ++k) s += static_cast<double>(gm[i * 3 + k]) * g[k * 3 + j];
        t[i][j] = s;
      }
    for (int i = 0; i < a; ++i)
      for (int j = 0; j < a; ++j) {
        double s = 0;
        for (int k = 0; k < 3; ++k) s += t[i][k] * gm[j * 3 + k];
        u[static_cast<size_t>((i * a + j) * kc + idx)] = static_cast<float>(s);
      }
  });
  const size_t per = gemm_->packed_floats();
  for (int p = 0; p < a * a; ++p) {
    const float* up = u.data() + static_cast<size_t>(p) * static_cast<size_t>(kc);
    gemm_->pack([&](int64_t k, int64_t c, int64_t, int64_t) { return up[k * d_.c + c]; },
                out + static_cast<size_t>(p) * per);
  }
}

void WinogradConv::run(const float* x, const float* wpacked, const float* bias_padded,
                       float* y) const {
  const int a2 = alpha_ * alpha_;
  Geometry g{d_.h,     d_.w,     th_,  tw_, tiles_,     icb_,       kb_,
             d_.out_h, d_.out_w, d_.k, v_,  d_.pad_top, d_.pad_left};
  ScratchBuffer<float, 20> vlease;
  ScratchBuffer<float, 21> mlease;
  float* vbuf = scratch(vlease.get(), static_cast<size_t>(a2 * icb_ * tiles_ * v_));
  float* mbuf = scratch(mlease.get(), static_cast<size_t>(a2 * kb_ * tiles_ * v_));
  const bool avx512 = isa_ == Isa::avx512;
  const bool four = m_ == 4;
  tbb::parallel_for(int64_t{0}, d_.n * th_ * icb_, [&](int64_t job) {
    const int64_t b = job % icb_, ty = (job / icb_) % th_, n = job / (icb_ * th_);
    if (avx512) {
      four ? input_avx512<4>(g, x, vbuf, n, ty, b) : input_avx512<2>(g, x, vbuf, n, ty, b);
    } else {
      four ? input_avx2<4>(g, x, vbuf, n, ty, b) : input_avx2<2>(g, x, vbuf, n, ty, b);
    }
  });
  const int64_t items = gemm_->items();
  const size_t wper = gemm_->packed_floats();
  const int64_t vplane = icb_ * tiles_ * v_, mplane = kb_ * tiles_ * v_;
  tbb::parallel_for(int64_t{0}, a2 * items, [&](int64_t job) {
    const int64_t p = job / items;
    gemm_->run_item(job % items, vbuf + p * vplane, wpacked + static_cast<size_t>(p) * wper,
                    nullptr, mbuf + p * mplane);
  });
  const bool relu = d_.relu != 0;
  const float* bias = d_.has_bias ? bias_padded : nullptr;
  tbb::parallel_for(int64_t{0}, d_.n * th_ * kb_, [&](int64_t job) {
    const int64_t b = job % kb_, ty = (job / kb_) % th_, n = job / (kb_ * th_);
    if (avx512) {
      four ? output_avx512<4>(g, mbuf, bias, relu, y, n, ty, b)
           : output_avx512<2>(g, mbuf, bias, relu, y, n, ty, b);
    } else {
      four ? output_avx2<4>(g, mbuf, bias, relu, y, n, ty, b)
           : output_avx2<2>(g, mbuf, bias, relu, y, n, ty, b);
    }
  });
}

}  // namespace sparkle::cpu
