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

// Every variant of one ISA: NV = 2 vectors per row (full) or 1 (half);
// patch rows from a panel or through offsets (_rows); weights in place or
// pre-packed (_p); and the channel-vectorised, transposed-store ones (_t).
#define SPARKLE_NO_TARGET
#define SPARKLE_KERNEL_SET(SET, FN, ISA, TARGET, V, MR, NR, NAME)                               \
  TARGET void FN##_full(const MicroTile& t) { micro_kernel<V, MR, 2, false>(t); }               \
  TARGET void FN##_half(const MicroTile& t) { micro_kernel<V, MR, 1, false>(t); }               \
  TARGET void FN##_full_rows(const MicroTile& t) { micro_kernel<V, MR, 2, true>(t); }           \
  TARGET void FN##_half_rows(const MicroTile& t) { micro_kernel<V, MR, 1, true>(t); }           \
  TARGET void FN##_full_p(const MicroTile& t) { micro_kernel<V, MR, 2, false, true>(t); }       \
  TARGET void FN##_half_p(const MicroTile& t) { micro_kernel<V, MR, 1, false, true>(t); }       \
  TARGET void FN##_full_rows_p(const MicroTile& t) { micro_kernel<V, MR, 2, true, true>(t); }   \
  TARGET void FN##_half_rows_p(const MicroTile& t) { micro_kernel<V, MR, 1, true, true>(t); }   \
  TARGET void FN##_full_t(const MicroTile& t) { micro_kernel<V, MR, 2, false, true, true>(t); } \
  TARGET void FN##_half_t(const MicroTile& t) { micro_kernel<V, MR, 1, false, true, true>(t); } \
  const KernelSet SET {                                                                         \
    ISA, MR, NR, NR / 2, &FN##_full, &FN##_half, &FN##_full_rows, &FN##_half_rows, NAME,        \
        {&FN##_full_p, &FN##_half_p, &FN##_full_rows_p, &FN##_half_rows_p}, {                   \
      &FN##_full_t, &FN##_half_t                                                                \
    }                                                                                           \
  }

// Portable: 4-float vectors (SSE2 on x86-64, NEON elsewhere, scalar if none).
SPARKLE_KERNEL_SET(kPortable, portable, Isa::portable, SPARKLE_NO_TARGET, v4, 6, 8, "portable_6x8");
#if SPARKLE_HAVE_X86_TARGETS
// AVX2 + FMA: 6 x 16 keeps 12 accumulators, 2 patch vectors and 1 broadcast
// in the 16 ymm registers.
SPARKLE_KERNEL_SET(kAvx2, avx2, Isa::avx2, SPARKLE_TARGET_AVX2, v8, 6, 16, "avx2_6x16");
// AVX-512: 12 x 32 keeps 24 accumulators of the 32 zmm registers.
SPARKLE_KERNEL_SET(kAvx512, avx512, Isa::avx512, SPARKLE_TARGET_AVX512, v16, 12, 32,
                   "avx512_12x32");
#endif
#undef SPARKLE_KERNEL_SET
#undef SPARKLE_NO_TARGET

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
