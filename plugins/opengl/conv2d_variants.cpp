// The variant space of the OpenGL backend and its first guess. See
// conv2d_variants.hpp; the model is plugins/common/occupancy_model.hpp.
#include "conv2d_variants.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>

#include "../common/env.hpp"
#include "../common/occupancy_model.hpp"
#include "../common/tile_math.hpp"

namespace sparkle::opengl {

using plugin::Error;

namespace {

enum class Kind { kAuto, kNaive, kTiled, kWinograd };

Kind kernel_kind() {
  const auto v = gpu::env_choice("SPARKLE_GL_KERNEL", {"auto", "naive", "tiled", "winograd"});
  if (!v || *v == "auto") return Kind::kAuto;
  if (*v == "naive") return Kind::kNaive;
  if (*v == "tiled") return Kind::kTiled;
  return Kind::kWinograd;
}

std::optional<TileShape> tile_override() {
  const auto v = gpu::env_string("SPARKLE_GL_TILE");
  if (!v) return std::nullopt;
  TileShape t;
  char tail = 0;
  if (std::sscanf(v->c_str(), "%dx%dx%d_%dx%d%c", &t.bm, &t.bn, &t.bk, &t.tm, &t.tn, &tail) != 5) {
    throw Error(SPARKLE_INVALID_ARGUMENT,
                "SPARKLE_GL_TILE=" + *v + " must look like 128x128x8_8x8 (BMxBNxBK_TMxTN)");
  }
  return t;
}

std::optional<int> split_override() {
  const auto v = gpu::env_int("SPARKLE_GL_SPLIT_K", 1, 1 << 20);
  if (!v) return std::nullopt;
  return static_cast<int>(*v);
}

}  // namespace

void check_variant_environment() {
  (void)kernel_kind();
  (void)tile_override();
  (void)split_override();
}

namespace {

bool same_tile(const TileShape& a, const TileShape& b) {
  return a.bm == b.bm && a.bn == b.bn && a.bk == b.bk && a.tm == b.tm && a.tn == b.tn;
}

// The largest split-K factor whose workspace (split x y floats) still fits
// 32-bit indexing and one storage block.
int max_split(const sparkle_conv2d_desc& d, const GlInfo& info) {
  const int64_t y = std::max<int64_t>(d.n * d.k * d.out_h * d.out_w, 1);
  return static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>({64, kMaxIndexElements / y, info.max_ssbo_block_bytes / 4 / y})));
}

// Work groups that run at once for a config (0 when the device does not
// say), from the same model that ranks the variants.
int64_t slots_for(const sparkle_conv2d_desc& d, const KernelConfig& c, const GlInfo& info,
                  const GlCaps& caps) {
  const plugin::VariantInfo v = describe_kernel(d, c, info, caps);
  sparkle_variant_info cv{};
  cv.work_groups = v.work_groups;
  cv.group_size = v.group_size;
  cv.registers = v.registers;
  return gpu::predict(cv, caps.units).slots;
}

