// The JIT direct convolution's geometry, register blocking and parallel
// loop (see direct_conv.hpp).
#include "direct_conv.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sparkle/plugin.hpp>
#include <string>

#include "cache_info.hpp"

namespace sparkle::cpu {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

const float* offset_ptr(const float* base, int64_t floats) {
  return reinterpret_cast<const float*>(reinterpret_cast<intptr_t>(base) +
                                        static_cast<intptr_t>(floats * 4));
}

// Cycles of one reduction step of a u x b tile, the largest of: the FMAs on
// two pipes (at least ~10 in flight to hide their latency), the
// instructions at four per cycle (u broadcasts, b weight loads and u * b
// FMAs; on AVX-512 with b = 1 the broadcast rides in the FMA), and the
// loads at 1.5 per cycle, 2 when they are FMA operands (fitted on the
// 2-core EPYC: at two, AVX2's 14 x 1 tiles were picked and measured 14-23%
// slower than 6 x 2; on AVX-512, 28 x 1 with embedded broadcasts measured
// 2-4% faster than 14 x 2). Weights that do not fit L1 stream from L2, about
// two vectors per cycle.
double step_cost(int u, int b, bool embedded_broadcast, bool weights_in_l2) {
  const bool embedded = embedded_broadcast && b == 1;
  const double fmas = u * b;
  const double loads = u + b;
  const double uops = embedded ? u + 1 : u * b + u + b;
  const double cycles =
      std::max({std::max(fmas, 10.0) / 2, uops / 4, loads / (embedded ? 2.0 : 1.5)});
  return cycles + (weights_in_l2 ? b * 0.5 : 0.0);
}

}  // namespace

// SPARKLE_CPU_JIT_BLOCKING=UxB: forces U pixels x B channel blocks (for
// experiments; a pair that does not fit the registers is an error).
bool forced_jit_blocking(int& u, int& b) {
  const char* env = std::getenv("SPARKLE_CPU_JIT_BLOCKING");
  if (env == nullptr || *env == '\0') return false;
  if (std::sscanf(env, "%dx%d", &u, &b) != 2 || u < 1 || b < 1)
    throw plugin::Error(SPARKLE_INVALID_ARGUMENT,
                        std::string("SPARKLE_CPU_JIT_BLOCKING=") + env + " is not UxB");
  return true;
}

bool direct_applicable(const sparkle_conv2d_desc& d, Isa isa) {
  const int64_t v = jit_vector_lanes(isa);
  if (v == 0 || d.groups != 1) return false;
  // The generated code addresses the input and output with 32-bit
  // displacements and keeps strides, dilations and pad columns in int: a
  // shape whose input channel block, filter-row step, output block or
  // padded row exceeds 2 GiB (a stride or pad of 2^32, a dilation of 2^32)
  // goes to the GEMM, which computes it in 64 bits.
  const auto fits = [v](int64_t a, int64_t b) {
    int64_t p = 0;
    return !__builtin_mul_overflow(a, b, &p) && !__builtin_mul_overflow(p, v * 4, &p) &&
           p <= std::numeric_limits<int32_t>::max();
  };
  int64_t padded_w = 0;
  if (__builtin_add_overflow(d.w, d.pad_left, &padded_w) ||
      __builtin_add_overflow(padded_w, d.pad_right, &padded_w))
    return false;
  // The filter width is unrolled into the code: wider filters (a 1-D
  // filter of thousands of taps) would make kernels of megabytes.
  if (d.s > kMaxJitFilterWidth) return false;
  // Output blocks are addressed up to the register blocking's channel
  // blocks (at most the vector registers) from the tile's first one.
  return fits(d.h, d.w) && fits(d.dilation_h, d.w) && fits(d.out_h, d.out_w) &&
         fits(d.out_h * d.out_w, jit_vector_registers(isa)) && fits(padded_w, 1) &&
         fits(d.stride_w, 1) && fits(d.dilation_w, d.s);
}

