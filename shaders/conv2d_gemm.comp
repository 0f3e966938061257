// conv2d as an implicit GEMM, per group g:
//   Y[m, col] = sum_kk A[m, kk] * B[kk, col]
//   m   = output channel within the group   (KPG rows)
//   col = (n, oy, ox) flattened              (NCOL = N*OUT_H*OUT_W columns)
//   kk  = (c, r, s) flattened                (KDIM = CPG*R*S)
// A is the weight tensor as stored (row m of group g is contiguous). B is the
// im2col view of x, gathered on the fly and never materialised. A work group
// computes a BM x BN tile of Y, walking KDIM in steps of BK through shared
// memory (NBUF = 2: double-buffered, the next step's global loads overlap
// this step's arithmetic); each invocation keeps a TM x TN register block.
//
// The generator (plugins/opengl/conv2d_kernels.cpp) prepends #version, the
// shape (see conv2d_naive.comp) and these #defines:
//   BM BN BK TM TN NBUF   tile, register block, shared-memory buffers
//   A_VEC4      KDIM % 4 == 0: each A chunk is 4 consecutive kk of one row,
//               loaded as one vec4 (else 4 rows of one kk, scalar loads)
//   B_MODE      0: general im2col gather; 1: 1x1, stride 1, no padding;
//               2: 1x1, no padding, any stride (no bounds tests)
//   X_VEC4      B_MODE 1 and OUT_H*OUT_W % 4 == 0: B chunks load as vec4
//   Y_VEC4      OUT_H*OUT_W % 4 == 0: y stores as vec4
//   M_FASTEST   grid order: consecutive work groups share a B tile (and run
//               at the same time, so x is read from DRAM about once) rather
//               than an A tile
//   SPLIT_K     > 1: the reduction is split over that many work groups per
//               tile; slice z writes partial sums to y[z * Y_ELEMS + i] of a
//               workspace and conv2d_splitk_reduce.comp adds them (the
//               generator then sets HAS_BIAS and RELU to 0 here)
//   SUBGROUP_A  A is never staged in shared memory: each subgroup (one row
//               of invocations, THR_N % SG_SIZE == 0) loads its TM x BK
//               block of A into registers spread over its lanes and
//               broadcasts each value when it is needed (SG_SHUFFLE).
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
// Exact fits drop the bounds tests (constant-folded by the compiler).
#define M_EXACT ((KPG % BM) == 0)
#define N_EXACT ((NCOL % BN) == 0)
#define K_EXACT ((KDIM % BK) == 0)
#define BN4 (BN / 4)
#define BM4 (BM / 4)
// One vec4 of padding per row of A in shared memory: the A loader writes
// down a column, and unpadded rows of BM floats would put every write of a
// warp in the same bank.
#define AS_ROW (BM4 + 1)
// B loader: a chunk is 4 consecutive columns of one reduction row.
#define B_ROWS_PER_PASS (NTHREADS / BN4)
#define B_PASSES ((BK + B_ROWS_PER_PASS - 1) / B_ROWS_PER_PASS)
#if SUBGROUP_A
#define A_SG ((TM * BK) / SG_SIZE)  // A values held per lane
#elif A_VEC4
#define A_CHUNKS (BM * (BK / 4))
#define A_PASSES ((A_CHUNKS + NTHREADS - 1) / NTHREADS)
#else
#define A_CHUNKS (BK * BM4)
#define A_PASSES ((A_CHUNKS + NTHREADS - 1) / NTHREADS)
#endif

layout(local_size_x = NTHREADS) in;

layout(std430, binding = 0) readonly restrict buffer XBuf { float x[]; };
#if X_VEC4
layout(std430, binding = 0) readonly restrict buffer XBuf4 { vec4 x4[]; };
#endif
layout(std430, binding = 1) readonly restrict buffer WBuf { float wt[]; };
#if A_VEC4 && !SUBGROUP_A
layout(std430, binding = 1) readonly restrict buffer WBuf4 { vec4 wt4[]; };
#endif
#if HAS_BIAS
layout(std430, binding = 2) readonly restrict buffer BiasBuf { float bias[]; };
#endif
#if Y_VEC4
layout(std430, binding = 3) writeonly restrict buffer YBuf4 { vec4 y4[]; };
#else
layout(std430, binding = 3) writeonly restrict buffer YBuf { float y[]; };
#endif

layout(location = 0) uniform uint u_group_offset;

#if !SUBGROUP_A
shared vec4 As[NBUF][BK][AS_ROW];  // As[.][kk][m/4]: A transposed, 4 rows per vec4
#endif
shared vec4 Bs[NBUF][BK][BN4];  // Bs[.][kk][col/4]

