// Generates conv2d GLSL from the templates and picks a variant per descriptor.
#include "conv2d_kernels.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sparkle/plugin.hpp>
#include <sstream>
#include <utility>
#include <vector>

#include "shader_templates.hpp"

namespace sparkle::opengl {

using plugin::Error;

namespace {

using Defines = std::vector<std::pair<const char*, int64_t>>;

Defines shape_defines(const sparkle_conv2d_desc& d) {
  return {
      {"IN_N", d.n},
      {"IN_C", d.c},
      {"IN_H", d.h},
      {"IN_W", d.w},
      {"OUT_K", d.k},
      {"KER_R", d.r},
      {"KER_S", d.s},
      {"STR_H", d.stride_h},
      {"STR_W", d.stride_w},
      {"PAD_T", d.pad_top},
      {"PAD_L", d.pad_left},
      {"DIL_H", d.dilation_h},
      {"DIL_W", d.dilation_w},
      {"GROUPS", d.groups},
      {"CPG", d.c / d.groups},
      {"KPG", d.k / d.groups},
      {"OUT_H", d.out_h},
      {"OUT_W", d.out_w},
      {"HAS_BIAS", d.has_bias ? 1 : 0},
      {"RELU", d.relu ? 1 : 0},
      {"Y_ELEMS", d.n * d.k * d.out_h * d.out_w},
  };
}

std::string build_source(const char* template_name, const Defines& defines, const GlInfo& info) {
  const char* body = shader_template(template_name);
  if (body == nullptr) {
    throw Error(SPARKLE_INTERNAL, std::string("shader template ") + template_name + " missing");
  }
  std::ostringstream os;
  os << "#version 450\n";
  // No "#pragma optionNV(unroll all)": it also unrolls the reduction loops
  // (hundreds of iterations), and NVIDIA's compiler then takes seconds per
  // kernel. It unrolls the small constant loops of the register block itself.
  (void)info;
  for (const auto& [name, value] : defines) os << "#define " << name << ' ' << value << '\n';
  os << "#line 1\n" << body;
  return os.str();
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool parse_tile(const char* text, TileShape* t) {
  char tail = 0;
  return std::sscanf(text, "%dx%dx%d_%dx%d%c", &t->bm, &t->bn, &t->bk, &t->tm, &t->tn, &tail) == 5;
}

}  // namespace

KernelKind kernel_override() {
  const char* v = std::getenv("SPARKLE_GL_KERNEL");
  if (v == nullptr || *v == '\0' || std::string(v) == "auto") return KernelKind::kAuto;
  if (std::string(v) == "naive") return KernelKind::kNaive;
  if (std::string(v) == "tiled") return KernelKind::kTiled;
  throw Error(SPARKLE_INVALID_ARGUMENT,
              std::string("SPARKLE_GL_KERNEL=") + v + " must be naive, tiled or auto");
}

std::optional<TileShape> tile_override() {
  const char* v = std::getenv("SPARKLE_GL_TILE");
  if (v == nullptr || *v == '\0') return std::nullopt;
  TileShape t;
  if (!parse_tile(v, &t)) {
    throw Error(SPARKLE_INVALID_ARGUMENT,
                std::string("SPARKLE_GL_TILE=") + v + " must look like 128x128x8_8x8");
  }
  return t;
}

std::string index_range_problem(const sparkle_conv2d_desc& d) {
  // The shaders take every size as a #define and compute input coordinates
  // as oy * STR_H - PAD_T + r * DIL_H in 32-bit ints; a literal past 2^31
  // does not compile and a sum past it wraps. 2^30 leaves room for the
  // coordinates of out-of-range tile edges.
  constexpr int64_t kMax = int64_t{1} << 30;
  const std::pair<const char*, int64_t> fields[] = {
      {"stride_h", d.stride_h},     {"stride_w", d.stride_w},  {"dilation_h", d.dilation_h},
      {"dilation_w", d.dilation_w}, {"pad_top", d.pad_top},    {"pad_left", d.pad_left},
      {"pad_bottom", d.pad_bottom}, {"pad_right", d.pad_right}};
  for (const auto& [name, v] : fields)
    if (v > kMax)
      return std::string(name) + "=" + std::to_string(v) +
             " is beyond the OpenGL backend's 32-bit index range (at most 2^30)";
  // Padded extents: each term is at most 2^30 here, and h, w are bounded by
  // the tensor size check, so the sums cannot overflow int64.
  const int64_t padded_h = d.h + d.pad_top + d.pad_bottom,
                padded_w = d.w + d.pad_left + d.pad_right;
  if (padded_h > kMax || padded_w > kMax)
    return "padded input " + std::to_string(padded_h) + "x" + std::to_string(padded_w) +
           " is beyond the OpenGL backend's 32-bit index range (at most 2^30 per side)";
  return {};
}

std::string tile_problem(const TileShape& t, const GlInfo& info) {
  auto fail = [&](const std::string& why) {
    char name[64];
    std::snprintf(name, sizeof name, "tile %dx%dx%d_%dx%d: ", t.bm, t.bn, t.bk, t.tm, t.tn);
    return name + why;
  };
  if ((t.tm != 4 && t.tm != 8) || (t.tn != 4 && t.tn != 8)) return fail("tm and tn must be 4 or 8");
  if (t.bm <= 0 || t.bn <= 0 || t.bk <= 0 || t.bm % t.tm != 0 || t.bn % t.tn != 0) {
    return fail("bm, bn must be multiples of tm, tn");
  }
  const int64_t threads = static_cast<int64_t>(t.bm / t.tm) * (t.bn / t.tn);
  if (threads > info.max_invocations || threads > info.max_size[0]) {
    return fail(std::to_string(threads) + " invocations exceed the device limit");
  }
  const int64_t bn4 = t.bn / 4;
  if (threads % bn4 != 0 || t.bk % (threads / bn4) != 0) {
    return fail("B loader needs invocations % (bn/4) == 0 and bk % (invocations/(bn/4)) == 0");
  }
  if ((static_cast<int64_t>(t.bk) * (t.bm / 4)) % threads != 0 || t.bk * (t.bm / 4) < threads) {
    return fail("A loader needs bk*bm/4 to be a multiple of the invocations");
  }
  const int64_t shared = 2LL * t.bk * (t.bm + t.bn) * 4;
  if (shared > info.max_shared_bytes) {
    return fail(std::to_string(shared) + " bytes of shared memory exceed the device's " +
                std::to_string(info.max_shared_bytes));
  }
  return {};
}

Conv2dKernel make_naive_kernel(const sparkle_conv2d_desc& d, const GlInfo& info) {
  Conv2dKernel k;
  k.local_size = static_cast<uint32_t>(std::min<int64_t>(128, info.max_invocations));
  const int64_t y_elems = d.n * d.k * d.out_h * d.out_w;
  k.total_groups = static_cast<uint64_t>(ceil_div(y_elems, k.local_size));
  Defines defs = shape_defines(d);
  defs.push_back({"LOCAL_SIZE", k.local_size});
  defs.push_back({"TOTAL_GROUPS", static_cast<int64_t>(k.total_groups)});
  k.name = "gl_naive_" + std::to_string(k.local_size);
  k.source = build_source("conv2d_naive.comp", defs, info);
  return k;
}

Conv2dKernel make_tiled_kernel(const sparkle_conv2d_desc& d, const TileShape& t, const GlInfo& info,
                               int split_k) {
  if (auto why = tile_problem(t, info); !why.empty()) throw Error(SPARKLE_UNSUPPORTED, why);
  const int64_t kpg = d.k / d.groups;
  const int64_t ohw = d.out_h * d.out_w;
  const int64_t ncol = d.n * ohw;
  const bool pointwise = d.r == 1 && d.s == 1 && d.stride_h == 1 && d.stride_w == 1 &&
                         d.pad_top == 0 && d.pad_left == 0 && d.pad_bottom == 0 && d.pad_right == 0;
  const bool x_vec4 = pointwise && ohw % 4 == 0;
  const bool y_vec4 = ohw % 4 == 0;

  Conv2dKernel k;
  k.local_size = static_cast<uint32_t>((t.bm / t.tm) * (t.bn / t.tn));
  k.split_k = std::max(1, split_k);
  k.total_groups =
      static_cast<uint64_t>(d.groups * ceil_div(kpg, t.bm) * ceil_div(ncol, t.bn) * k.split_k);
  Defines defs = shape_defines(d);
  if (k.split_k > 1) {
    // Bias and relu belong to the reduce pass.
    for (auto& def : defs) {
      if (std::string(def.first) == "HAS_BIAS" || std::string(def.first) == "RELU") def.second = 0;
    }
    defs.push_back({"SPLIT_K", k.split_k});
  }
  defs.push_back({"BM", t.bm});
  defs.push_back({"BN", t.bn});
  defs.push_back({"BK", t.bk});
  defs.push_back({"TM", t.tm});
  defs.push_back({"TN", t.tn});
  defs.push_back({"POINTWISE", pointwise ? 1 : 0});
  defs.push_back({"X_VEC4", x_vec4 ? 1 : 0});
  defs.push_back({"Y_VEC4", y_vec4 ? 1 : 0});
  defs.push_back({"TOTAL_GROUPS", static_cast<int64_t>(k.total_groups)});
  char name[96];
  std::snprintf(name, sizeof name, "gl_tiled_%dx%dx%d_%dx%d%s%s", t.bm, t.bn, t.bk, t.tm, t.tn,
                pointwise ? "_1x1" : "", y_vec4 ? "_v4" : "");
  k.name = name;
  if (k.split_k > 1) k.name += "_sk" + std::to_string(k.split_k);
  k.source = build_source("conv2d_tiled.comp", defs, info);
  if (k.split_k > 1) {
    const int64_t local = std::min<int64_t>(256, info.max_invocations);
    k.reduce_groups = static_cast<uint64_t>(ceil_div(d.n * d.k * ohw, local));
    Defines rdefs = shape_defines(d);
    rdefs.push_back({"SPLIT_K", k.split_k});
    rdefs.push_back({"LOCAL_SIZE", local});
    rdefs.push_back({"TOTAL_GROUPS", static_cast<int64_t>(k.reduce_groups)});
    k.reduce_name = "gl_splitk_reduce_" + std::to_string(k.split_k);
    k.reduce_source = build_source("conv2d_splitk_reduce.comp", rdefs, info);
  }
  return k;
}

int choose_split_k(const sparkle_conv2d_desc& d, const TileShape& t, const GlInfo& info) {
  const int64_t y_elems = d.n * d.k * d.out_h * d.out_w;
  // The workspace holds split * y floats, indexed with 32-bit ints.
  const int64_t max_split = std::min<int64_t>(
      {64, ((int64_t{1} << 31) - (int64_t{1} << 20)) / std::max<int64_t>(y_elems, 1),
       info.max_ssbo_block_bytes / 4 / std::max<int64_t>(y_elems, 1)});
  if (const char* v = std::getenv("SPARKLE_GL_SPLIT_K"); v != nullptr && *v != '\0') {
    char* end = nullptr;
    const long forced = std::strtol(v, &end, 10);
    if (end == v || *end != '\0' || forced < 1) {
      throw Error(SPARKLE_INVALID_ARGUMENT,
                  std::string("SPARKLE_GL_SPLIT_K=") + v + " must be a positive integer");
    }
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(forced, max_split)));
  }
  if (info.software) return 1;  // a CPU has few cores: the tiles already fill them
  const int64_t kpg = d.k / d.groups, ncol = d.n * d.out_h * d.out_w;
  const int64_t groups = d.groups * ceil_div(kpg, t.bm) * ceil_div(ncol, t.bn);
  const int64_t k_tiles = ceil_div((d.c / d.groups) * d.r * d.s, t.bk);
  const int64_t target = 264;  // see choose_tile
  if (groups >= target / 2) return 1;
  // Each slice keeps at least 16 steps of the reduction.
  const int64_t split = std::min({ceil_div(target, groups), k_tiles / 16, max_split});
  return static_cast<int>(std::max<int64_t>(1, split));
}

