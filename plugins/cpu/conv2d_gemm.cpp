// Tiling, patch packing and the parallel loop of the implicit-GEMM
// convolution (see conv2d_gemm.hpp). Everything here is ISA-neutral; the
// KernelSet supplies the micro-kernels.
#include "conv2d_gemm.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace sparkle::cpu {
namespace {

// Reduction block: an A micro-panel (MR x kc) stays in L1 while it sweeps
// the packed patches of the block (nt x kc, kept in L2 by kMaxPanelBytes).
// 256 / 192 KiB were best of {128, 256, 384, 512} x {128, 192, 256} in one
// sweep of ResNet-50 on the 2-core dev machine (noisy; see docs/CPU.md).
constexpr int64_t kMaxKc = 256;
constexpr int64_t kMaxPanelBytes = 192 * 1024;
// Largest buffer (in floats) for patches packed ahead of the tasks.
constexpr double kMaxSharedFloats = 16.0 * 1024 * 1024;

// A per-thread buffer reused across calls (no page faults on every call).
// If the thread re-enters conv2d_gemm while the buffer is lent (it waits in
// a parallel loop and TBB hands it an outer task that calls us again), the
// nested call gets a buffer of its own.
template <class T, int kSlot>  // kSlot: independent buffers of the same type
class ScratchBuffer {
 public:
  ScratchBuffer() {
    auto& slot = lent();
    if (!slot) {
      slot = true;
      owner_ = &slot;
      buf_ = &cached();
    } else {
      buf_ = &own_;
    }
  }
  ~ScratchBuffer() {
    if (owner_ != nullptr) *owner_ = false;
  }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  std::vector<T>& get() { return *buf_; }