// GEMM configs for d (the convolution's implicit GEMM, or Winograd's
// batched GEMM as a grouped 1x1 convolution), with algo set to `algo`.
std::vector<KernelConfig> gemm_configs(const sparkle_conv2d_desc& d, Algo algo, int wino_m,
                                       const GlInfo& info, const GlCaps& caps) {
  const gpu::GemmShape shape = gpu::implicit_gemm(d);
  const int splits_allowed = max_split(d, info);
  std::vector<KernelConfig> out;
  for (const TileShape& base_tile : candidate_tiles()) {
    // Depthwise-like groups: most of a wide tile would be padding.
    if (shape.m < 8 && base_tile.bm > 32) continue;
    // A tile more than twice the problem along an axis: the half-size tile
    // covers it with less padding.
    if (base_tile.bm > 32 && base_tile.bm / 2 >= shape.m) continue;
    if (base_tile.bn > 32 && base_tile.bn / 2 >= shape.n) continue;
    for (int bk : {8, 16}) {
      // A deeper step halves the barriers; it pays only over a long reduction.
      if (bk == 16 && shape.k < 64) continue;
      TileShape t = base_tile;
      t.bk = bk;
      KernelConfig base;
      base.algo = Algo::kGemm;
      base.tile = t;
      if (!config_problem(d, base, info, caps).empty()) continue;
      base.algo = algo;
      base.wino_m = wino_m;
      const gpu::TileGrid grid = gpu::tile_grid(shape, t.bm, t.bn, t.bk);
      const int64_t groups = shape.batch * grid.tiles();
      // The grid order decides which operand neighbouring groups share in
      // L2; it matters once x is re-read by several row tiles.
      std::vector<bool> orders = {false};
      if (grid.m_tiles >= 4 && grid.n_tiles >= 4) orders.push_back(true);
      std::vector<int> splits = {1};
      int64_t cand[2];
      int ncand = 0;
      KernelConfig plain = base;
      plain.algo = Algo::kGemm;
      gpu::split_k_candidates(groups, grid.k_steps, slots_for(d, plain, info, caps), splits_allowed,
                              8, cand, &ncand);
      for (int i = 0; i < ncand; ++i) splits.push_back(static_cast<int>(cand[i]));
      // Subgroup A holds 2 x tm x bk / subgroup-size values per lane: only
      // with the shallow step, where that stays a few registers.
      std::vector<bool> subgroup = {false};
      plain.subgroup_a = true;
      if (bk == 8 && config_problem(d, plain, info, caps).empty()) subgroup.push_back(true);
      for (bool order : orders) {
        for (int split : splits) {
          for (bool sg : subgroup) {
            KernelConfig c = base;
            c.m_fastest = order;
            c.split_k = split;
            c.subgroup_a = sg;
            KernelConfig check = c;
            check.algo = Algo::kGemm;
            if (config_problem(d, check, info, caps).empty()) out.push_back(c);
          }
        }
      }
    }
  }
  return out;
}

double predicted_cost(const plugin::VariantInfo& v, const GlCaps& caps) {
  sparkle_variant_info cv{};
  cv.work_groups = v.work_groups;
  cv.group_size = v.group_size;
  cv.registers = v.registers;
  cv.flops = v.flops;
  cv.efficiency = v.efficiency;
  return gpu::predict(cv, caps.units).cost;
}

// How many of Winograd's GEMM configs (best predicted first) are offered
// per tile size: the GEMM's own space is searched on the direct layers, so
// a few of its best fits are enough here.
constexpr size_t kWinogradGemms = 3;

std::vector<Variant> full_list(const sparkle_conv2d_desc& d, const GlInfo& info,
                               const GlCaps& caps) {
  std::vector<Variant> out;
  auto add = [&](const KernelConfig& c) {
    Variant v;
    v.config = c;
    v.info = describe_kernel(d, c, info, caps);
    out.push_back(std::move(v));
  };
  add(KernelConfig{});  // naive: handles every descriptor
  for (const KernelConfig& c : gemm_configs(d, Algo::kGemm, 0, info, caps)) add(c);
  if (winograd_applies(d)) {
    for (int m : {2, 4}) {
      const sparkle_conv2d_desc g = winograd_gemm_desc(d, m);
      std::vector<std::pair<double, KernelConfig>> ranked;
      for (const KernelConfig& c : gemm_configs(g, Algo::kWinograd, m, info, caps)) {
        if (!config_problem(d, c, info, caps).empty()) continue;
        ranked.emplace_back(predicted_cost(describe_kernel(d, c, info, caps), caps), c);
      }
      // Stable: equal predictions keep enumeration order, so the list is
      // the same in every process.
      std::stable_sort(ranked.begin(), ranked.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (size_t i = 0; i < ranked.size() && i < kWinogradGemms; ++i) add(ranked[i].second);
    }
  }
  return out;
}

// The first guess: the lowest prediction, but never a subgroup variant
// unless nothing else is left. Those are kept only where they measure
// faster (ggml found shuffles slower than shared memory on NVIDIA), which
// is the tuner's call, not the model's.
void mark_default(std::vector<Variant>* list, const GlCaps& caps) {
  size_t best = list->size();
  double best_cost = 0;
  for (int pass = 0; pass < 2 && best == list->size(); ++pass) {
    for (size_t i = 0; i < list->size(); ++i) {
      if (pass == 0 && (*list)[i].config.subgroup_a) continue;
      const double cost = predicted_cost((*list)[i].info, caps);
      if (best == list->size() || cost < best_cost) best = i, best_cost = cost;
    }
  }
  for (auto& v : *list) v.info.is_default = false;
  if (best < list->size()) (*list)[best].info.is_default = true;
}

}  // namespace