std::optional<TileShape> choose_tile(const sparkle_conv2d_desc& d, const GlInfo& info) {
  const int64_t kpg = d.k / d.groups;
  if (kpg < 8) return std::nullopt;  // depthwise-like: most of a tile would be padding
  struct Candidate {
    TileShape t;
    double efficiency;  // relative speed of a full tile, from the register-block size
  };
  static const Candidate kCandidates[] = {
      {{128, 128, 8, 8, 8}, 1.0}, {{128, 64, 8, 8, 8}, 0.9}, {{64, 128, 8, 8, 8}, 0.9},
      {{64, 64, 8, 8, 8}, 0.75},  {{32, 64, 8, 4, 8}, 0.55}, {{32, 32, 8, 4, 4}, 0.4},
  };
  // Work groups needed to fill the device; GL cannot tell the number of
  // cores, so this is a fixed guess for a large GPU (132 SMs x 2).
  const double target_groups = info.software ? 8.0 : 264.0;
  const int64_t ncol = d.n * d.out_h * d.out_w;
  std::optional<TileShape> best;
  double best_score = -1.0;
  for (const auto& c : kCandidates) {
    if (!tile_problem(c.t, info).empty()) continue;
    const int64_t mt = ceil_div(kpg, c.t.bm), nt = ceil_div(ncol, c.t.bn);
    const double useful = static_cast<double>(kpg) * static_cast<double>(ncol) /
                          (static_cast<double>(mt * c.t.bm) * static_cast<double>(nt * c.t.bn));
    const double groups = static_cast<double>(d.groups * mt * nt);
    const double fill = std::min(1.0, groups / target_groups);
    const double score = c.efficiency * useful * fill;
    if (score > best_score) {
      best_score = score;
      best = c.t;
    }
  }
  return best;
}

Conv2dKernel select_kernel(const sparkle_conv2d_desc& d, const GlInfo& info) {
  const KernelKind kind = kernel_override();
  if (kind == KernelKind::kNaive) return make_naive_kernel(d, info);
  if (auto forced = tile_override()) {
    return make_tiled_kernel(d, *forced, info, choose_split_k(d, *forced, info));
  }
  std::optional<TileShape> tile = choose_tile(d, info);
  if (!tile && kind == KernelKind::kTiled) {
    // Forced: the smallest tile that fits, even when it is mostly padding.
    for (TileShape t : {TileShape{32, 32, 8, 4, 4}, TileShape{64, 64, 8, 8, 8}}) {
      if (tile_problem(t, info).empty()) {
        tile = t;
        break;
      }
    }
    if (!tile) throw Error(SPARKLE_UNSUPPORTED, "no tiled kernel fits this device");
  }
  if (!tile) return make_naive_kernel(d, info);
  return make_tiled_kernel(d, *tile, info, choose_split_k(d, *tile, info));
}

}  // namespace sparkle::opengl
