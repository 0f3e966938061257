// Direct-convolution micro-kernels generated at run time with Xbyak, one per
// shape: a kernel computes ur output pixels of one output row x nb_oc blocks
// of V output channels (V = 16 on AVX-512, 8 on AVX2) in registers, summing
// over a run of input-channel blocks and the filter, and stores them into a
// blocked (nChwVc) output with the bias and ReLU fused. The input is read in
// place, blocked or dense NCHW, strided and padded: the taps that fall into
// the padding are left out of the generated code, so no padded copy exists.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "isa.hpp"

namespace sparkle::cpu {

// Everything that is baked into the code. Strides are in floats.
struct JitConvKey {
  Isa isa = Isa::avx2;
  int ur = 1;           // output pixels in the tile (consecutive along the row)
  int nb_oc = 1;        // output-channel blocks
  int s_taps = 1;       // filter width S (unrolled)
  int sw = 1;           // input pixels between neighbouring outputs
  int dw = 1;           // input pixels between neighbouring taps
  int icp = 1;          // channels per input block: V, or C for a dense input with C < V
  int ic_tail = 0;      // channels of a trailing partial block (dense input), run when flags & 4
  int64_t in_c = 1;     // between channels within a block
  int64_t in_px = 1;    // between input pixels along a row
  int64_t in_row = 1;   // between the input rows of neighbouring filter rows
  int64_t in_blk = 1;   // between input channel blocks
  int64_t out_blk = 1;  // between output channel blocks
  int64_t r_taps = 1;   // filter height R (weights per block: R * S * icp * nb_oc * V)
  // Tap (jj, s) reads input column jj * sw + s * dw of the tile; it exists
  // iff lpad <= column < room (room < 0: no limit).
  int lpad = 0;
  int room = -1;
  bool bias = false;
  bool relu = false;
  int mask_lanes = 0;    // valid lanes of the last block (0: all); the rest are stored as 0
  bool prefetch = true;  // software prefetch of the weights one filter row ahead

  bool operator==(const JitConvKey&) const = default;
};

// Arguments of one call (the kernel's only parameter).
struct JitConvArgs {
  const float* src;   // input of channel block 0 at the first filter row used, tile column 0
  const float* wei;   // packed weights of the group at block 0 and the first filter row used
  float* dst;         // output of the group's first block at the tile's first pixel
  const float* bias;  // the group's bias (zero-padded to nb_oc * V), when key.bias
  int64_t kh;         // filter rows to sum (those not in the padding)
  int64_t icb;        // full input channel blocks to sum
  int64_t flags;      // 1: first call (start from bias or 0), 2: last (apply ReLU), 4: tail block
};

using JitConvFn = void (*)(const JitConvArgs*);

// A generated kernel: fn stays callable while `code` is held.
struct JitConvKernel {
  JitConvFn fn = nullptr;
  std::shared_ptr<const void> code;
};

// The kernel for key, generated on first use (thread-safe). The process
// keeps up to kJitKernelsCached kernels nobody holds, for plans made again;
// past that, unheld ones are dropped, so memory follows the live plans (which
// the engine's plan cache bounds), not every shape ever seen. Throws
// plugin::Error when generation fails.
inline constexpr size_t kJitKernelsCached = 2048;
JitConvKernel jit_conv_kernel(const JitConvKey& key);
// Kernels the process holds now (for tests and logs).
size_t jit_kernels_cached();

// Vector registers available (16 or 32) and the lanes V of an ISA with JIT
// kernels (0 for the portable ISA, which has none).
int jit_vector_lanes(Isa isa);
int jit_vector_registers(Isa isa);
// SPARKLE_CPU_JIT_PREFETCH: 1 (default) or 0, for measuring the prefetch.
bool jit_prefetch_enabled();
// Kernels generated so far (for tests and logs).
int64_t jit_kernels_generated();

}  // namespace sparkle::cpu
