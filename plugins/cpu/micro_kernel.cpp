// The micro-kernel is one template over the vector type; each ISA
// instantiates it inside a function compiled for that ISA (GCC target
// attributes), so one translation unit holds every variant and no
// ISA-specific code leaks into shared inline functions.
#include "micro_kernel.hpp"

#include <algorithm>
#include <cstring>

namespace sparkle::cpu {
namespace {

#if defined(__GNUC__) && !defined(__clang__)
#define SPARKLE_INLINE __attribute__((always_inline)) inline
#else
#define SPARKLE_INLINE inline
#endif

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define SPARKLE_HAVE_X86_TARGETS 1
#define SPARKLE_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define SPARKLE_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define SPARKLE_HAVE_X86_TARGETS 0
#endif

typedef float v4 __attribute__((vector_size(16)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));

template <class V, int MR, int NV, bool kRows, bool kPackedA = false, bool kTrans = false>
SPARKLE_INLINE void micro_kernel(const MicroTile& t) {
  constexpr int kLanes = static_cast<int>(sizeof(V) / sizeof(float));
  const float* ar[MR];
  for (int m = 0; m < MR; ++m) ar[m] = t.a + std::min(m, t.mr - 1) * t.lda;
  V acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = V{} + 0.0f;
  const float* b = t.b;
  const int64_t ldb = t.ldb;
  const int64_t* boff = t.boff;
#pragma GCC unroll 2
  for (int64_t j = 0; j < t.kc; ++j) {
    V bv[NV];
    const float* bj = kRows ? t.b + boff[j] : b;
    for (int v = 0; v < NV; ++v) std::memcpy(&bv[v], bj + v * kLanes, sizeof(V));
    if (!kRows) b += ldb;
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
      const float s = kPackedA ? t.a[j * MR + m] : ar[m][j];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[m][v] += bv[v] * s;
    }
  }
  constexpr int kWidth = NV * kLanes;
  const V zero = V{} + 0.0f;
  if constexpr (kTrans) {
    // Rows are output pixels and columns output channels: element (m, col)
    // goes to c[col * ldc + m], and the start value is per column.
    float out[MR][kWidth];
    std::memcpy(out, acc, sizeof out);
    for (int col = 0; col < t.nc; ++col) {
      float* c = t.c + col * t.ldc;
      const float start = t.init != nullptr ? t.init[col] : 0.0f;
      for (int m = 0; m < t.mr; ++m) {
        float cur = (t.first ? start : c[m]) + out[m][col];
        if (t.relu) cur = std::max(cur, 0.0f);
        c[m] = cur;
      }
    }
  } else if (t.nc == kWidth) {
    for (int m = 0; m < t.mr; ++m) {
      float* c = t.c + m * t.ldc;
      const float start = t.init != nullptr ? t.init[m] : 0.0f;
      for (int v = 0; v < NV; ++v) {
        V cur;
        if (t.first) {
          cur = zero + start;
        } else {
          std::memcpy(&cur, c + v * kLanes, sizeof(V));
        }
        cur += acc[m][v];
        if (t.relu) cur = cur > zero ? cur : zero;
        std::memcpy(c + v * kLanes, &cur, sizeof(V));
      }
    }
  } else {
    for (int m = 0; m < t.mr; ++m) {
      float* c = t.c + m * t.ldc;
      const float start = t.init != nullptr ? t.init[m] : 0.0f;
      float out[kWidth];
      std::memcpy(out, acc[m], sizeof out);
      for (int col = 0; col < t.nc; ++col) {
        float cur = (t.first ? start : c[col]) + out[col];
        if (t.relu) cur = std::max(cur, 0.0f);
        c[col] = cur;
      }
    }
  }
}

// Portable: 4-float vectors (SSE2 on x86-64, NEON elsewhere, scalar if none).
void portable_full(const MicroTile& t) { micro_kernel<v4, 6, 2, false>(t); }
void portable_half(const MicroTile& t) { micro_kernel<v4, 6, 1, false>(t); }
void portable_full_rows(const MicroTile& t) { micro_kernel<v4, 6, 2, true>(t); }
void portable_half_rows(const MicroTile& t) { micro_kernel<v4, 6, 1, true>(t); }
void portable_full_p(const MicroTile& t) { micro_kernel<v4, 6, 2, false, true>(t); }
void portable_half_p(const MicroTile& t) { micro_kernel<v4, 6, 1, false, true>(t); }
void portable_full_rows_p(const MicroTile& t) { micro_kernel<v4, 6, 2, true, true>(t); }
void portable_half_rows_p(const MicroTile& t) { micro_kernel<v4, 6, 1, true, true>(t); }
void portable_full_t(const MicroTile& t) { micro_kernel<v4, 6, 2, false, true, true>(t); }
void portable_half_t(const MicroTile& t) { micro_kernel<v4, 6, 1, false, true, true>(t); }

#if SPARKLE_HAVE_X86_TARGETS
// AVX2 + FMA: 6 x 16 keeps 12 accumulators, 2 patch vectors and 1 broadcast
// in the 16 ymm registers.
SPARKLE_TARGET_AVX2 void avx2_full(const MicroTile& t) { micro_kernel<v8, 6, 2, false>(t); }
SPARKLE_TARGET_AVX2 void avx2_half(const MicroTile& t) { micro_kernel<v8, 6, 1, false>(t); }
SPARKLE_TARGET_AVX2 void avx2_full_rows(const MicroTile& t) { micro_kernel<v8, 6, 2, true>(t); }
SPARKLE_TARGET_AVX2 void avx2_half_rows(const MicroTile& t) { micro_kernel<v8, 6, 1, true>(t); }
SPARKLE_TARGET_AVX2 void avx2_full_p(const MicroTile& t) { micro_kernel<v8, 6, 2, false, true>(t); }
SPARKLE_TARGET_AVX2 void avx2_half_p(const MicroTile& t) { micro_kernel<v8, 6, 1, false, true>(t); }
SPARKLE_TARGET_AVX2 void avx2_full_rows_p(const MicroTile& t) {
  micro_kernel<v8, 6, 2, true, true>(t);
}
SPARKLE_TARGET_AVX2 void avx2_half_rows_p(const MicroTile& t) {
  micro_kernel<v8, 6, 1, true, true>(t);
}
SPARKLE_TARGET_AVX2 void avx2_full_t(const MicroTile& t) {
  micro_kernel<v8, 6, 2, false, true, true>(t);
}
SPARKLE_TARGET_AVX2 void avx2_half_t(const MicroTile& t) {
  micro_kernel<v8, 6, 1, false, true, true>(t);
}
// AVX-512: 12 x 32 keeps 24 accumulators of the 32 zmm registers.
SPARKLE_TARGET_AVX512 void avx512_full(const MicroTile& t) { micro_kernel<v16, 12, 2, false>(t); }
SPARKLE_TARGET_AVX512 void avx512_half(const MicroTile& t) { micro_kernel<v16, 12, 1, false>(t); }
SPARKLE_TARGET_AVX512 void avx512_full_rows(const MicroTile& t) {
  micro_kernel<v16, 12, 2, true>(t);
}
SPARKLE_TARGET_AVX512 void avx512_half_rows(const MicroTile& t) {
  micro_kernel<v16, 12, 1, true>(t);
}
SPARKLE_TARGET_AVX512 void avx512_full_p(const MicroTile& t) {
  micro_kernel<v16, 12, 2, false, true>(t);
}
SPARKLE_TARGET_AVX512 void avx512_half_p(const MicroTile& t) {
  micro_kernel<v16, 12, 1, false, true>(t);
}
SPARKLE_TARGET_AVX512 void avx512_full_rows_p(const MicroTile& t) {
  micro_kernel<v16, 12, 2, true, true>(t);
}
SPARKLE_TARGET_AVX512 void avx512_half_rows_p(const MicroTile& t) {
  micro_kernel<v16, 12, 1, true, true>(t);
}
SPARKLE_TARGET_AVX512 void avx512_full_t(const MicroTile& t) {
  micro_kernel<v16, 12, 2, false, true, true>(t);
}
SPARKLE_TARGET_AVX512 void avx512_half_t(const MicroTile& t) {
  micro_kernel<v16, 12, 1, false, true, true>(t);
}
#endif

const KernelSet kPortable{
    Isa::portable,
    6,
    8,
    4,
    &portable_full,
    &portable_half,
    &portable_full_rows,
    &portable_half_rows,
    "portable_6x8",
    {&portable_full_p, &portable_half_p, &portable_full_rows_p, &portable_half_rows_p},
    {&portable_full_t, &portable_half_t}};
#if SPARKLE_HAVE_X86_TARGETS
const KernelSet kAvx2{Isa::avx2,
                      6,
                      16,
                      8,
                      &avx2_full,
                      &avx2_half,
                      &avx2_full_rows,
                      &avx2_half_rows,
                      "avx2_6x16",
                      {&avx2_full_p, &avx2_half_p, &avx2_full_rows_p, &avx2_half_rows_p},
                      {&avx2_full_t, &avx2_half_t}};
const KernelSet kAvx512{Isa::avx512,
                        12,
                        32,
                        16,
                        &avx512_full,
                        &avx512_half,
                        &avx512_full_rows,
                        &avx512_half_rows,
                        "avx512_12x32",
                        {&avx512_full_p, &avx512_half_p, &avx512_full_rows_p, &avx512_half_rows_p},
                        {&avx512_full_t, &avx512_half_t}};
#endif

}  // namespace

const KernelSet& kernels_for(Isa isa) {
#if SPARKLE_HAVE_X86_TARGETS
  if (isa == Isa::avx512) return kAvx512;
  if (isa == Isa::avx2) return kAvx2;
#endif
  (void)isa;
  return kPortable;
}

}  // namespace sparkle::cpu