DirectConv::DirectConv(const sparkle_conv2d_desc& d, Isa isa, bool dense_input, int threads)
    : d_(d),
      isa_(isa),
      v_(jit_vector_lanes(isa)),
      dense_(dense_input),
      prefetch_(jit_prefetch_enabled()),
      threads_(threads) {
  if (!direct_applicable(d, isa))
    throw plugin::Error(SPARKLE_INTERNAL, "JIT direct conv planned where it does not apply");
  const int64_t hw = d.h * d.w;
  flat_ = d.r == 1 && d.s == 1 && d.stride_h == 1 && d.stride_w == 1 && d.pad_top == 0 &&
          d.pad_left == 0 && d.pad_bottom == 0 && d.pad_right == 0;
  if (dense_) {
    in_c_ = hw;
    in_px_ = 1;
    if (d.c < v_) {
      icp_ = static_cast<int>(d.c);
      icb_full_ = 1;
    } else {
      icp_ = v_;
      icb_full_ = d.c / v_;
      ic_tail_ = static_cast<int>(d.c % v_);
    }
    in_blk_ = static_cast<int64_t>(icp_) * hw;
    in_img_ = d.c * hw;
  } else {
    icp_ = v_;
    icb_full_ = ceil_div(d.c, v_);
    in_c_ = 1;
    in_px_ = v_;
    in_blk_ = hw * v_;
    in_img_ = icb_full_ * in_blk_;
  }
  icb_total_ = icb_full_ + (ic_tail_ > 0 ? 1 : 0);
  in_row_ = d.dilation_h * d.w * in_px_;
  kb_ = ceil_div(d.k, v_);
  const int64_t opix = d.out_h * d.out_w;
  out_blk_ = opix * v_;
  out_img_ = kb_ * out_blk_;

  // Register blocking: the (pixels, blocks) pair with the least modelled
  // time, with the tails' kernels and the waves of work items priced in.
  const int regs = jit_vector_registers(isa);
  const bool embedded = isa == Isa::avx512;  // FMAs with a {1to16} memory broadcast
  const int64_t width = flat_ ? opix : d.out_w;
  const int64_t rows = flat_ ? 1 : d.out_h;
  double best = std::numeric_limits<double>::infinity();
  const auto l1 = static_cast<int64_t>(l1_bytes());
  for (int b = 1; b <= std::min<int64_t>(kb_, 8); ++b) {
    // One pass's weights for a group (all input blocks, up to half of L2).
    const int64_t pass_weights = std::min<int64_t>(static_cast<int64_t>(l2_bytes() / 2),
                                                   icb_total_ * d.r * d.s * icp_ * b * v_ * 4);
    const bool in_l2 = pass_weights > l1 / 2;
    for (int u = 1; u <= std::min<int64_t>(width, 32); ++u) {
      if (u * b + b + 1 > regs) break;
      const int64_t full = width / u, rest = width % u;
      const int64_t groups = ceil_div(kb_, b), last_b = kb_ - (groups - 1) * b;
      const int lb = static_cast<int>(last_b), rs = static_cast<int>(rest);
      const double row = static_cast<double>(full) * step_cost(u, b, embedded, in_l2) +
                         (rest ? step_cost(rs, b, embedded, in_l2) : 0.0);
      const double row_last = static_cast<double>(full) * step_cost(u, lb, embedded, in_l2) +
                              (rest ? step_cost(rs, lb, embedded, in_l2) : 0.0);
      const double total =
          (static_cast<double>(groups - 1) * row + row_last) * static_cast<double>(rows * d.n);
      // Work items of one group x one row (or tile run): the last wave may
      // leave threads idle.
      const double items = static_cast<double>(d.n * groups * (flat_ ? full + (rest > 0) : rows));
      const double waves = std::ceil(items / threads) / (items / threads);
      const double cost = total * std::max(1.0, waves);
      if (cost < best * 0.999) {
        best = cost;
        ur_ = u;
        nb_oc_ = b;
      }
    }
  }

  int fu = 0, fb = 0;
  if (forced_jit_blocking(fu, fb)) {
    ur_ = static_cast<int>(std::min<int64_t>(fu, width));
    nb_oc_ = static_cast<int>(std::min<int64_t>(fb, kb_));
  }
  for (int64_t b = 0; b < kb_; b += nb_oc_) {
    Group g;
    g.first_block = b;
    g.nb = static_cast<int>(std::min<int64_t>(nb_oc_, kb_ - b));
    g.mask = (b + g.nb == kb_ && d.k % v_ != 0) ? static_cast<int>(d.k % v_) : 0;
    groups_.push_back(g);
  }
  for (int64_t first = 0; first < width; first += ur_) {
    Tile t;
    t.first = first;
    t.width = static_cast<int>(std::min<int64_t>(ur_, width - first));
    if (flat_) {
      t.src_col = first;
      t.lpad = 0;
      t.room = -1;
    } else {
      t.src_col = first * d.stride_w - d.pad_left;
      t.lpad = static_cast<int>(std::max<int64_t>(0, -t.src_col));
      const int64_t room = d.w - t.src_col;
      const int64_t span = (t.width - 1) * d.stride_w + (d.s - 1) * d.dilation_w + 1;
      t.room = room >= span ? -1 : static_cast<int>(std::max<int64_t>(0, room));
    }
    tiles_.push_back(t);
  }
  // Work items and the loop inside one (BLIS-like): for each pass over a
  // run of input blocks, for each group of the item's set, for each row
  // (flat: tile) of the item, the tiles. A pass's weights for one group
  // stay in half of L1 (measured) for all the item's rows; the item's input
  // for a pass stays in half of L2 for all its groups.
  const int64_t units = flat_ ? static_cast<int64_t>(tiles_.size()) : d.out_h;
  const auto ngroups = static_cast<int64_t>(groups_.size());
  const int64_t block_bytes = d.r * d.s * icp_ * nb_oc_ * v_ * 4;
  const auto half_l1 = static_cast<int64_t>(l1_bytes() / 2);
  const auto half_l2 = static_cast<int64_t>(l2_bytes() / 2);
  // A pass of at least 64 reduction steps keeps the partial-sum traffic
  // between passes small.
  const int64_t min_chunk =
      std::min<int64_t>(std::max<int64_t>(icb_full_, 1), ceil_div(64, icp_ * d.r * d.s));
  icb_chunk_ =
      std::clamp<int64_t>(half_l1 / block_bytes, min_chunk, std::max<int64_t>(icb_full_, 1));
  // Input floats of one row (flat: tile) for one pass.
  const int64_t unit_in = flat_
                              ? static_cast<int64_t>(ur_) * v_ * icb_chunk_
                              : d.r * d.dilation_h * d.w * std::min<int64_t>(icp_, v_) * icb_chunk_;
  const int64_t l2_units = std::max<int64_t>(1, half_l2 / (unit_in * 4));
  // How the (image, rows, groups) space is cut into work items: the least
  // makespan (waves of the largest item) plus memory traffic. Each row
  // chunk streams the weights of every group once and each group set reads
  // its rows' input once, so cutting rows multiplies the weight traffic and
  // cutting groups the input traffic: on a small image with large weights
  // (res5, 7x7 at 512 channels) one row per item streamed 9.4 MB of weights
  // seven times for 7 output pixels each. Traffic is priced at `lanes / 4`
  // FLOPs per byte and core (what a core computes while its share of the
  // L3/memory bandwidth moves a byte, roughly), spread over the threads.
  // The old rule (rows first until three items per thread) is what this
  // replaced; docs/CPU.md has the 16-core figures of both.
  {
    const auto flops_unit_group = static_cast<double>(
        (flat_ ? static_cast<int64_t>(ur_) : d.out_w) * nb_oc_ * v_ * d.c * d.r * d.s * 2);
    const double w_bytes = static_cast<double>(kb_ * v_ * d.c * d.r * d.s * 4);
    const double x_bytes = static_cast<double>(d.c * d.h * d.w * 4);
    const double flops_per_byte = v_ / 4.0;
    const double t = threads_;
    double best = std::numeric_limits<double>::infinity();
    row_chunk_ = std::min(units, l2_units);
    group_set_ = ngroups;
    for (int64_t chunks = ceil_div(units, l2_units); chunks <= units; ++chunks) {
      const int64_t rc = ceil_div(units, chunks);
      if (ceil_div(units, rc) != chunks) continue;  // the same cut as a smaller count
      for (int64_t sets = 1; sets <= ngroups; ++sets) {
        const int64_t gs = ceil_div(ngroups, sets);
        if (ceil_div(ngroups, gs) != sets) continue;
        const double items = static_cast<double>(d.n * ceil_div(units, rc) * ceil_div(ngroups, gs));
        // A quarter item more for the thread that starts late or is
        // preempted (a shared machine): some slack favours more, smaller
        // items when they cost no traffic.
        const double makespan =
            (std::ceil(items / t) + 0.25) * static_cast<double>(rc * gs) * flops_unit_group;
        const double traffic =
            static_cast<double>(d.n) * (static_cast<double>(ceil_div(ngroups, gs)) * x_bytes +
                                        static_cast<double>(ceil_div(units, rc)) * w_bytes);
        const double cost = makespan + traffic * flops_per_byte / t;
        if (cost < best * 0.999) {
          best = cost;
          row_chunk_ = rc;
          group_set_ = gs;
        }
      }
    }
  }

  plugin::log(SPARKLE_LOG_DEBUG,
              "jit direct " + std::to_string(d.c) + "->" + std::to_string(d.k) + " " +
                  std::to_string(d.r) + "x" + std::to_string(d.s) + " on " +
                  std::to_string(d.out_h) + "x" + std::to_string(d.out_w) + ": " +
                  std::to_string(ur_) + " pixels x " + std::to_string(nb_oc_) + " blocks, " +
                  std::to_string(icb_chunk_) + " of " + std::to_string(icb_full_) +
                  " input blocks per pass, " + std::to_string(row_chunk_) +
                  (flat_ ? " tiles" : " rows") + " and " + std::to_string(group_set_) +
                  " groups per item, " + std::to_string(items()) + " items");
  kernels_.reserve(groups_.size() * tiles_.size());
  for (const Group& g : groups_)
    for (const Tile& t : tiles_) {
      JitConvKernel k = jit_conv_kernel(key_for(g, t));
      kernels_.push_back(k.fn);
      code_.push_back(std::move(k.code));
    }
}

