// conv2d as an implicit GEMM, per group g:
//   Y[m, col] = sum_kk A[m, kk] * B[kk, col]
//   m   = output channel within the group   (KPG rows)
//   col = (n, oy, ox) flattened              (NCOL = N*OUT_H*OUT_W columns)
//   kk  = (c, r, s) flattened                (KDIM = CPG*R*S)
// A is the weight tensor as stored (row m of group g is contiguous). B is the
// im2col view of x, gathered on the fly and never materialised. A work group
// computes a BM x BN tile of Y, walking KDIM in steps of BK through
// double-buffered shared memory; each invocation keeps a TM x TN register
// block. The generator prepends #version and the #defines: the shape (see
// conv2d_naive.comp), BM BN BK TM TN, POINTWISE (1x1, stride 1, no padding),
// X_VEC4 (POINTWISE and OUT_H*OUT_W % 4 == 0) and Y_VEC4 (OUT_H*OUT_W % 4 == 0).
// SPLIT_K > 1 splits the reduction over that many work groups per tile (for
// layers with too few tiles to fill the device): slice z writes its partial
// sums to y[z * Y_ELEMS + i] of a workspace, and conv2d_splitk_reduce.comp
// adds them up (the generator then sets HAS_BIAS and RELU to 0 here).
#ifndef SPLIT_K
#define SPLIT_K 1
#endif

#define THR_M (BM / TM)
#define THR_N (BN / TN)
#define NTHREADS (THR_M * THR_N)
#define RM (TM / 4)
#define RN (TN / 4)
#define HW (IN_H * IN_W)
#define OHW (OUT_H * OUT_W)
#define KDIM (CPG * KER_R * KER_S)
#define KRS (KER_R * KER_S)
#define NCOL (IN_N * OHW)
#define M_TILES ((KPG + BM - 1) / BM)
#define N_TILES ((NCOL + BN - 1) / BN)
#define K_TILES ((KDIM + BK - 1) / BK)
#define KT_PER_SLICE ((K_TILES + SPLIT_K - 1) / SPLIT_K)
// Loader layout: a thread loads 4-wide chunks; BN4 chunks make one row of B.
#define BN4 (BN / 4)
#define BM4 (BM / 4)
#define B_ROW_STEP (NTHREADS / BN4)
#define B_PASSES (BK / B_ROW_STEP)
#define A_PASSES ((BK * BM4) / NTHREADS)

layout(local_size_x = NTHREADS) in;

layout(std430, binding = 0) readonly restrict buffer XBuf { float x[]; };
#if X_VEC4
layout(std430, binding = 0) readonly restrict buffer XBuf4 { vec4 x4[]; };
#endif
layout(std430, binding = 1) readonly restrict buffer WBuf { float wt[]; };
#if HAS_BIAS
layout(std430, binding = 2) readonly restrict buffer BiasBuf { float bias[]; };
#endif
#if Y_VEC4
layout(std430, binding = 3) writeonly restrict buffer YBuf4 { vec4 y4[]; };
#else
layout(std430, binding = 3) writeonly restrict buffer YBuf { float y[]; };
#endif

layout(location = 0) uniform uint u_group_offset;

shared vec4 As[2][BK][BM4];  // As[.][kk][m/4]: A transposed, 4 rows per vec4
shared vec4 Bs[2][BK][BN4];  // Bs[.][kk][col/4]

// Per-invocation state (GLSL globals are private to the invocation).
int g_group;
int g_m0;
int g_n0;
vec4 a_reg[A_PASSES];  // prefetched A chunks
vec4 b_reg[B_PASSES];  // prefetched B chunks
// The 4 B columns this invocation loads: offset of (image, group) plane in x
// (-1 when the column is past NCOL) and the top-left input coordinate.
ivec4 b_xoff;
#if !POINTWISE
ivec4 b_iy0;
ivec4 b_ix0;
#endif

void setup_b_columns() {
  int tid = int(gl_LocalInvocationIndex);
  int col0 = g_n0 + (tid % BN4) * 4;
  for (int e = 0; e < 4; ++e) {
    int col = col0 + e;
    int img = col / OHW;
    int p = col - img * OHW;
    int base = img * (IN_C * HW) + g_group * (CPG * HW);
#if POINTWISE
    b_xoff[e] = col < NCOL ? base + p : -1;
#else
    int oy = p / OUT_W;
    int ox = p - oy * OUT_W;
    b_xoff[e] = base;
    // A far-away row makes every bounds test fail for columns past the end.
    b_iy0[e] = col < NCOL ? oy * STR_H - PAD_T : -(1 << 28);
    b_ix0[e] = ox * STR_W - PAD_L;
#endif
  }
}

