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

#include "scratch.hpp"

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
// Largest padded input copy of the direct path (512 MiB); larger inputs take
// the packed path, whose workspace does not grow with the tensors.
constexpr double kMaxDirectFloats = 128.0 * 1024 * 1024;

// For a >= 0, b > 0. Not (a + b - 1) / b: strides and pads may be near
// 2^62, and the sum would overflow.
int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -ceil_div(-a, b); }

struct Geometry {
  int64_t PQ, cg, kg, crs;
  bool pointwise;  // 1x1, stride 1, no padding: patch rows are input rows
  // The direct path (no patch packing): each input channel is copied once,
  // with its zero padding, as stride_h x stride_w "phase planes" of Hq x Wq
  // (plane (pr, ps) holds input rows pr, pr + sh, ... and columns ps,
  // ps + sw, ...; only phases some filter tap reads are built). Output
  // pixel (oh, ow) is "wide" column oh * Wq + ow, and patch row (c, r, s)
  // of every wide column is then one contiguous run of a plane: tap (r, s)
  // reads input row oh * sh + r * dh - pad_top = (oh + dr) * sh + pr, so
  // plane pr at row oh + dr + top (the same for columns). Columns with
  // ow >= out_w are computed and dropped. Stride 1 is the single-phase case.
  bool direct;
  int64_t Hq, Wq, top, left;
  int64_t phases;      // phase planes built per channel
  int phase_of[4][4];  // plane index of phase (pr, ps), or -1 if unused
  // The batch folded into the columns: one GEMM per group over the pixels
  // of all images (image-major), where PQ is not a whole number of NR-wide
  // panels (7x7 and 14x14 images), so only the last image's tail is padding.
  // The tile is computed locally and copied to each image's part of y.
  bool fold;
  int64_t images;  // GEMMs per group: n, or 1 when folded
  int64_t cols;    // GEMM columns: PQ, n * PQ when folded, out_h * Wq when direct
};