JitConvKey DirectConv::key_for(const Group& g, const Tile& t) const {
  JitConvKey k;
  k.isa = isa_;
  k.ur = t.width;
  k.nb_oc = g.nb;
  k.s_taps = flat_ ? 1 : static_cast<int>(d_.s);
  k.sw = flat_ ? 1 : static_cast<int>(d_.stride_w);
  k.dw = flat_ ? 1 : static_cast<int>(d_.dilation_w);
  k.icp = icp_;
  k.ic_tail = ic_tail_;
  k.in_c = in_c_;
  k.in_px = in_px_;
  k.in_row = in_row_;
  k.in_blk = in_blk_;
  k.out_blk = out_blk_;
  k.r_taps = d_.r;
  k.lpad = t.lpad;
  k.room = t.room;
  k.bias = d_.has_bias != 0;
  k.relu = d_.relu != 0;
  k.mask_lanes = g.mask;
  k.prefetch = prefetch_;
  return k;
}

size_t DirectConv::packed_floats() const {
  return static_cast<size_t>(icb_total_ * d_.r * d_.s * icp_ * kb_ * v_);
}

std::vector<float> DirectConv::padded_bias(const float* bias) const {
  std::vector<float> b(static_cast<size_t>(kb_ * v_), 0.0f);
  if (bias != nullptr)
    for (int64_t k = 0; k < d_.k; ++k) b[static_cast<size_t>(k)] = bias[k];
  return b;
}