void load_tile(int k0) {
  int tid = int(gl_LocalInvocationIndex);
  // A: chunk q holds rows 4*(q / BK) .. +3 at column kk = q % BK.
  for (int p = 0; p < A_PASSES; ++p) {
    int q = tid + p * NTHREADS;
    int kk = k0 + q % BK;
    int m = g_m0 + (q / BK) * 4;
    vec4 v = vec4(0.0);
    if (kk < KDIM) {
      int off = (g_group * KPG + m) * KDIM + kk;
      for (int e = 0; e < 4; ++e) {
        if (m + e < KPG) v[e] = wt[off + e * KDIM];
      }
    }
    a_reg[p] = v;
  }
  // B: row kk, 4 consecutive columns.
  for (int p = 0; p < B_PASSES; ++p) {
    int kk = k0 + tid / BN4 + p * B_ROW_STEP;
    vec4 v = vec4(0.0);
    if (kk < KDIM) {
#if POINTWISE
#if X_VEC4
      // OHW % 4 == 0: the 4 columns are consecutive pixels of one image.
      if (b_xoff[0] >= 0) v = x4[(b_xoff[0] + kk * HW) >> 2];
#else
      for (int e = 0; e < 4; ++e) {
        if (b_xoff[e] >= 0) v[e] = x[b_xoff[e] + kk * HW];
      }
#endif
#else
      int c = kk / KRS;
      int rs = kk - c * KRS;
      int r = rs / KER_S;
      int s = rs - r * KER_S;
      int dy = r * DIL_H;
      int dx = s * DIL_W;
      for (int e = 0; e < 4; ++e) {
        int iy = b_iy0[e] + dy;
        int ix = b_ix0[e] + dx;
        if (uint(iy) < uint(IN_H) && uint(ix) < uint(IN_W)) {
          v[e] = x[b_xoff[e] + c * HW + iy * IN_W + ix];
        }
      }
#endif
    }
    b_reg[p] = v;
  }
}

void store_tile(int buf) {
  int tid = int(gl_LocalInvocationIndex);
  for (int p = 0; p < A_PASSES; ++p) {
    int q = tid + p * NTHREADS;
    As[buf][q % BK][q / BK] = a_reg[p];
  }
  for (int p = 0; p < B_PASSES; ++p) {
    Bs[buf][tid / BN4 + p * B_ROW_STEP][tid % BN4] = b_reg[p];
  }
}

void main() {
  uint lin = u_group_offset + gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (lin >= uint(TOTAL_GROUPS)) return;  // uniform per work group
  int ilin = int(lin);
  int nt = ilin % N_TILES;
  int t = ilin / N_TILES;
  int mt = t % M_TILES;
  t /= M_TILES;
  int slice = t % SPLIT_K;
  g_group = t / SPLIT_K;
  int kt_begin = slice * KT_PER_SLICE;
  int kt_count = clamp(K_TILES - kt_begin, 0, KT_PER_SLICE);  // uniform per work group
  g_m0 = mt * BM;
  g_n0 = nt * BN;

  int tid = int(gl_LocalInvocationIndex);
  int tx = tid % THR_N;
  int ty = tid / THR_N;

  // acc[(i * 4 + ii) * RN + j] is row (ty + i*THR_M)*4 + ii, columns
  // (tx + j*THR_N)*4 .. +3 of the tile.
  vec4 acc[TM * RN];
  for (int i = 0; i < TM * RN; ++i) acc[i] = vec4(0.0);

  setup_b_columns();
  if (kt_count > 0) {
    load_tile(kt_begin * BK);
    store_tile(0);
  }
  memoryBarrierShared();
  barrier();

  for (int kt = 0; kt < kt_count; ++kt) {
    int buf = kt & 1;
    bool more = kt + 1 < kt_count;
    if (more) load_tile((kt_begin + kt + 1) * BK);
    for (int kk = 0; kk < BK; ++kk) {
      vec4 a[RM];
      vec4 b[RN];
      for (int i = 0; i < RM; ++i) a[i] = As[buf][kk][ty + i * THR_M];
      for (int j = 0; j < RN; ++j) b[j] = Bs[buf][kk][tx + j * THR_N];
      for (int i = 0; i < RM; ++i) {
        for (int ii = 0; ii < 4; ++ii) {
          for (int j = 0; j < RN; ++j) {
            acc[(i * 4 + ii) * RN + j] = fma(vec4(a[i][ii]), b[j], acc[(i * 4 + ii) * RN + j]);
          }
        }
      }
    }
    // Writing the other buffer is safe: every invocation passed the barrier
    // that ended its last use.
    if (more) store_tile(buf ^ 1);
    memoryBarrierShared();
    barrier();
  }

  int yslice = slice * Y_ELEMS;  // 0 unless SPLIT_K > 1
  for (int j = 0; j < RN; ++j) {
    int col0 = g_n0 + (tx + j * THR_N) * 4;
#if Y_VEC4
    // OHW % 4 == 0: the 4 columns are consecutive pixels of one image.
    if (col0 >= NCOL) continue;
    int img = col0 / OHW;
    int ybase = yslice + img * (OUT_K * OHW) + (col0 - img * OHW);
#else
    ivec4 ybase;
    for (int e = 0; e < 4; ++e) {
      int col = col0 + e;
      int img = col / OHW;
      ybase[e] = col < NCOL ? yslice + img * (OUT_K * OHW) + (col - img * OHW) : -1;
    }
#endif
    for (int i = 0; i < RM; ++i) {
      for (int ii = 0; ii < 4; ++ii) {
        int m = g_m0 + (ty + i * THR_M) * 4 + ii;
        if (m >= KPG) continue;
        int kout = g_group * KPG + m;
        vec4 v = acc[(i * 4 + ii) * RN + j];
#if HAS_BIAS
        v += vec4(bias[kout]);
#endif
#if RELU
        v = max(v, vec4(0.0));
#endif
#if Y_VEC4
        y4[(ybase + kout * OHW) >> 2] = v;
#else
        for (int e = 0; e < 4; ++e) {
          if (ybase[e] >= 0) y[ybase[e] + kout * OHW] = v[e];
        }
#endif
      }
    }
  }
}