// Per-invocation state (GLSL globals are private to the invocation).
int g_group;
int g_m0;
int g_n0;
int g_tx;
int g_ty;
#if SUBGROUP_A
float a_sg[A_SG];       // this step's A values of the subgroup, spread over lanes
float a_sg_next[A_SG];  // the next step's, loaded during this step's arithmetic
#else
vec4 a_reg[A_PASSES];  // prefetched A chunks
#endif
vec4 b_reg[B_PASSES];  // prefetched B chunks
// The 4 B columns this invocation loads: offset of the column's first
// element in x (-1 when the column is past NCOL) and, for the general
// gather, the top-left input coordinate.
ivec4 b_xoff;
#if B_MODE == 0
ivec4 b_iy0;
ivec4 b_ix0;
#endif

void setup_b_columns() {
  int tid = int(gl_LocalInvocationIndex);
  int col0 = g_n0 + (tid % BN4) * 4;
  for (int e = 0; e < 4; ++e) {
    int col = col0 + e;
    bool valid = N_EXACT || col < NCOL;
    int img = col / OHW;
    int p = col - img * OHW;
    int base = img * (IN_C * HW) + g_group * (CPG * HW);
#if B_MODE == 1
    b_xoff[e] = valid ? base + p : -1;
#else
    int oy = p / OUT_W;
    int ox = p - oy * OUT_W;
#if B_MODE == 2
    b_xoff[e] = valid ? base + (oy * STR_H) * IN_W + ox * STR_W : -1;
#else
    b_xoff[e] = base;
    // A far-away row makes every bounds test fail for columns past the end.
    b_iy0[e] = valid ? oy * STR_H - PAD_T : -(1 << 28);
    b_ix0[e] = ox * STR_W - PAD_L;
#endif
#endif
  }
}