int64_t DirectConv::items() const {
  const int64_t units = flat_ ? static_cast<int64_t>(tiles_.size()) : d_.out_h;
  return d_.n * ceil_div(static_cast<int64_t>(groups_.size()), group_set_) *
         ceil_div(units, row_chunk_);
}

void DirectConv::run(const float* x, const float* wpacked, const float* bias_padded,
                     float* y) const {
  tbb::parallel_for(int64_t{0}, items(),
                    [&](int64_t item) { run_item(item, x, wpacked, bias_padded, y); });
}

void DirectConv::run_item(int64_t item, const float* x, const float* wpacked,
                          const float* bias_padded, float* y) const {
  const int64_t units = flat_ ? static_cast<int64_t>(tiles_.size()) : d_.out_h;
  const int64_t chunks = ceil_div(units, row_chunk_);
  const auto ngroups = static_cast<int64_t>(groups_.size());
  const int64_t nsets = ceil_div(ngroups, group_set_);
  const auto ntiles = static_cast<int64_t>(tiles_.size());
  const int64_t rs = d_.r * d_.s;
  const int64_t row_stride = d_.w * in_px_;
  const int64_t n = item / (nsets * chunks);
  const int64_t set = (item / chunks) % nsets;
  const int64_t u0 = (item % chunks) * row_chunk_, u1 = std::min(units, u0 + row_chunk_);
  const int64_t g0 = set * group_set_, g1 = std::min(ngroups, g0 + group_set_);
  const float* xi = x + n * in_img_;
  JitConvArgs a{};
  for (int64_t c0 = 0; c0 < icb_full_; c0 += icb_chunk_) {
    const int64_t nblk = std::min(icb_chunk_, icb_full_ - c0);
    const bool last = c0 + nblk >= icb_full_;
    a.icb = nblk;
    a.flags = (c0 == 0 ? 1 : 0) | (last ? 2 : 0) | (last && ic_tail_ > 0 ? 4 : 0);
    const float* xc = xi + c0 * in_blk_;
    for (int64_t gi = g0; gi < g1; ++gi) {
      const Group& g = groups_[static_cast<size_t>(gi)];
      const int64_t nbv = static_cast<int64_t>(g.nb) * v_;
      a.bias = bias_padded != nullptr ? bias_padded + g.first_block * v_ : nullptr;
      const float* wg =
          wpacked + g.first_block * v_ * icb_total_ * rs * icp_ + c0 * rs * icp_ * nbv;
      float* yg = y + n * out_img_ + g.first_block * out_blk_;
      const JitConvFn* kg = kernels_.data() + gi * ntiles;
      if (flat_) {
        a.kh = 1;
        a.wei = wg;
        for (int64_t t = u0; t < u1; ++t) {
          const Tile& tile = tiles_[static_cast<size_t>(t)];
          a.src = xc + tile.src_col * in_px_;
          a.dst = yg + tile.first * v_;
          kg[t](&a);
        }
        continue;
      }
      for (int64_t oh = u0; oh < u1; ++oh) {
        // The filter rows whose input row exists.
        const int64_t ih0 = oh * d_.stride_h - d_.pad_top;
        int64_t r_lo = 0, r_hi = d_.r;
        while (r_lo < r_hi && ih0 + r_lo * d_.dilation_h < 0) ++r_lo;
        while (r_hi > r_lo && ih0 + (r_hi - 1) * d_.dilation_h >= d_.h) --r_hi;
        a.kh = r_hi - r_lo;
        a.wei = wg + r_lo * d_.s * icp_ * nbv;
        const float* xrow = a.kh > 0 ? xc + (ih0 + r_lo * d_.dilation_h) * row_stride : xc;
        float* yrow = yg + oh * d_.out_w * v_;
        for (int64_t t = 0; t < ntiles; ++t) {
          const Tile& tile = tiles_[static_cast<size_t>(t)];
          a.src = offset_ptr(xrow, tile.src_col * in_px_);
          a.dst = yrow + tile.first * v_;
          kg[t](&a);
        }
      }
    }
  }
}

}  // namespace sparkle::cpu