Geometry geometry(const sparkle_conv2d_desc& d, bool allow_direct, int64_t nr = 0) {
  Geometry g{};
  g.PQ = d.out_h * d.out_w;
  g.cg = d.c / d.groups;
  g.kg = d.k / d.groups;
  g.crs = g.cg * d.r * d.s;
  g.pointwise = d.r == 1 && d.s == 1 && d.stride_h == 1 && d.stride_w == 1 && d.pad_top == 0 &&
                d.pad_left == 0 && d.pad_bottom == 0 && d.pad_right == 0;
  const int64_t min_dr = floor_div(-d.pad_top, d.stride_h);
  const int64_t max_dr = floor_div((d.r - 1) * d.dilation_h - d.pad_top, d.stride_h);
  const int64_t min_ds = floor_div(-d.pad_left, d.stride_w);
  const int64_t max_ds = floor_div((d.s - 1) * d.dilation_w - d.pad_left, d.stride_w);
  g.top = std::max<int64_t>(0, -min_dr);
  g.left = std::max<int64_t>(0, -min_ds);
  // In double first: with padding and dilation near 2^62 the plane sizes
  // leave int64, and the direct path is off for them anyway (below).
  const double hq =
      static_cast<double>(d.out_h) + static_cast<double>(max_dr) + static_cast<double>(g.top);
  const double wq =
      static_cast<double>(d.out_w) + static_cast<double>(max_ds) + static_cast<double>(g.left);
  // Only where the dropped columns cost little, Wq <= 1.15 out_w (ResNet's
  // 56, 28 and 14 wide layers and conv1 qualify, 7 wide 3x3 ones do not).
  // Strided layers only when im2col would gather each input element at
  // least 4 times (r * s >= 4 * sh * sw: conv1's 7x7 stride 2 does it ~12
  // times): in paired runs on the 2-core machine, 1x1 and 3x3 stride 2
  // were 7-20% slower direct than packed, conv1 2-4% faster.
  const bool strided = d.stride_h > 1 || d.stride_w > 1;
  // The phase planes are a padded copy of the input: their size follows the
  // padding and the dilated filter, not the work. A 1x4x4x8 output with
  // dilation 5e7 once made them 6 GB. They are used only while they stay
  // within a small multiple of the input and output (ResNet layers need
  // about 1.3x the input) and below kMaxDirectFloats; beyond that the packed
  // path's workspace is a few panels per thread whatever the shape.
  // At most one plane per stride phase a filter tap reads.
  const double phases = std::min(static_cast<double>(d.stride_h) * static_cast<double>(d.stride_w),
                                 static_cast<double>(d.r * d.s));
  const double direct_floats = hq * wq * phases * static_cast<double>(d.n * d.c);
  const double tensor_floats =
      static_cast<double>(d.n) * static_cast<double>(d.c * d.h * d.w) +
      static_cast<double>(d.n) * static_cast<double>(d.k) * static_cast<double>(d.out_h * d.out_w);
  const bool direct_fits =
      direct_floats <= 2.0 * tensor_floats + 65536.0 && direct_floats <= kMaxDirectFloats;
  g.direct = allow_direct && !g.pointwise && d.stride_h <= 4 && d.stride_w <= 4 &&
             (!strided || d.r * d.s >= 4 * d.stride_h * d.stride_w) &&
             wq * 20 <= static_cast<double>(d.out_w) * 23 && direct_fits;
  if (g.direct) {
    g.Hq = static_cast<int64_t>(hq);
    g.Wq = static_cast<int64_t>(wq);
  }
  for (auto& row : g.phase_of)
    for (int& p : row) p = -1;
  if (g.direct) {
    for (int64_t r = 0; r < d.r; ++r)
      for (int64_t t = 0; t < d.s; ++t) {
        const int64_t er = r * d.dilation_h - d.pad_top, es = t * d.dilation_w - d.pad_left;
        const int64_t pr = er - floor_div(er, d.stride_h) * d.stride_h;
        const int64_t ps = es - floor_div(es, d.stride_w) * d.stride_w;
        if (g.phase_of[pr][ps] < 0) g.phase_of[pr][ps] = static_cast<int>(g.phases++);
      }
  }
  g.fold = !g.direct && nr > 0 && d.n > 1 && g.PQ % nr != 0;
  g.images = g.fold ? 1 : d.n;
  g.cols = g.direct ? d.out_h * g.Wq : g.fold ? d.n * g.PQ : g.PQ;
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
// Columns are pixels of one image, or with g.fold image-major pixels of
// all images (xg is then image 0's group base; images are c*h*w apart).
void pack_block(const sparkle_conv2d_desc& d, const Geometry& g, const float* xg, int64_t j0,
                int64_t kc, int64_t p0, int64_t np, int64_t nr, float* panel, float* row) {
  const int64_t full = np / nr;  // panels with nr valid columns
  const int64_t rest = np - full * nr;
  const int64_t image = d.c * d.h * d.w;
  const bool one_image = p0 / g.PQ == (p0 + np - 1) / g.PQ;
  for (int64_t j = 0; j < kc; ++j) {
    const float* src = row;
    if (one_image) {
      const float* xi = xg + (p0 / g.PQ) * image;
      if (g.pointwise) {
        src = xi + (j0 + j) * g.PQ + p0 % g.PQ;
      } else {
        patch_row(d, xi, j0 + j, p0 % g.PQ, np, row);
      }
    } else {
      for (int64_t i = 0; i < np;) {
        const int64_t col = p0 + i, pi = col % g.PQ, seg = std::min(g.PQ - pi, np - i);
        const float* xi = xg + (col / g.PQ) * image;
        if (g.pointwise) {
          std::copy(xi + (j0 + j) * g.PQ + pi, xi + (j0 + j) * g.PQ + pi + seg, row + i);
        } else {
          patch_row(d, xi, j0 + j, pi, seg, row + i);
        }
        i += seg;
      }
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

Tiling choose_tiling(const sparkle_conv2d_desc& d, const KernelSet& ks, int threads,
                     Orientation orientation) {
  const Geometry g = geometry(d, true, ks.nr);
  const int64_t nr = ks.nr, mr = ks.mr;
  const int64_t blocks = ceil_div(g.crs, kMaxKc);
  const int64_t kc = ceil_div(g.crs, blocks);
  const double blocks_d = static_cast<double>(blocks);
  threads = std::max(threads, 1);

  // The GEMM a task tiles: `cols` pixel columns in micro-tiles of col_unit,
  // the group's kg channels in micro-tiles of row_unit, `images` GEMMs per
  // group. Pixel vectors: columns of NR, rows of MR; channel vectors: the
  // other way round.
  struct Shape {
    int64_t cols, col_unit, row_unit, images;
    double pack_cost;  // per packed float, in multiply-add units (~12; direct: 1, the output copy)
    bool shareable;    // patches may be packed once for all tasks of a pixel tile
  };
  // Cost of one task in multiply-add units: packing, the micro-kernels
  // (padded to whole tiles) and fixed overheads; the makespan is the
  // number of waves of `threads` tasks times that.
  auto search = [&](const Shape& sh) {
    Tiling best;
    best.threads = threads;
    best.kc = kc;
    const int64_t nt_cap =
        std::max(sh.col_unit, kMaxPanelBytes / (kc * 4) / sh.col_unit * sh.col_unit);
    const int64_t nt_max = std::min(round_up(sh.cols, sh.col_unit), nt_cap);
    const int64_t mt_max = round_up(g.kg, sh.row_unit);
    double best_cost = std::numeric_limits<double>::infinity();
    for (int64_t nt = sh.col_unit; nt <= nt_max; nt += sh.col_unit) {
      const int64_t tiles_p = ceil_div(sh.cols, nt);
      const int64_t nt_eff = std::min(nt, round_up(ceil_div(sh.cols, tiles_p), sh.col_unit));
      for (int64_t mt = sh.row_unit; mt <= mt_max; mt += sh.row_unit) {
        const int64_t tiles_k = ceil_div(g.kg, mt);
        const int64_t mt_eff = round_up(ceil_div(g.kg, tiles_k), sh.row_unit);
        const int64_t tasks = sh.images * d.groups * tiles_p * tiles_k;
        const double waves = static_cast<double>(ceil_div(tasks, threads));
        const double pack = sh.pack_cost * static_cast<double>(nt_eff * kc);
        const int64_t row_tiles = mt_eff / sh.row_unit, col_tiles = nt_eff / sh.col_unit;  // exact
        const double compute =
            static_cast<double>(row_tiles) *
            (static_cast<double>(col_tiles) * (static_cast<double>(mr * nr * kc) + 300.0) +
             2.0 * static_cast<double>(sh.row_unit * kc));
        const double own_cost = waves * (blocks_d * (pack + compute) + 5000.0);
        // Shared packing: every (image, group, pixel tile, block) packed
        // once, spread over the threads, plus a parallel phase's overhead.
        const double pack_jobs = static_cast<double>(sh.images * d.groups * tiles_p) * blocks_d;
        const double shared_cost =
            waves * (blocks_d * compute + 5000.0) + std::ceil(pack_jobs / threads) * pack + 20000.0;
        const bool shared_fits = pack_jobs * static_cast<double>(nt_eff * kc) <= kMaxSharedFloats;
        const bool shared = sh.shareable && tiles_k > 1 && shared_fits && shared_cost < own_cost;
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
  };

  if (orientation == Orientation::channels) {
    // Tasks of nt pixels (MR per micro-tile) x mt channels (NR per
    // micro-tile), patches packed per task (im2col; never direct).
    Tiling t = search({g.PQ, mr, nr, d.n, 12.0, false});
    t.kvec = true;
    return t;
  }
  Tiling t = search({g.cols, nr, mr, g.images, g.direct ? 1.0 : 12.0, !g.direct});
  t.direct = g.direct;
  return t;
}

size_t packed_weight_floats(const sparkle_conv2d_desc& d, const KernelSet& ks, bool kvec) {
  const Geometry g = geometry(d, false);
  const int64_t block = kvec ? ks.nr : ks.mr;
  return static_cast<size_t>(d.groups * ceil_div(g.kg, block) * g.crs * block);
}

void pack_weights(const sparkle_conv2d_desc& d, const KernelSet& ks, bool kvec, const float* w,
                  float* out) {
  const Geometry g = geometry(d, false);
  const int64_t block = kvec ? ks.nr : ks.mr, blocks = ceil_div(g.kg, block);
  tbb::parallel_for(int64_t{0}, d.groups * blocks, [&](int64_t gb) {
    const int64_t grp = gb / blocks, k0 = (gb % blocks) * block;
    const int64_t rows = std::min(block, g.kg - k0);
    const float* src = w + (grp * g.kg + k0) * g.crs;
    float* dst = out + gb * g.crs * block;
    for (int64_t j = 0; j < g.crs; ++j) {
      for (int64_t m = 0; m < rows; ++m) dst[j * block + m] = src[m * g.crs + j];
      for (int64_t m = rows; m < block; ++m) dst[j * block + m] = 0.0f;
    }
  });
}

void conv2d_gemm(const sparkle_conv2d_desc& d, const KernelSet& ks, const Tiling& tiling,
                 const float* x, const float* w, const float* wpacked, const float* bias,
                 float* y) {
  const int64_t nr = ks.nr, mr = ks.mr;
  const Geometry g = geometry(d, tiling.direct, nr);
  // Channel-vectorised tasks tile the output pixels, never wide columns.
  const int64_t tiles_p = ceil_div(tiling.kvec ? g.PQ : g.cols, tiling.nt);
  const int64_t tiles_k = ceil_div(g.kg, tiling.mt);
  const int64_t tasks = (tiling.kvec ? d.n : g.images) * d.groups * tiles_p * tiles_k;
  const float* b = d.has_bias ? bias : nullptr;
  const int64_t mblocks = ceil_div(g.kg, mr);

  // Direct path: the padded input of every (image, group), with slack for
  // the dropped columns and the last panel, and the offset of each patch row.
  ScratchBuffer<float, 0> padded_lease;
  ScratchBuffer<int64_t, 0> offsets_lease;
  std::vector<float>& padded = padded_lease.get();
  std::vector<int64_t>& offsets = offsets_lease.get();
  const int64_t plane = g.Hq * g.Wq;
  const int64_t per_channel = g.phases * plane;
  // Slack past the last plane: the last panel of wide columns may read up
  // to one plane row plus a panel beyond it (those columns are dropped).
  const int64_t per_group = g.cg * per_channel + g.Wq + 2 * nr;
  if (g.direct && !tiling.kvec) {
    padded.resize(static_cast<size_t>(d.n * d.groups * per_group));
    offsets.resize(static_cast<size_t>(g.crs));
    for (int64_t j = 0; j < g.crs; ++j) {
      const int64_t c = j / (d.r * d.s), r = (j / d.s) % d.r, t = j % d.s;
      const int64_t er = r * d.dilation_h - d.pad_top, es = t * d.dilation_w - d.pad_left;
      const int64_t dr = floor_div(er, d.stride_h), ds = floor_div(es, d.stride_w);
      const int64_t pr = er - dr * d.stride_h, ps = es - ds * d.stride_w;
      offsets[static_cast<size_t>(j)] =
          c * per_channel + g.phase_of[pr][ps] * plane + (dr + g.top) * g.Wq + (ds + g.left);
    }
    float* pad = padded.data();
    tbb::parallel_for(int64_t{0}, d.n * d.c, [&](int64_t nc) {
      const int64_t n = nc / d.c, c = nc % d.c, grp = c / g.cg;
      float* group_base = pad + (n * d.groups + grp) * per_group;
      const float* src = x + nc * d.h * d.w;
      for (int64_t pr = 0; pr < d.stride_h; ++pr)
        for (int64_t ps = 0; ps < d.stride_w; ++ps) {
          if (g.phase_of[pr][ps] < 0) continue;
          float* dst = group_base + (c % g.cg) * per_channel + g.phase_of[pr][ps] * plane;
          // Plane column jq holds input column (jq - left) * sw + ps.
          for (int64_t i = 0; i < g.Hq; ++i, dst += g.Wq) {
            const int64_t ih = (i - g.top) * d.stride_h + pr;
            if (ih < 0 || ih >= d.h) {
              std::fill(dst, dst + g.Wq, 0.0f);
              continue;
            }
            const float* row = src + ih * d.w;
            if (d.stride_w == 1) {
              // Columns [left - ps, left - ps + w) hold the row.
              const int64_t first = g.left - ps;
              const int64_t a = std::clamp<int64_t>(first, 0, g.Wq);
              const int64_t b = std::clamp<int64_t>(first + d.w, a, g.Wq);
              std::fill(dst, dst + a, 0.0f);
              std::copy(row + (a - first), row + (b - first), dst + a);
              std::fill(dst + b, dst + g.Wq, 0.0f);
            } else {
              for (int64_t jq = 0; jq < g.Wq; ++jq) {
                const int64_t iw = (jq - g.left) * d.stride_w + ps;
                dst[jq] = iw >= 0 && iw < d.w ? row[iw] : 0.0f;
              }
            }
          }
        }
      if (c % g.cg == g.cg - 1) {
        float* slack = group_base + g.cg * per_channel;
        std::fill(slack, group_base + per_group, 0.0f);
      }
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
    shared.resize(static_cast<size_t>(g.images * d.groups * tiles_p * blocks * slot));
    float* sh = shared.data();
    tbb::parallel_for(int64_t{0}, g.images * d.groups * tiles_p * blocks, [&](int64_t job) {
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
    thread_local std::vector<float> panel, row, local;
    const int64_t tp = t % tiles_p;
    const int64_t tk = (t / tiles_p) % tiles_k;
    const int64_t grp = (t / (tiles_p * tiles_k)) % d.groups;
    const int64_t n = t / (tiles_p * tiles_k * d.groups);  // 0 when folded
    const int64_t p0 = tp * tiling.nt, np = std::min(tiling.nt, g.cols - p0);
    const int64_t k0 = grp * g.kg + tk * tiling.mt, nk = std::min(tiling.mt, g.kg - tk * tiling.mt);
    const int64_t panels = ceil_div(np, nr);
    const float* xg = x + (n * d.c + grp * g.cg) * d.h * d.w;
    const float* wk = w + k0 * g.crs;

    MicroTile tile{};
    tile.lda = g.crs;
    tile.ldb = nr;
    MicroKernelFn full = ks.full, half = ks.half;
    if (wpacked != nullptr) full = ks.packed.full, half = ks.packed.half;
    float* out;  // row 0, column p0 of the tile's output
    if (g.direct) {
      // Accumulate in a local tile, then copy the kept columns to y.
      panel.resize(static_cast<size_t>(round_up(nk, mr) * panels * nr));
      out = panel.data();
      tile.ldc = panels * nr;
      full = wpacked != nullptr ? ks.packed.full_rows : ks.full_rows;
      half = wpacked != nullptr ? ks.packed.half_rows : ks.half_rows;
    } else {
      if (!tiling.shared_pack) {
        panel.resize(static_cast<size_t>(panels * nr * tiling.kc));
        row.resize(static_cast<size_t>(panels * nr));
      }
      if (g.fold) {
        // Columns span images: accumulate locally, copy out per image below.
        local.resize(static_cast<size_t>(round_up(nk, mr) * panels * nr));
        out = local.data();
        tile.ldc = panels * nr;
      } else {
        out = y + (n * d.k + k0) * g.PQ + p0;
        tile.ldc = g.PQ;
      }
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
        tile.a = wpacked != nullptr
                     ? wpacked + ((grp * mblocks + (k0 - grp * g.kg + m0) / mr) * g.crs + j0) * mr
                     : wk + m0 * g.crs + j0;
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
    if (g.fold) {
      // Image-major columns [p0, p0 + np) -> each image's y.
      for (int64_t m = 0; m < nk; ++m) {
        const float* src = out + m * tile.ldc;
        for (int64_t i = 0; i < np;) {
          const int64_t col = p0 + i, img = col / g.PQ, pi = col % g.PQ;
          const int64_t seg = std::min(g.PQ - pi, np - i);
          std::copy(src + i, src + i + seg, y + (img * d.k + k0 + m) * g.PQ + pi);
          i += seg;
        }
      }
    }
    if (g.direct) {
      // Wide columns [p0, p0 + np) -> output pixels, dropping ow >= out_w.
      const int64_t Q = d.out_w;
      for (int64_t m = 0; m < nk; ++m) {
        const float* src = out + m * tile.ldc;
        float* dst = y + (n * d.k + k0 + m) * g.PQ;
        int64_t oh = p0 / g.Wq, ow = p0 % g.Wq;
        for (int64_t i = 0; i < np; ++oh, ow = 0) {
          const int64_t seg = std::min(g.Wq - ow, np - i);
          if (ow < Q) std::copy(src + i, src + i + std::min(seg, Q - ow), dst + oh * Q + ow);
          i += seg;
        }
      }
    }
  };

  // Channel-vectorised tasks: patches packed as micro-panels of MR pixels
  // (mr floats per reduction step), weights pre-packed in panels of NR
  // channels; the kernels store transposed into NCHW y.
  auto run_task_kvec = [&](int64_t t) {
    thread_local std::vector<float> panel, row;
    const int64_t tp = t % tiles_p;
    const int64_t tk = (t / tiles_p) % tiles_k;
    const int64_t grp = (t / (tiles_p * tiles_k)) % d.groups;
    const int64_t n = t / (tiles_p * tiles_k * d.groups);
    const int64_t p0 = tp * tiling.nt, np = std::min(tiling.nt, g.PQ - p0);
    const int64_t k0 = tk * tiling.mt, nk = std::min(tiling.mt, g.kg - k0);
    const int64_t pblocks = ceil_div(np, mr);
    const int64_t kblocks = ceil_div(g.kg, nr);
    const float* xg = x + (n * d.c + grp * g.cg) * d.h * d.w;
    panel.resize(static_cast<size_t>(pblocks * mr * tiling.kc));
    row.resize(static_cast<size_t>(pblocks * mr));
    MicroTile tile{};
    tile.ldb = nr;
    tile.ldc = g.PQ;
    for (int64_t j0 = 0; j0 < g.crs; j0 += tiling.kc) {
      const int64_t kc = std::min(tiling.kc, g.crs - j0);
      for (int64_t j = 0; j < kc; ++j) {
        const float* src;
        if (g.pointwise) {
          src = xg + (j0 + j) * g.PQ + p0;
        } else {
          patch_row(d, xg, j0 + j, p0, np, row.data());
          src = row.data();
        }
        float* dst = panel.data() + j * mr;
        for (int64_t pb = 0; pb < pblocks; ++pb, dst += kc * mr) {
          const int64_t valid = std::min(mr, np - pb * mr);
          for (int64_t m = 0; m < valid; ++m) dst[m] = src[pb * mr + m];
          for (int64_t m = valid; m < mr; ++m) dst[m] = 0.0f;
        }
      }
      tile.kc = kc;
      tile.first = j0 == 0;
      tile.relu = d.relu != 0 && j0 + kc >= g.crs;
      for (int64_t c0 = 0; c0 < nk; c0 += nr) {
        const int64_t kabs = grp * g.kg + k0 + c0;
        tile.nc = static_cast<int>(std::min(nr, nk - c0));
        tile.b = wpacked + ((grp * kblocks + (k0 + c0) / nr) * g.crs + j0) * nr;
        tile.init = tile.first && b != nullptr ? b + kabs : nullptr;
        const MicroKernelFn fn = tile.nc <= ks.nr_half ? ks.trans.half : ks.trans.full;
        float* yk = y + (n * d.k + kabs) * g.PQ + p0;
        for (int64_t pb = 0; pb < pblocks; ++pb) {
          tile.mr = static_cast<int>(std::min(mr, np - pb * mr));
          tile.a = panel.data() + pb * kc * mr;
          tile.c = yk + pb * mr;
          fn(tile);
        }
      }
    }
  };
  // One task per TBB job: tasks are sized by the cost model already.
  auto run_all = [&](auto&& task) {
    if (tasks == 1) {
      task(0);
      return;
    }
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, tasks, 1),
        [&](const tbb::blocked_range<int64_t>& range) {
          for (int64_t t = range.begin(); t != range.end(); ++t) task(t);
        },
        tbb::simple_partitioner());
  };
  if (tiling.kvec)
    run_all(run_task_kvec);
  else
    run_all(run_task);
}

}  // namespace sparkle::cpu