 private:
  static bool& lent() {
    thread_local bool b = false;
    return b;
  }
  static std::vector<T>& cached() {
    thread_local std::vector<T> v;
    return v;
  }
  std::vector<T> own_;
  std::vector<T>* buf_ = nullptr;
  bool* owner_ = nullptr;
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

struct Geometry {
  int64_t PQ, cg, kg, crs;
  bool pointwise;  // 1x1, stride 1, no padding: patch rows are input rows
  // Stride 1 with a filter larger than 1x1: no patch packing. The input is
  // copied once with its padding, Hp x Wp per channel; output pixel
  // (oh, ow) is "wide" column oh * Wp + ow, and patch row (c, r, s) of wide
  // column p is padded[c][r * dh][s * dw + p], so every patch row is a
  // contiguous run of the padded input. Columns with ow >= out_w are
  // computed and dropped.
  bool direct;
  int64_t Hp, Wp;
  int64_t cols;  // GEMM columns per (image, group): PQ, or out_h * Wp when direct
};

Geometry geometry(const sparkle_conv2d_desc& d) {
  Geometry g{};
  g.PQ = d.out_h * d.out_w;
  g.cg = d.c / d.groups;
  g.kg = d.k / d.groups;
  g.crs = g.cg * d.r * d.s;
  g.pointwise = d.r == 1 && d.s == 1 && d.stride_h == 1 && d.stride_w == 1 && d.pad_top == 0 &&
                d.pad_left == 0 && d.pad_bottom == 0 && d.pad_right == 0;
  g.Hp = d.h + d.pad_top + d.pad_bottom;
  g.Wp = d.w + d.pad_left + d.pad_right;
  // Only where the dropped columns cost little: Wp <= 1.15 out_w (56, 28 and
  // 14 wide ResNet layers qualify, 7 wide ones do not).
  g.direct = d.r * d.s > 1 && d.stride_h == 1 && d.stride_w == 1 && g.Wp * 20 <= d.out_w * 23;
  g.cols = g.direct ? d.out_h * g.Wp : g.PQ;
  return g;
}

// Writes patch row j (input channel, filter row, filter column) for output
// pixels [p0, p0 + np) into dst.
void patch_row(const sparkle_conv2d_desc& d, const float* xg, int64_t j, int64_t p0, int64_t np,
               float* dst) {
  const int64_t rs = d.r * d.s;
  const int64_t ci = j / rs, r = (j / d.s) % d.r, s = j % d.s;
  const float* xc = xg + ci * d.h * d.w;
  const int64_t Q = d.out_w;
  const int64_t sw = d.stride_w;
  const int64_t off = s * d.dilation_w - d.pad_left;
  // Output columns ow in [first, last) read inside the image.
  const int64_t first = off >= 0 ? 0 : ceil_div(-off, sw);
  const int64_t last = (d.w - 1 - off) >= 0 ? std::min(Q, (d.w - 1 - off) / sw + 1) : 0;
  int64_t oh = p0 / Q, ow = p0 % Q;
  for (int64_t i = 0; i < np; ++oh, ow = 0) {
    const int64_t seg = std::min(Q - ow, np - i);
    float* out = dst + i;
    const int64_t ih = oh * d.stride_h - d.pad_top + r * d.dilation_h;
    if (ih < 0 || ih >= d.h) {
      std::fill(out, out + seg, 0.0f);
    } else {
      const int64_t lo = std::clamp(first - ow, int64_t{0}, seg);
      const int64_t hi = std::clamp(last - ow, lo, seg);
      std::fill(out, out + lo, 0.0f);
      const float* src = xc + ih * d.w + (ow + lo) * sw + off;
      if (sw == 1) {
        std::copy(src, src + (hi - lo), out + lo);
      } else if (sw == 2) {
        for (int64_t t = lo; t < hi; ++t) out[t] = src[(t - lo) * 2];
      } else {
        for (int64_t t = lo; t < hi; ++t) out[t] = src[(t - lo) * sw];
      }
      std::fill(out + hi, out + seg, 0.0f);
    }
    i += seg;
  }
}

// Packs patch rows [j0, j0 + kc) x pixels [p0, p0 + np) as panels of nr
// columns: panel q holds kc rows of nr floats, zero past np.
void pack_block(const sparkle_conv2d_desc& d, const Geometry& g, const float* xg, int64_t j0,
                int64_t kc, int64_t p0, int64_t np, int64_t nr, float* panel, float* row) {
  const int64_t full = np / nr;  // panels with nr valid columns
  const int64_t rest = np - full * nr;
  for (int64_t j = 0; j < kc; ++j) {
    const float* src;
    if (g.pointwise) {
      src = xg + (j0 + j) * g.PQ + p0;
    } else {
      patch_row(d, xg, j0 + j, p0, np, row);
      src = row;
    }
    float* dst = panel + j * nr;
    for (int64_t q = 0; q < full; ++q) std::memcpy(dst + q * kc * nr, src + q * nr, nr * 4);
    if (rest != 0) {
      float* tail = dst + full * kc * nr;
      std::memcpy(tail, src + full * nr, rest * 4);
      std::fill(tail + rest, tail + nr, 0.0f);
    }
  }
}

}  // namespace

Tiling choose_tiling(const sparkle_conv2d_desc& d, const KernelSet& ks, int threads) {
  const Geometry g = geometry(d);
  const int64_t nr = ks.nr, mr = ks.mr;
  Tiling best;
  best.threads = std::max(threads, 1);
  const int64_t blocks = ceil_div(g.crs, kMaxKc);
  best.kc = ceil_div(g.crs, blocks);
  const int64_t nt_cap = std::max(nr, kMaxPanelBytes / (best.kc * 4) / nr * nr);
  const int64_t nt_max = std::min(round_up(g.cols, nr), nt_cap);
  const double pack_cost = g.direct ? 1.0 : 12.0;  // direct: only the output copy
  const int64_t mt_max = round_up(g.kg, mr);
  // Cost of one task in multiply-add units: packing (~12 per float), the
  // micro-kernels (padded to whole tiles) and fixed overheads; the makespan
  // is the number of waves of `threads` tasks times that.
  double best_cost = std::numeric_limits<double>::infinity();
  for (int64_t nt = nr; nt <= nt_max; nt += nr) {
    const int64_t tiles_p = ceil_div(g.cols, nt);
    const int64_t nt_eff = std::min(nt, round_up(ceil_div(g.cols, tiles_p), nr));
    for (int64_t mt = mr; mt <= mt_max; mt += mr) {
      const int64_t tiles_k = ceil_div(g.kg, mt);
      const int64_t mt_eff = round_up(ceil_div(g.kg, tiles_k), mr);
      const int64_t tasks = d.n * d.groups * tiles_p * tiles_k;
      const int64_t waves = ceil_div(tasks, best.threads);
      const double pack = pack_cost * static_cast<double>(nt_eff * best.kc);
      const double compute =
          static_cast<double>(mt_eff / mr) *
          (static_cast<double>(nt_eff / nr) * (static_cast<double>(mr * nr * best.kc) + 300.0) +
           2.0 * static_cast<double>(mr * best.kc));
      const double blocks_d = static_cast<double>(blocks), waves_d = static_cast<double>(waves);
      const double own_cost = waves_d * (blocks_d * (pack + compute) + 5000.0);
      // Shared packing: every (image, group, pixel tile, block) packed once,
      // spread over the threads, plus a parallel phase's overhead.
      const double pack_jobs = static_cast<double>(d.n * d.groups * tiles_p) * blocks_d;
      const double shared_cost = waves_d * (blocks_d * compute + 5000.0) +
                                 std::ceil(pack_jobs / best.threads) * pack + 20000.0;
      const bool shared_fits =
          pack_jobs * static_cast<double>(nt_eff * best.kc) <= kMaxSharedFloats;
      const bool shared = !g.direct && tiles_k > 1 && shared_fits && shared_cost < own_cost;
      const double cost = shared ? shared_cost : own_cost;
      if (cost < best_cost) {
        best_cost = cost;
        best.nt = nt_eff;
        best.mt = std::min(mt_eff, g.kg);
        best.tasks = tasks;
        best.shared_pack = shared;
      }
    }
  }
  return best;
}

void conv2d_gemm(const sparkle_conv2d_desc& d, const KernelSet& ks, const Tiling& tiling,
                 const float* x, const float* w, const float* bias, float* y) {
  const Geometry g = geometry(d);
  const int64_t nr = ks.nr, mr = ks.mr;
  const int64_t tiles_p = ceil_div(g.cols, tiling.nt);
  const int64_t tiles_k = ceil_div(g.kg, tiling.mt);
  const int64_t tasks = d.n * d.groups * tiles_p * tiles_k;
  const float* b = d.has_bias ? bias : nullptr;

  // Direct path: the padded input of every (image, group), with slack for
  // the dropped columns and the last panel, and the offset of each patch row.
  ScratchBuffer<float, 0> padded_lease;
  ScratchBuffer<int64_t, 0> offsets_lease;
  std::vector<float>& padded = padded_lease.get();
  std::vector<int64_t>& offsets = offsets_lease.get();
  const int64_t plane = g.Hp * g.Wp;
  const int64_t per_group = g.cg * plane + nr + (d.s - 1) * d.dilation_w + 1;
  if (g.direct) {
    padded.resize(static_cast<size_t>(d.n * d.groups * per_group));
    offsets.resize(static_cast<size_t>(g.crs));
    for (int64_t j = 0; j < g.crs; ++j) {
      const int64_t c = j / (d.r * d.s), r = (j / d.s) % d.r, s = j % d.s;
      offsets[static_cast<size_t>(j)] = c * plane + r * d.dilation_h * g.Wp + s * d.dilation_w;
    }
    float* pad = padded.data();
    tbb::parallel_for(int64_t{0}, d.n * d.c, [&](int64_t nc) {
      const int64_t n = nc / d.c, c = nc % d.c, grp = c / g.cg;
      float* dst = pad + (n * d.groups + grp) * per_group + (c % g.cg) * plane;
      const float* src = x + nc * d.h * d.w;
      std::fill(dst, dst + d.pad_top * g.Wp, 0.0f);
      dst += d.pad_top * g.Wp;
      for (int64_t ih = 0; ih < d.h; ++ih, dst += g.Wp, src += d.w) {
        std::fill(dst, dst + d.pad_left, 0.0f);
        std::copy(src, src + d.w, dst + d.pad_left);
        std::fill(dst + d.pad_left + d.w, dst + g.Wp, 0.0f);
      }
      std::fill(dst, dst + d.pad_bottom * g.Wp, 0.0f);
      if (c % g.cg == g.cg - 1)
        std::fill(dst + d.pad_bottom * g.Wp, dst + d.pad_bottom * g.Wp + per_group - g.cg * plane,
                  0.0f);
    });
  }
  const float* pad = padded.data();
  const int64_t* offs = offsets.data();

  // Shared packing: block `blk` of pixel tile `tp` of (n, grp) lives at
  // shared + (((n * groups + grp) * tiles_p + tp) * blocks + blk) * slot.
  ScratchBuffer<float, 1> shared_lease;
  std::vector<float>& shared = shared_lease.get();
  const int64_t blocks = ceil_div(g.crs, tiling.kc);
  const int64_t slot = round_up(tiling.nt, nr) * tiling.kc;
  if (tiling.shared_pack) {
    shared.resize(static_cast<size_t>(d.n * d.groups * tiles_p * blocks * slot));
    float* sh = shared.data();
    tbb::parallel_for(int64_t{0}, d.n * d.groups * tiles_p * blocks, [&](int64_t job) {
      thread_local std::vector<float> row;
      const int64_t blk = job % blocks, tp = (job / blocks) % tiles_p;
      const int64_t ng = job / (blocks * tiles_p), n = ng / d.groups, grp = ng % d.groups;
      const int64_t p0 = tp * tiling.nt, np = std::min(tiling.nt, g.cols - p0);
      const int64_t j0 = blk * tiling.kc, kc = std::min(tiling.kc, g.crs - j0);
      row.resize(static_cast<size_t>(round_up(np, nr)));
      pack_block(d, g, x + (n * d.c + grp * g.cg) * d.h * d.w, j0, kc, p0, np, nr, sh + job * slot,
                 row.data());
    });
  }
  const float* sh = shared.data();

  auto run_task = [&](int64_t t) {
    thread_local std::vector<float> panel, row;
    const int64_t tp = t % tiles_p;
    const int64_t tk = (t / tiles_p) % tiles_k;
    const int64_t grp = (t / (tiles_p * tiles_k)) % d.groups;
    const int64_t n = t / (tiles_p * tiles_k * d.groups);
    const int64_t p0 = tp * tiling.nt, np = std::min(tiling.nt, g.cols - p0);
    const int64_t k0 = grp * g.kg + tk * tiling.mt, nk = std::min(tiling.mt, g.kg - tk * tiling.mt);
    const int64_t panels = ceil_div(np, nr);
    const float* xg = x + (n * d.c + grp * g.cg) * d.h * d.w;
    const float* wk = w + k0 * g.crs;

    MicroTile tile{};
    tile.lda = g.crs;
    tile.ldb = nr;
    MicroKernelFn full = ks.full, half = ks.half;
    float* out;  // row 0, column p0 of the tile's output
    if (g.direct) {
      // Accumulate in a local tile, then copy the kept columns to y.
      panel.resize(static_cast<size_t>(round_up(nk, mr) * panels * nr));
      out = panel.data();
      tile.ldc = panels * nr;
      full = ks.full_rows;
      half = ks.half_rows;
    } else if (!tiling.shared_pack) {
      panel.resize(static_cast<size_t>(panels * nr * tiling.kc));
      row.resize(static_cast<size_t>(panels * nr));
      out = y + (n * d.k + k0) * g.PQ + p0;
      tile.ldc = g.PQ;
    } else {
      out = y + (n * d.k + k0) * g.PQ + p0;
      tile.ldc = g.PQ;
    }
    const float* xpad = pad + (n * d.groups + grp) * per_group + p0;

    for (int64_t j0 = 0; j0 < g.crs; j0 += tiling.kc) {
      const int64_t kc = std::min(tiling.kc, g.crs - j0);
      const float* packed = panel.data();
      if (g.direct) {
        tile.boff = offs + j0;
      } else if (tiling.shared_pack) {
        packed = sh + (((n * d.groups + grp) * tiles_p + tp) * blocks + j0 / tiling.kc) * slot;
      } else {
        pack_block(d, g, xg, j0, kc, p0, np, nr, panel.data(), row.data());
      }
      tile.kc = kc;
      tile.first = j0 == 0;
      tile.relu = d.relu != 0 && j0 + kc >= g.crs;
      for (int64_t m0 = 0; m0 < nk; m0 += mr) {
        tile.mr = static_cast<int>(std::min(mr, nk - m0));
        tile.a = wk + m0 * g.crs + j0;
        tile.init = tile.first && b != nullptr ? b + k0 + m0 : nullptr;
        float* om = out + m0 * tile.ldc;
        for (int64_t q = 0; q < panels; ++q) {
          tile.nc = static_cast<int>(std::min(nr, np - q * nr));
          tile.b = g.direct ? xpad + q * nr : packed + q * kc * nr;
          tile.c = om + q * nr;
          (tile.nc <= ks.nr_half ? half : full)(tile);
        }
      }
    }
    if (g.direct) {
      // Wide columns [p0, p0 + np) -> output pixels, dropping ow >= out_w.
      const int64_t Q = d.out_w;
      for (int64_t m = 0; m < nk; ++m) {
        const float* src = out + m * tile.ldc;
        float* dst = y + (n * d.k + k0 + m) * g.PQ;
        int64_t oh = p0 / g.Wp, ow = p0 % g.Wp;
        for (int64_t i = 0; i < np; ++oh, ow = 0) {
          const int64_t seg = std::min(g.Wp - ow, np - i);
          if (ow < Q) std::copy(src + i, src + i + std::min(seg, Q - ow), dst + oh * Q + ow);
          i += seg;
        }
      }
    }
  };

  if (tasks == 1) {
    run_task(0);
    return;
  }
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, tasks, 1),
      [&](const tbb::blocked_range<int64_t>& range) {
        for (int64_t t = range.begin(); t != range.end(); ++t) run_task(t);
      },
      tbb::simple_partitioner());
}

}  // namespace sparkle::cpu
