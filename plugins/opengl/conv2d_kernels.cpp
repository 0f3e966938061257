// Generates the GLSL of every pass of a conv2d kernel variant from the
// templates in shaders/: each shape value and parameter becomes a #define,
// so the compiler sees constants and folds the index math.
#include "conv2d_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <utility>

#include "../common/tile_math.hpp"
#include "shader_templates.hpp"

namespace sparkle::opengl {

using gpu::ceil_div;
using plugin::Error;

namespace {

using Defines = std::vector<std::pair<std::string, int64_t>>;

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

void set_define(Defines* defs, const char* name, int64_t value) {
  for (auto& [k, v] : *defs) {
    if (k == name) {
      v = value;
      return;
    }
  }
  defs->emplace_back(name, value);
}

const char* template_text(const char* name) {
  const char* body = shader_template(name);
  if (body == nullptr) {
    throw Error(SPARKLE_INTERNAL, std::string("shader template ") + name + " missing");
  }
  return body;
}

// "#version", extension lines, the #defines, optional included templates,
// then the body. No "#pragma optionNV(unroll all)": it also unrolls the
// reduction loops (hundreds of iterations), and NVIDIA's compiler then takes
// seconds per kernel; it unrolls the small constant loops by itself.
std::string build_source(const char* template_name, const Defines& defines,
                         const std::string& extensions = {},
                         std::initializer_list<const char*> includes = {}) {
  std::ostringstream os;
  os << "#version 450\n" << extensions;
  for (const auto& [name, value] : defines) os << "#define " << name << ' ' << value << '\n';
  for (const char* inc : includes) os << "#line 1\n" << template_text(inc);
  os << "#line 1\n" << template_text(template_name);
  return os.str();
}

// How the GEMM reads B (the im2col view of x).
enum BMode { kGather = 0, kPointwise = 1, kPointwiseStrided = 2 };

BMode b_mode(const sparkle_conv2d_desc& d) {
  const bool no_pad = d.pad_top == 0 && d.pad_left == 0 && d.pad_bottom == 0 && d.pad_right == 0;
  if (d.r != 1 || d.s != 1 || !no_pad) return kGather;
  return d.stride_h == 1 && d.stride_w == 1 ? kPointwise : kPointwiseStrided;
}

// Everything about a GEMM config that follows from it, the descriptor and
// the device.
struct GemmGeometry {
  gpu::GemmShape shape;
  gpu::TileGrid grid;
  int threads = 0;
  int nbuf = 2;
  int64_t shared_bytes = 0;
  bool a_vec4 = false;
  BMode mode = kGather;
  bool x_vec4 = false, y_vec4 = false;
  int a_loads = 0;  // prefetch registers of A (vec4 chunks, or floats with subgroups)
  int b_passes = 0;
  uint64_t groups = 0;  // main pass
};

int64_t stage_bytes(const TileShape& t, bool subgroup_a) {
  const int64_t a = subgroup_a ? 0 : int64_t{t.bm / 4 + 1} * 16;  // padded rows
  return int64_t{t.bk} * (a + int64_t{t.bn / 4} * 16);
}

GemmGeometry gemm_geometry(const sparkle_conv2d_desc& d, const KernelConfig& c,
                           const GlInfo& info) {
  GemmGeometry g;
  const TileShape& t = c.tile;
  g.shape = gpu::implicit_gemm(d);
  g.grid = gpu::tile_grid(g.shape, t.bm, t.bn, t.bk);
  g.threads = (t.bm / std::max(t.tm, 1)) * (t.bn / std::max(t.tn, 1));
  const int64_t stage = stage_bytes(t, c.subgroup_a);
  g.nbuf = 2 * stage <= info.max_shared_bytes ? 2 : 1;
  g.shared_bytes = g.nbuf * stage;
  g.a_vec4 = g.shape.k % 4 == 0;
  g.mode = b_mode(d);
  const int64_t ohw = d.out_h * d.out_w;
  g.x_vec4 = g.mode == kPointwise && ohw % 4 == 0;
  g.y_vec4 = ohw % 4 == 0;
  const int64_t threads = std::max(g.threads, 1);
  if (c.subgroup_a) {
    g.a_loads = 0;
  } else {
    const int64_t chunks = int64_t{t.bm} * t.bk / 4;
    g.a_loads = static_cast<int>(ceil_div(chunks, threads));
  }
  const int64_t rows_per_pass = std::max<int64_t>(threads / std::max(t.bn / 4, 1), 1);
  g.b_passes = static_cast<int>(ceil_div(t.bk, rows_per_pass));
  g.groups = static_cast<uint64_t>(g.shape.batch * g.grid.tiles() * std::max(c.split_k, 1));
  return g;
}

std::string tile_text(const TileShape& t) {
  char name[64];
  std::snprintf(name, sizeof name, "%dx%dx%d_%dx%d", t.bm, t.bn, t.bk, t.tm, t.tn);
  return name;
}

// Problems of a GEMM config on desc d (the convolution itself, or
// Winograd's batched GEMM).
std::string gemm_problem(const sparkle_conv2d_desc& d, const KernelConfig& c, const GlInfo& info,
                         const GlCaps& caps) {
  const TileShape& t = c.tile;
  auto fail = [&](const std::string& why) { return "tile " + tile_text(t) + ": " + why; };
  if ((t.tm != 4 && t.tm != 8) || (t.tn != 4 && t.tn != 8)) return fail("tm and tn must be 4 or 8");
  if (t.bm <= 0 || t.bn <= 0 || t.bk <= 0 || t.bm % t.tm != 0 || t.bn % t.tn != 0) {
    return fail("bm, bn must be multiples of tm, tn");
  }
  if (t.bk % 4 != 0 || t.bk > 64) return fail("bk must be a multiple of 4, at most 64");
  const GemmGeometry g = gemm_geometry(d, c, info);
  if (g.threads > info.max_invocations || g.threads > info.max_size[0]) {
    return fail(std::to_string(g.threads) + " invocations exceed the device limit");
  }
  if (g.threads % (t.bn / 4) != 0) {
    return fail("the B loader needs the invocations to be a multiple of bn/4");
  }
  if (g.shared_bytes > info.max_shared_bytes) {
    return fail(std::to_string(g.shared_bytes) + " bytes of shared memory exceed the device's " +
                std::to_string(info.max_shared_bytes));
  }
  if (c.subgroup_a) {
    const int sg = caps.subgroup_size;
    if (sg <= 0) return fail("the device has no usable subgroup shuffle");
    if ((t.bn / t.tn) % sg != 0) {
      return fail("subgroup A needs bn/tn to be a multiple of the subgroup size " +
                  std::to_string(sg));
    }
    if ((t.tm * t.bk) % sg != 0) {
      return fail("subgroup A needs tm*bk to be a multiple of the subgroup size " +
                  std::to_string(sg));
    }
  }
  if (c.split_k < 1 || c.split_k > 64)
    return "split-K " + std::to_string(c.split_k) + " not in 1..64";
  if (c.split_k > 1) {
    const int64_t elems = c.split_k * d.n * d.k * d.out_h * d.out_w;
    if (elems > kMaxIndexElements || elems * 4 > info.max_ssbo_block_bytes) {
      return "split-K " + std::to_string(c.split_k) + ": a workspace of " + std::to_string(elems) +
             " floats is too large for 32-bit indices or one storage block";
    }
  }
  return {};
}

std::string subgroup_extensions(const GlCaps& caps) {
  if (caps.subgroup_extension == "GL_KHR_shader_subgroup") {
    return "#extension GL_KHR_shader_subgroup_basic : require\n"
           "#extension GL_KHR_shader_subgroup_shuffle : require\n"
           "#define SG_LANE gl_SubgroupInvocationID\n"
           "#define SG_SHUFFLE(v, lane) subgroupShuffle(v, lane)\n";
  }
  return "#extension GL_ARB_shader_ballot : require\n"
         "#define SG_LANE gl_SubGroupInvocationARB\n"
         "#define SG_SHUFFLE(v, lane) readInvocationARB(v, lane)\n";
}

// The GEMM pass (and its split-K sum pass) of config c on d. `out` is
// where the result goes, `workspace` the split-K partial sums.
void add_gemm_passes(const sparkle_conv2d_desc& d, const KernelConfig& c, const GlInfo& info,
                     const GlCaps& caps, Slot x, Slot w, Slot bias, Slot out, Slot workspace,
                     ConvKernel* k) {
  const GemmGeometry g = gemm_geometry(d, c, info);
  const TileShape& t = c.tile;
  Defines defs = shape_defines(d);
  if (c.split_k > 1) {
    // Bias and relu belong to the sum pass.
    set_define(&defs, "HAS_BIAS", 0);
    set_define(&defs, "RELU", 0);
    defs.emplace_back("SPLIT_K", c.split_k);
  }
  defs.emplace_back("BM", t.bm);
  defs.emplace_back("BN", t.bn);
  defs.emplace_back("BK", t.bk);
  defs.emplace_back("TM", t.tm);
  defs.emplace_back("TN", t.tn);
  defs.emplace_back("NBUF", g.nbuf);
  defs.emplace_back("A_VEC4", g.a_vec4 ? 1 : 0);
  defs.emplace_back("B_MODE", g.mode);
  defs.emplace_back("X_VEC4", g.x_vec4 ? 1 : 0);
  defs.emplace_back("Y_VEC4", g.y_vec4 ? 1 : 0);
  defs.emplace_back("M_FASTEST", c.m_fastest ? 1 : 0);
  defs.emplace_back("SUBGROUP_A", c.subgroup_a ? 1 : 0);
  if (c.subgroup_a) defs.emplace_back("SG_SIZE", caps.subgroup_size);
  defs.emplace_back("TOTAL_GROUPS", static_cast<int64_t>(g.groups));
  Pass main;
  KernelConfig plain = c;
  plain.algo = Algo::kGemm;
  main.name = kernel_name(d, plain);
  main.source = build_source("conv2d_gemm.comp", defs,
                             c.subgroup_a ? subgroup_extensions(caps) : std::string());
  main.groups = g.groups;
  const bool bias_here = d.has_bias && c.split_k == 1;
  main.bind[0] = x;
  main.bind[1] = w;
  main.bind[2] = bias_here ? bias : Slot::kNone;
  main.bind[3] = c.split_k > 1 ? workspace : out;
  k->passes.push_back(std::move(main));
  if (c.split_k > 1) {
    const int64_t y_elems = d.n * d.k * d.out_h * d.out_w;
    const int64_t local = std::min<int64_t>(256, info.max_invocations);
    Pass reduce;
    reduce.groups = static_cast<uint64_t>(ceil_div(y_elems, local));
    Defines rdefs = shape_defines(d);
    rdefs.emplace_back("SPLIT_K", c.split_k);
    rdefs.emplace_back("LOCAL_SIZE", local);
    rdefs.emplace_back("TOTAL_GROUPS", static_cast<int64_t>(reduce.groups));
    reduce.name = "gl_splitk_reduce_" + std::to_string(c.split_k);
    reduce.source = build_source("conv2d_splitk_reduce.comp", rdefs);
    reduce.bind[0] = workspace;
    reduce.bind[2] = d.has_bias ? bias : Slot::kNone;
    reduce.bind[3] = out;
    k->passes.push_back(std::move(reduce));
  }
}

// The transforms of Winograd F(m x m, 3x3) built by Toom-Cook from
// interpolation points p and infinity (alpha = m + 2 of them): G evaluates
// the filter at the points (rows 1, p, p^2; infinity: the leading
// coefficient), A^T evaluates the output polynomial (A^T[i][j] = p_j^i),
// and B^T = V^-T for the alpha x alpha evaluation matrix V. For F(4x4,3x3)
// the points are 0, 1, -1, 2, -1/2: against Lavin and Gray's 0, +-1, +-2
// they cut the worst fp32 error relative to sum |x*w| by about 2.5x (1.8e-6
// against 4-6.5e-6 at image borders with 4 channels, measured with a float
// emulation of these passes), which keeps F(4x4) inside the conformance
// bound of 1e-5 (the improvement Barabasz et al., 2020, describe).
// Emitted as GLSL constants WG, WBT, WAT.
std::string winograd_matrices(int m) {
  const std::vector<double> p =
      m == 2 ? std::vector<double>{0, 1, -1} : std::vector<double>{0, 1, -1, 2, -0.5};
  const int a = m + 2;
  // V[j][k] = p_j^k for the finite points, [0 .. 0 1] for infinity.
  std::vector<std::vector<double>> v(a, std::vector<double>(a, 0.0)),
      inv(a, std::vector<double>(a, 0.0));
  for (int j = 0; j < a - 1; ++j)
    for (int k = 0; k < a; ++k) v[j][k] = std::pow(p[j], k);
  v[a - 1][a - 1] = 1;
  for (int i = 0; i < a; ++i) inv[i][i] = 1;
  for (int c = 0; c < a; ++c) {  // Gauss-Jordan with partial pivoting
    int piv = c;
    for (int r = c + 1; r < a; ++r)
      if (std::fabs(v[r][c]) > std::fabs(v[piv][c])) piv = r;
    std::swap(v[c], v[piv]);
    std::swap(inv[c], inv[piv]);
    const double dv = v[c][c];
    for (int k = 0; k < a; ++k) v[c][k] /= dv, inv[c][k] /= dv;
    for (int r = 0; r < a; ++r) {
      if (r == c) continue;
      const double f = v[r][c];
      for (int k = 0; k < a; ++k) v[r][k] -= f * v[c][k], inv[r][k] -= f * inv[c][k];
    }
  }
  auto literal = [](double x) {
    if (std::fabs(x) < 1e-12) x = 0;
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.9g", x);
    std::string s = buf;
    if (s.find_first_of(".e") == std::string::npos) s += ".0";
    return s;
  };
  auto matrix = [&](const char* name, int rows, int cols, auto at) {
    std::string out = "const float " + std::string(name) + "[" + std::to_string(rows) + "][" +
                      std::to_string(cols) + "] = float[" + std::to_string(rows) + "][" +
                      std::to_string(cols) + "](";
    for (int i = 0; i < rows; ++i) {
      out += (i ? ", " : "") + std::string("float[") + std::to_string(cols) + "](";
      for (int j = 0; j < cols; ++j) out += (j ? ", " : "") + literal(at(i, j));
      out += ")";
    }
    return out + ");\n";
  };
  std::string out;
  out += matrix("WG", a, 3,
                [&](int i, int k) { return i < a - 1 ? std::pow(p[i], k) : (k == 2 ? 1.0 : 0.0); });
  out += matrix("WBT", a, a, [&](int i, int j) { return inv[j][i]; });
  out += matrix("WAT", m, a, [&](int i, int j) {
    return j < a - 1 ? std::pow(p[j], i) : (i == m - 1 ? 1.0 : 0.0);
  });
  return out;
}

int64_t winograd_tiles(const sparkle_conv2d_desc& d, int m) {
  return d.n * ceil_div(d.out_h, m) * ceil_div(d.out_w, m);
}

// Registers an invocation of a GEMM config is expected to use: the
// accumulators, one step's operands, the prefetch registers and about 24
// for addresses and loop state (a guess that only orders variants).
uint32_t gemm_registers(const KernelConfig& c, const GemmGeometry& g, int subgroup_size) {
  const TileShape& t = c.tile;
  int64_t r = int64_t{t.tm} * t.tn + t.tm + t.tn + 4 * g.b_passes + 24;
  r += c.subgroup_a && subgroup_size > 0 ? 2 * (t.tm * t.bk) / subgroup_size : 4 * g.a_loads;
  r += g.mode == kGather ? 12 : 4;
  return static_cast<uint32_t>(r);
}

// A guess of the fraction of peak a full device reaches: bigger register
// blocks do more arithmetic per shared-memory load. It only orders the
// variants before they are measured.
double gemm_efficiency(const KernelConfig& c, const GemmGeometry& g) {
  const int block = c.tile.tm * c.tile.tn;
  double e = block >= 64 ? 0.80 : block >= 32 ? 0.68 : 0.50;
  if (c.tile.bk >= 16) e *= 1.03;
  if (g.mode == kGather) e *= 0.92;
  if (!g.a_vec4) e *= 0.95;
  if (c.subgroup_a) e *= 0.90;
  if (g.nbuf == 1) e *= 0.90;
  if (c.split_k > 1) e *= 0.95;
  return e;
}

}  // namespace

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

bool winograd_applies(const sparkle_conv2d_desc& d) {
  return d.r == 3 && d.s == 3 && d.stride_h == 1 && d.stride_w == 1 && d.dilation_h == 1 &&
         d.dilation_w == 1 && d.groups == 1;
}

sparkle_conv2d_desc winograd_gemm_desc(const sparkle_conv2d_desc& d, int m) {
  const int64_t alpha2 = int64_t{m + 2} * (m + 2);
  sparkle_conv2d_desc g = d;
  g.n = 1;
  g.c = alpha2 * d.c;
  g.h = 1;
  g.w = gpu::round_up(winograd_tiles(d, m), 4);
  g.k = alpha2 * d.k;
  g.r = g.s = 1;
  g.stride_h = g.stride_w = 1;
  g.pad_top = g.pad_left = g.pad_bottom = g.pad_right = 0;
  g.dilation_h = g.dilation_w = 1;
  g.groups = alpha2;
  g.has_bias = 0;
  g.relu = 0;
  g.out_h = 1;
  g.out_w = g.w;
  return g;
}

std::string kernel_name(const sparkle_conv2d_desc& d, const KernelConfig& c) {
  if (c.algo == Algo::kNaive) return "gl_naive_128";
  const sparkle_conv2d_desc& g = d;
  std::string name;
  if (c.algo == Algo::kWinograd) {
    name = "gl_wino" + std::to_string(c.wino_m) + "_" + tile_text(c.tile);
  } else {
    name = "gl_tiled_" + tile_text(c.tile);
    const BMode mode = b_mode(g);
    if (mode == kPointwise) name += "_1x1";
    if (mode == kPointwiseStrided) name += "_1x1s";
    if ((g.out_h * g.out_w) % 4 == 0) name += "_v4";
  }
  if (c.m_fastest) name += "_mo";
  if (c.subgroup_a) name += "_sg";
  if (c.split_k > 1) name += "_sk" + std::to_string(c.split_k);
  return name;
}

std::string config_problem(const sparkle_conv2d_desc& d, const KernelConfig& c, const GlInfo& info,
                           const GlCaps& caps) {
  switch (c.algo) {
    case Algo::kNaive:
      return {};
    case Algo::kGemm:
      return gemm_problem(d, c, info, caps);
    case Algo::kWinograd: {
      if (!winograd_applies(d)) return "Winograd needs a 3x3 stride-1 undilated ungrouped layer";
      if (c.wino_m != 2 && c.wino_m != 4) return "Winograd tile must be 2 or 4";
      const sparkle_conv2d_desc g = winograd_gemm_desc(d, c.wino_m);
      const int64_t alpha2 = g.groups;
      for (const int64_t elems : {alpha2 * d.k * d.c, g.c * g.w, g.k * g.w}) {
        if (elems > kMaxIndexElements || elems * 4 > info.max_ssbo_block_bytes) {
          return "Winograd workspace of " + std::to_string(elems) +
                 " floats is too large for 32-bit indices or one storage block";
        }
      }
      KernelConfig inner = c;
      inner.algo = Algo::kGemm;
      return gemm_problem(g, inner, info, caps);
    }
  }
  return "unknown algorithm";
}

ConvKernel generate_kernel(const sparkle_conv2d_desc& d, const KernelConfig& c, const GlInfo& info,
                           const GlCaps& caps) {
  if (auto why = config_problem(d, c, info, caps); !why.empty()) {
    throw Error(SPARKLE_UNSUPPORTED, kernel_name(d, c) + ": " + why);
  }
  ConvKernel k;
  k.name = kernel_name(d, c);
  const Slot bias = d.has_bias ? Slot::kBias : Slot::kNone;
  if (c.algo == Algo::kNaive) {
    const int64_t local = std::min<int64_t>(128, info.max_invocations);
    const int64_t y_elems = d.n * d.k * d.out_h * d.out_w;
    Pass p;
    p.groups = static_cast<uint64_t>(ceil_div(y_elems, local));
    Defines defs = shape_defines(d);
    defs.emplace_back("LOCAL_SIZE", local);
    defs.emplace_back("TOTAL_GROUPS", static_cast<int64_t>(p.groups));
    p.name = "gl_naive_" + std::to_string(local);
    k.name = p.name;
    p.source = build_source("conv2d_naive.comp", defs);
    p.bind[0] = Slot::kX;
    p.bind[1] = Slot::kW;
    p.bind[2] = bias;
    p.bind[3] = Slot::kY;
    k.passes.push_back(std::move(p));
    return k;
  }
  if (c.algo == Algo::kGemm) {
    if (c.split_k > 1) {
      k.workspace_bytes.push_back(static_cast<uint64_t>(c.split_k * d.n * d.k * d.out_h * d.out_w) *
                                  4);
    }
    add_gemm_passes(d, c, info, caps, Slot::kX, Slot::kW, bias, Slot::kY, Slot::kWs0, &k);
    return k;
  }
  // Winograd: filter transform (U = ws0), input transform (V = ws1), the
  // batched GEMM into M (ws2, through ws3 with split-K), output transform.
  const sparkle_conv2d_desc g = winograd_gemm_desc(d, c.wino_m);
  const int64_t p_pad = g.w, tiles = winograd_tiles(d, c.wino_m);
  const int64_t local = std::min<int64_t>(128, info.max_invocations);
  k.workspace_bytes = {static_cast<uint64_t>(g.k * d.c) * 4, static_cast<uint64_t>(g.c * p_pad) * 4,
                       static_cast<uint64_t>(g.k * p_pad) * 4};
  if (c.split_k > 1)
    k.workspace_bytes.push_back(static_cast<uint64_t>(c.split_k * g.k * p_pad) * 4);
  const std::string m = std::to_string(c.wino_m);
  const std::string matrices = winograd_matrices(c.wino_m);
  auto transform = [&](const char* tmpl, const std::string& name, int64_t items, Slot b0, Slot b1,
                       Slot b2, Slot b3) {
    Pass p;
    p.groups = static_cast<uint64_t>(ceil_div(items, local));
    Defines defs = shape_defines(d);
    defs.emplace_back("WINO_M", c.wino_m);
    defs.emplace_back("P_PAD", p_pad);
    defs.emplace_back("LOCAL_SIZE", local);
    defs.emplace_back("TOTAL_GROUPS", static_cast<int64_t>(p.groups));
    p.name = name;
    p.source = build_source(tmpl, defs, matrices, {"winograd_common.glsl"});
    p.bind[0] = b0;
    p.bind[1] = b1;
    p.bind[2] = b2;
    p.bind[3] = b3;
    k.passes.push_back(std::move(p));
  };
  transform("winograd_weights.comp", "gl_wino" + m + "_filter", d.k * d.c, Slot::kNone, Slot::kW,
            Slot::kNone, Slot::kWs0);
  transform("winograd_input.comp", "gl_wino" + m + "_input", d.c * p_pad, Slot::kX, Slot::kNone,
            Slot::kNone, Slot::kWs1);
  KernelConfig inner = c;
  inner.algo = Algo::kGemm;
  add_gemm_passes(g, inner, info, caps, Slot::kWs1, Slot::kWs0, Slot::kNone, Slot::kWs2, Slot::kWs3,
                  &k);
  transform("winograd_output.comp", "gl_wino" + m + "_output", d.k * tiles, Slot::kWs2, Slot::kNone,
            bias, Slot::kY);
  return k;
}

plugin::VariantInfo describe_kernel(const sparkle_conv2d_desc& d, const KernelConfig& c,
                                    const GlInfo& info, const GlCaps& caps) {
  plugin::VariantInfo v;
  v.name = kernel_name(d, c);
  const double y_elems = static_cast<double>(d.n * d.k * d.out_h * d.out_w);
  const double x_elems = static_cast<double>(d.n * d.c * d.h * d.w);
  const double w_elems = static_cast<double>(d.k * (d.c / d.groups) * d.r * d.s);
  if (c.algo == Algo::kNaive) {
    v.family = "naive";
    v.group_size = static_cast<uint32_t>(std::min<int64_t>(128, info.max_invocations));
    v.work_groups = static_cast<uint64_t>(ceil_div(static_cast<int64_t>(y_elems), v.group_size));
    v.registers = 24;
    v.flops = 2.0 * y_elems * static_cast<double>((d.c / d.groups) * d.r * d.s);
    v.bytes = 4.0 * (x_elems + w_elems + y_elems);
    v.efficiency = 0.05;  // no reuse through shared memory or registers
    return v;
  }
  const bool wino = c.algo == Algo::kWinograd;
  const sparkle_conv2d_desc g = wino ? winograd_gemm_desc(d, c.wino_m) : d;
  KernelConfig inner = c;
  inner.algo = Algo::kGemm;
  const GemmGeometry geo = gemm_geometry(g, inner, info);
  const TileShape& t = c.tile;
  v.family = wino ? "winograd" + std::to_string(c.wino_m) : "gemm";
  v.work_groups = geo.groups;
  v.group_size = static_cast<uint32_t>(geo.threads);
  v.shared_bytes = static_cast<uint32_t>(geo.shared_bytes);
  v.registers = gemm_registers(inner, geo, caps.subgroup_size);
  v.passes = 1 + (c.split_k > 1 ? 1 : 0) + (wino ? 3 : 0);
  // Padded tile work: what the device actually executes.
  v.flops =
      2.0 * static_cast<double>(geo.shape.batch) * static_cast<double>(geo.grid.m_tiles * t.bm) *
      static_cast<double>(geo.grid.n_tiles * t.bn) * static_cast<double>(geo.grid.k_steps * t.bk);
  const double gy = static_cast<double>(g.n * g.k * g.out_h * g.out_w);
  v.bytes = 4.0 * (static_cast<double>(g.n * g.c * g.h * g.w) +
                   static_cast<double>(g.k * (g.c / g.groups)) * g.r * g.s + gy);
  if (c.split_k > 1) v.bytes += 4.0 * 2.0 * c.split_k * gy;
  v.efficiency = gemm_efficiency(inner, geo);
  if (wino) {
    const double alpha = c.wino_m + 2;
    const double tiles = static_cast<double>(winograd_tiles(d, c.wino_m));
    // Transforms: two small matrix products per patch, per filter and per
    // output tile; their traffic is the workspaces written and read again.
    v.flops +=
        4.0 * alpha * alpha * alpha *
        (static_cast<double>(d.c) * tiles + static_cast<double>(d.k) * static_cast<double>(d.c) +
         static_cast<double>(d.k) * tiles);
    v.bytes += 4.0 * (x_elems + w_elems + y_elems) + v.bytes;
    // The three transform passes are memory-bound; a guess of what they
    // cost relative to the GEMM.
    v.efficiency *= 0.7;
  }
  return v;
}

}  // namespace sparkle::opengl