void load_tile(int k0) {
  int tid = int(gl_LocalInvocationIndex);
#if SUBGROUP_A
  // Lane l holds A values l, l + SG_SIZE, ... of the subgroup's block, which
  // is numbered r * BK + kk (r: the invocation's register row), so that
  // neighbouring lanes read neighbouring kk of one row.
  int lane = int(SG_LANE);
  for (int t = 0; t < A_SG; ++t) {
    int idx = lane + t * SG_SIZE;
    int r = idx / BK;
    int kk = k0 + idx % BK;
    int m = g_m0 + (g_ty + (r / 4) * THR_M) * 4 + r % 4;
    float v = 0.0;
    if ((M_EXACT || m < KPG) && (K_EXACT || kk < KDIM)) v = wt[(g_group * KPG + m) * KDIM + kk];
    a_sg_next[t] = v;
  }
#else
  for (int p = 0; p < A_PASSES; ++p) {
    int q = tid + p * NTHREADS;
    vec4 v = vec4(0.0);
#if A_VEC4
    // Chunk q: row q / (BK/4), reduction index 4 * (q % (BK/4)) .. +3.
    int m = g_m0 + q / (BK / 4);
    int kk = k0 + (q % (BK / 4)) * 4;
    if ((A_CHUNKS % NTHREADS == 0 || q < A_CHUNKS) && (M_EXACT || m < KPG) &&
        (K_EXACT || kk < KDIM)) {
      v = wt4[((g_group * KPG + m) * KDIM + kk) >> 2];
    }
#else
    // Chunk q: rows 4 * (q / BK) .. +3 at reduction index q % BK.
    int kk = k0 + q % BK;
    int m = g_m0 + (q / BK) * 4;
    if ((A_CHUNKS % NTHREADS == 0 || q < A_CHUNKS) && (K_EXACT || kk < KDIM)) {
      int off = (g_group * KPG + m) * KDIM + kk;
      for (int e = 0; e < 4; ++e) {
        if (M_EXACT || m + e < KPG) v[e] = wt[off + e * KDIM];
      }
    }
#endif
    a_reg[p] = v;
  }
#endif
  // B: row kk, 4 consecutive columns.
  for (int p = 0; p < B_PASSES; ++p) {
    int row = tid / BN4 + p * B_ROWS_PER_PASS;
    int kk = k0 + row;
    vec4 v = vec4(0.0);
    if ((BK % B_ROWS_PER_PASS == 0 || row < BK) && (K_EXACT || kk < KDIM)) {
#if B_MODE == 1 && X_VEC4
      // OHW % 4 == 0: the 4 columns are consecutive pixels of one image.
      if (N_EXACT || b_xoff[0] >= 0) v = x4[(b_xoff[0] + kk * HW) >> 2];
#elif B_MODE != 0
      for (int e = 0; e < 4; ++e) {
        if (N_EXACT || b_xoff[e] >= 0) v[e] = x[b_xoff[e] + kk * HW];
      }
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
#if SUBGROUP_A
  for (int t = 0; t < A_SG; ++t) a_sg[t] = a_sg_next[t];
#else
  for (int p = 0; p < A_PASSES; ++p) {
    int q = tid + p * NTHREADS;
    if (A_CHUNKS % NTHREADS == 0 || q < A_CHUNKS) {
#if A_VEC4
      int m = q / (BK / 4);
      int kk = (q % (BK / 4)) * 4;
      for (int e = 0; e < 4; ++e) As[buf][kk + e][m >> 2][m & 3] = a_reg[p][e];
#else
      As[buf][q % BK][q / BK] = a_reg[p];
#endif
    }
  }
#endif
  for (int p = 0; p < B_PASSES; ++p) {
    int row = tid / BN4 + p * B_ROWS_PER_PASS;
    if (BK % B_ROWS_PER_PASS == 0 || row < BK) Bs[buf][row][tid % BN4] = b_reg[p];
  }
}

void main() {
  uint lin = u_group_offset + gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (lin >= uint(TOTAL_GROUPS)) return;  // uniform per work group
  int ilin = int(lin);
#if M_FASTEST
  int mt = ilin % M_TILES;
  int t = ilin / M_TILES;
  int nt = t % N_TILES;
  t /= N_TILES;
#else
  int nt = ilin % N_TILES;
  int t = ilin / N_TILES;
  int mt = t % M_TILES;
  t /= M_TILES;
#endif
  int slice = t % SPLIT_K;
  g_group = t / SPLIT_K;
  int kt_begin = slice * KT_PER_SLICE;
  int kt_count = clamp(K_TILES - kt_begin, 0, KT_PER_SLICE);  // uniform per work group
  g_m0 = mt * BM;
  g_n0 = nt * BN;

  int tid = int(gl_LocalInvocationIndex);
  g_tx = tid % THR_N;
  g_ty = tid / THR_N;
  int tx = g_tx;
  int ty = g_ty;

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
    int buf = NBUF == 2 ? (kt & 1) : 0;
    bool more = kt + 1 < kt_count;
    if (more) load_tile((kt_begin + kt + 1) * BK);
    for (int kk = 0; kk < BK; ++kk) {
      vec4 a[RM];
      vec4 b[RN];
#if SUBGROUP_A
      for (int i = 0; i < RM; ++i) {
        for (int ii = 0; ii < 4; ++ii) {
          int idx = (i * 4 + ii) * BK + kk;
          a[i][ii] = SG_SHUFFLE(a_sg[idx / SG_SIZE], uint(idx % SG_SIZE));
        }
      }
#else
      for (int i = 0; i < RM; ++i) a[i] = As[buf][kk][ty + i * THR_M];
#endif
      for (int j = 0; j < RN; ++j) b[j] = Bs[buf][kk][tx + j * THR_N];
      for (int i = 0; i < RM; ++i) {
        for (int ii = 0; ii < 4; ++ii) {
          for (int j = 0; j < RN; ++j) {
            acc[(i * 4 + ii) * RN + j] = fma(vec4(a[i][ii]), b[j], acc[(i * 4 + ii) * RN + j]);
          }
        }
      }
    }
#if NBUF == 2
    // Writing the other buffer is safe: every invocation passed the barrier
    // that ended its last use.
    if (more) store_tile(buf ^ 1);
    memoryBarrierShared();
    barrier();
#else
    // One buffer: everyone must be done reading it before it is refilled.
    memoryBarrierShared();
    barrier();
    if (more) store_tile(0);
    memoryBarrierShared();
    barrier();
#endif
  }

  int yslice = slice * Y_ELEMS;  // 0 unless SPLIT_K > 1
  for (int j = 0; j < RN; ++j) {
    int col0 = g_n0 + (tx + j * THR_N) * 4;
#if Y_VEC4
    // OHW % 4 == 0: the 4 columns are consecutive pixels of one image.
    if (!N_EXACT && col0 >= NCOL) continue;
    int img = col0 / OHW;
    int ybase = yslice + img * (OUT_K * OHW) + (col0 - img * OHW);
#else
    ivec4 ybase;
    for (int e = 0; e < 4; ++e) {
      int col = col0 + e;
      int img = col / OHW;
      ybase[e] = (N_EXACT || col < NCOL) ? yslice + img * (OUT_K * OHW) + (col - img * OHW) : -1;
    }
#endif
    for (int i = 0; i < RM; ++i) {
      for (int ii = 0; ii < 4; ++ii) {
        int m = g_m0 + (ty + i * THR_M) * 4 + ii;
        if (!M_EXACT && m >= KPG) continue;
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
