// Tile arithmetic that every GPU backend's GEMM-shaped kernels need: how an
// implicit-GEMM view of a convolution splits into work-group tiles, how much
// of the padded tile work is useful, and how a split of the reduction fills
// a device. Plain integer math, no driver calls.
#pragma once

#include <sparkle/plugin.h>

#include <algorithm>
#include <cstdint>

namespace sparkle::gpu {

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
constexpr int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// conv2d as `batch` independent GEMMs (one per group): rows m = output
// channels of a group, columns = N * out_h * out_w pixels, reduction =
// C/groups * R * S.
struct GemmShape {
  int64_t batch = 1, m = 1, n = 1, k = 1;
};

inline GemmShape implicit_gemm(const sparkle_conv2d_desc& d) {
  return {d.groups, d.k / d.groups, d.n * d.out_h * d.out_w, (d.c / d.groups) * d.r * d.s};
}

// A block tile of bm x bn outputs stepping the reduction by bk.
struct TileGrid {
  int64_t m_tiles = 0, n_tiles = 0, k_steps = 0;
  int64_t tiles() const { return m_tiles * n_tiles; }
};

inline TileGrid tile_grid(const GemmShape& g, int64_t bm, int64_t bn, int64_t bk) {
  return {ceil_div(g.m, bm), ceil_div(g.n, bn), ceil_div(g.k, bk)};
}

// Fraction of the padded tile work that computes real outputs.
inline double useful_fraction(const GemmShape& g, int64_t bm, int64_t bn) {
  const TileGrid t = tile_grid(g, bm, bn, 1);
  return static_cast<double>(g.m) * static_cast<double>(g.n) /
         (static_cast<double>(t.m_tiles * bm) * static_cast<double>(t.n_tiles * bn));
}

// How well `groups` work groups fill `slots` that run at once (compute units
// x groups resident per unit): the last wave is partly empty. 1 when slots
// is unknown (0).
inline double wave_fill(int64_t groups, int64_t slots) {
  if (slots <= 0 || groups <= 0) return 1.0;
  const int64_t waves = ceil_div(groups, slots);
  return static_cast<double>(groups) / static_cast<double>(waves * slots);
}

// Split-K factors worth offering for a grid of `groups` work groups whose
// reduction has k_steps steps, on a device with `slots` concurrent work
// groups: the smallest factor that reaches one full wave, and its double,
// each keeping at least min_steps reduction steps per slice. Empty when the
// grid already fills the device or the reduction is too short to split.
inline void split_k_candidates(int64_t groups, int64_t k_steps, int64_t slots, int64_t max_split,
                               int64_t min_steps, int64_t out[2], int* count) {
  *count = 0;
  if (slots <= 0 || groups >= slots) return;
  const int64_t limit = std::min(max_split, k_steps / std::max<int64_t>(min_steps, 1));
  int64_t s = ceil_div(slots, groups);
  for (int i = 0; i < 2 && s <= limit && s >= 2; ++i, s *= 2) out[(*count)++] = s;
  if (*count == 0 && limit >= 2) out[(*count)++] = limit;  // as far as the reduction allows
}

}  // namespace sparkle::gpu
