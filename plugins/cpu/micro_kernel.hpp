// Register-blocked micro-kernels, one set per ISA. A micro-kernel computes an
// MR x NR block of the output (MR output channels, NR output pixels) over kc
// reduction steps: weights are read in place from the KCRS tensor (broadcast
// one scalar per row), patches from a packed panel of NR-float rows.
#pragma once

#include <cstdint>

#include "isa.hpp"

namespace sparkle::cpu {

struct MicroTile {
  const float* a;       // weights of the first row at the first reduction index
  int64_t lda;          // weight row stride (C/groups * R * S)
  const float* b;       // patches of row 0: a packed panel, or the padded input (direct path)
  int64_t ldb;          // row stride of b (the panel width NR of the main kernel) ...
  const int64_t* boff;  // ... or, for the *_rows kernels, row j at b + boff[j]
  int64_t kc;           // reduction steps
  float* c;             // output of the first row at the first pixel
  int64_t ldc;          // output row stride (out_h * out_w)
  int mr;               // valid rows (1..MR); missing rows repeat the last one and are not stored
  int nc;               // valid columns (1..this kernel's width)
  bool first;           // start from init (or 0) instead of the output's current value
  bool relu;            // clamp at 0 when storing (only on the last reduction block)
  const float* init;    // per-row start values (the bias) when first; nullptr means 0
};

using MicroKernelFn = void (*)(const MicroTile&);

struct KernelSet {
  Isa isa;
  int mr;                   // rows per micro-tile
  int nr;                   // columns of the main kernel (and the packed panel width)
  int nr_half;              // columns of the narrow kernel used for a tail of <= nr/2 columns
  MicroKernelFn full;       // nr columns
  MicroKernelFn half;       // nr_half columns, reads panels of width nr
  MicroKernelFn full_rows;  // as full / half, with patch rows found through boff
  MicroKernelFn half_rows;
  const char* name;  // "avx2_6x16"
  // The same four kernels reading pre-packed weights: MR values per
  // reduction step, contiguous (a[j * MR + m]), so one stream instead of MR.
  struct {
    MicroKernelFn full, half, full_rows, half_rows;
  } packed;
  // Channel-vectorised ("transposed") kernels: a holds packed patches (MR
  // output pixels per reduction step), b pre-packed weights (nr output
  // channels per step, ldb = nr), and the tile is stored transposed: row m
  // (a pixel) and column n (a channel) go to c[n * ldc + m], with the bias
  // per column. For small images, where nr-pixel tiles would be mostly
  // padding.
  struct {
    MicroKernelFn full, half;
  } trans;
};

const KernelSet& kernels_for(Isa isa);

}  // namespace sparkle::cpu