const std::vector<TileShape>& candidate_tiles() {
  // bk is set per variant (8 or 16). Register blocks of 8x8, 8x4/4x8 and 4x4;
  // 64x128_8x4 and 32x128_4x4 have 32 invocations per row, the width
  // subgroup A needs on 32-wide subgroups.
  static const std::vector<TileShape> tiles = {
      {128, 128, 8, 8, 8}, {128, 64, 8, 8, 8}, {64, 128, 8, 8, 8}, {64, 64, 8, 8, 8},
      {128, 64, 8, 4, 8},  {64, 128, 8, 8, 4}, {64, 64, 8, 4, 4},  {32, 128, 8, 4, 4},
      {32, 64, 8, 4, 8},   {64, 32, 8, 8, 4},  {32, 32, 8, 4, 4},
  };
  return tiles;
}

bool kernel_forced() {
  return kernel_kind() != Kind::kAuto || tile_override().has_value() ||
         split_override().has_value();
}

std::vector<Variant> list_variants(const sparkle_conv2d_desc& d, const GlInfo& info,
                                   const GlCaps& caps) {
  const Kind kind = kernel_kind();
  const auto tile = tile_override();
  const auto split = split_override();
  std::vector<Variant> list = full_list(d, info, caps);
  auto keep = [&](auto pred) {
    std::vector<Variant> kept;
    for (auto& v : list)
      if (pred(v)) kept.push_back(v);
    return kept;
  };
  auto single = [&](const KernelConfig& c) {
    if (auto why = config_problem(d, c, info, caps); !why.empty()) {
      throw Error(SPARKLE_UNSUPPORTED, kernel_name(d, c) + ": " + why);
    }
    Variant v;
    v.config = c;
    v.info = describe_kernel(d, c, info, caps);
    return std::vector<Variant>{v};
  };
  if (kind == Kind::kNaive) {
    list = keep([](const Variant& v) { return v.config.algo == Algo::kNaive; });
  } else if (kind == Kind::kTiled) {
    list = keep([](const Variant& v) { return v.config.algo == Algo::kGemm; });
    if (list.empty() && !tile) {
      // Forced: the smallest tile that fits, even when it is mostly padding.
      for (TileShape t : {TileShape{32, 32, 8, 4, 4}, TileShape{64, 64, 8, 8, 8}}) {
        KernelConfig c;
        c.algo = Algo::kGemm;
        c.tile = t;
        if (config_problem(d, c, info, caps).empty()) {
          list = single(c);
          break;
        }
      }
      if (list.empty()) throw Error(SPARKLE_UNSUPPORTED, "no tiled kernel fits this device");
    }
  } else if (kind == Kind::kWinograd && winograd_applies(d)) {
    auto wino = keep([](const Variant& v) { return v.config.algo == Algo::kWinograd; });
    if (!wino.empty()) list = std::move(wino);
  }
  if (tile) {
    auto matching = keep([&](const Variant& v) {
      return v.config.algo != Algo::kNaive && same_tile(v.config.tile, *tile);
    });
    if (matching.empty()) {
      KernelConfig c;
      c.algo = kind == Kind::kWinograd && winograd_applies(d) ? Algo::kWinograd : Algo::kGemm;
      c.wino_m = c.algo == Algo::kWinograd ? 4 : 0;
      c.tile = *tile;
      matching = single(c);
    }
    list = std::move(matching);
  }
  if (split) {
    const sparkle_conv2d_desc& gd = d;
    auto matching = keep([&](const Variant& v) {
      return v.config.algo != Algo::kNaive && v.config.split_k == *split;
    });
    if (matching.empty()) {
      mark_default(&list, caps);
      KernelConfig c = list.front().config;
      for (const auto& v : list)
        if (v.info.is_default) c = v.config;
      if (c.algo != Algo::kNaive) {
        const sparkle_conv2d_desc g =
            c.algo == Algo::kWinograd ? winograd_gemm_desc(d, c.wino_m) : gd;
        c.split_k = std::min(*split, max_split(g, info));
        matching = single(c);
      } else {
        matching = keep([](const Variant& v) { return v.config.algo == Algo::kNaive; });
      }
    }
    list = std::move(matching);
  }
  mark_default(&list, caps);
  return list;
}

}  // namespace sparkle::opengl
