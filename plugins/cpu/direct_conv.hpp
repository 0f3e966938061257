// Direct convolution on blocked activations with the JIT kernels
// (jit_conv.hpp): the output is nChwVc; the input is nChwVc or dense NCHW
// (a network's first layer, or a caller's NCHW array), read in place.
// Register blocking (pixels x channel blocks) is chosen per shape by a cost
// model; tiles at the image edges get kernels with the padded taps left
// out, and the filter rows in the padding are skipped at run time.
#pragma once

#include <sparkle/plugin.h>
#include <tbb/parallel_for.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "isa.hpp"
#include "jit_conv.hpp"

namespace sparkle::cpu {

// Whether the JIT direct path can run d on isa: groups 1, an ISA with JIT,
// and offsets that fit the generated code's 32-bit displacements.
bool direct_applicable(const sparkle_conv2d_desc& d, Isa isa);
inline constexpr int64_t kMaxJitFilterWidth = 32;

// SPARKLE_CPU_JIT_BLOCKING=UxB (experiments): true and u, b when it is set;
// throws plugin::Error naming the variable when it is not UxB.
bool forced_jit_blocking(int& u, int& b);

class DirectConv {
 public:
  // dense_input: x is dense NCHW (else nChwVc with V = the ISA's lanes).
  DirectConv(const sparkle_conv2d_desc& d, Isa isa, bool dense_input, int threads);

  // Packed weights: per group of nb_oc output blocks, per input block, per
  // filter row and tap, per input channel, nb_oc * V output channels.
  // w(k, c, r, s) reads the caller's weights in whatever layout they are.
  size_t packed_floats() const;
  template <class W>
  void pack(const W& w, float* out) const;
  // Bias zero-padded to whole blocks.
  std::vector<float> padded_bias(const float* bias) const;

  // y (nChwVc, N x ceil(K/V) x OH x OW x V) = conv(x, packed weights).
  void run(const float* x, const float* wpacked, const float* bias_padded, float* y) const;
  // The same as independent work items (for callers that run several
  // convolutions in one parallel loop, as Winograd's GEMMs do).
  int64_t items() const;
  void run_item(int64_t item, const float* x, const float* wpacked, const float* bias_padded,
                float* y) const;

  int ur() const { return ur_; }
  int nb_oc() const { return nb_oc_; }
  int threads() const { return threads_; }

 private:
  struct Group {  // a run of output blocks computed by one kernel column
    int64_t first_block;
    int nb;
    int mask;
  };
  struct Tile {     // one position along the output row (or the flat pixels)
    int64_t first;  // first output pixel (column, or flat index)
    int width;
    int64_t src_col;  // input column (or flat pixel) of the kernel's tile column 0
    int lpad, room;
  };
  JitConvKey key_for(const Group& g, const Tile& t) const;

  sparkle_conv2d_desc d_;
  Isa isa_;
  int v_;
  bool dense_;
  bool flat_;  // 1x1, stride 1, no padding: the pixels are one long row
  bool prefetch_;
  int threads_;
  int ur_ = 1, nb_oc_ = 1;
  int icp_ = 1, ic_tail_ = 0;
  int64_t icb_full_ = 0;   // full input blocks
  int64_t icb_total_ = 0;  // packed input blocks (with the tail)
  int64_t icb_chunk_ = 1;  // input blocks per pass over a tile (the weights' L2 working set)
  int64_t kb_ = 0;         // output blocks
  int64_t in_c_ = 1, in_px_ = 1, in_row_ = 1, in_blk_ = 1, in_img_ = 1;
  int64_t out_blk_ = 1, out_img_ = 1;
  int64_t row_chunk_ = 1;  // output rows (or tiles, flat) per work item
  int64_t group_set_ = 1;  // groups per work item (looped inside each row)
  std::vector<Group> groups_;
  std::vector<Tile> tiles_;
  // kernels_[g * tiles + t]
  std::vector<JitConvFn> kernels_;
  std::vector<std::shared_ptr<const void>> code_;  // keeps kernels_ callable
};

template <class W>
void DirectConv::pack(const W& w, float* out) const {
  const int64_t v = v_;
  const int64_t rs = d_.r * d_.s;
  std::vector<int64_t> offsets(groups_.size() + 1, 0);
  for (size_t g = 0; g < groups_.size(); ++g)
    offsets[g + 1] = offsets[g] + icb_total_ * rs * icp_ * groups_[g].nb * v;
  const auto jobs = static_cast<int64_t>(groups_.size()) * icb_total_;
  tbb::parallel_for(int64_t{0}, jobs, [&](int64_t job) {
    const Group& g = groups_[static_cast<size_t>(job / icb_total_)];
    const int64_t b = job % icb_total_;
    const int64_t nbv = static_cast<int64_t>(g.nb) * v;
    const int64_t rows = b < icb_full_ ? icp_ : ic_tail_;
    float* base = out + offsets[static_cast<size_t>(job / icb_total_)];
    for (int64_t rsi = 0; rsi < rs; ++rsi) {
      const int64_t r = rsi / d_.s, s = rsi % d_.s;
      for (int64_t i = 0; i < icp_; ++i) {
        float* o = base + ((b * rs + rsi) * icp_ + i) * nbv;
        const int64_t c = b * icp_ + i;
        for (int64_t j = 0; j < nbv; ++j) {
          const int64_t k = g.first_block * v + j;
          o[j] = (i < rows && c < d_.c && k < d_.k) ? w(k, c, r, s) : 0.0f;
        }
      }
    }
  });
}

}  // namespace sparkle::cpu
