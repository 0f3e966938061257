// Winograd F(WINO_M x WINO_M, 3x3), pass 4 of 4: the output transform
// Y = A^T M A of every (output channel k, tile p) of the batched GEMM's
// result M[(xi * OUT_K + k) * P_PAD + p], then the bias and the relu. Tiles
// that reach past the output's edge write only their valid part.

layout(local_size_x = LOCAL_SIZE) in;

layout(std430, binding = 0) readonly restrict buffer MBuf { float mt[]; };
#if HAS_BIAS
layout(std430, binding = 2) readonly restrict buffer BiasBuf { float bias[]; };
#endif
layout(std430, binding = 3) writeonly restrict buffer YBuf { float y[]; };

layout(location = 0) uniform uint u_group_offset;

void main() {
  uint group = u_group_offset + gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (group >= uint(TOTAL_GROUPS)) return;
  uint uidx = group * uint(LOCAL_SIZE) + gl_LocalInvocationID.x;
  if (uidx >= uint(OUT_K * P_TILES)) return;
  int idx = int(uidx);
  int k = idx / P_TILES;
  int p = idx - k * P_TILES;
  float m[ALPHA][ALPHA];
  for (int i = 0; i < ALPHA; ++i) {
    for (int j = 0; j < ALPHA; ++j) m[i][j] = mt[((i * ALPHA + j) * OUT_K + k) * P_PAD + p];
  }
  float t[WINO_M][ALPHA];  // A^T m
  for (int i = 0; i < WINO_M; ++i) {
    for (int j = 0; j < ALPHA; ++j) {
      float s = 0.0;
      for (int q = 0; q < ALPHA; ++q) s += WAT[i][q] * m[q][j];
      t[i][j] = s;
    }
  }
  int tw = p % TILES_W;
  int tt = p / TILES_W;
  int th = tt % TILES_H;
  int n = tt / TILES_H;
#if HAS_BIAS
  float b = bias[k];
#else
  float b = 0.0;
#endif
  int ybase = (n * OUT_K + k) * (OUT_H * OUT_W);
  for (int i = 0; i < WINO_M; ++i) {
    int oy = th * WINO_M + i;
    if (oy >= OUT_H) break;
    for (int j = 0; j < WINO_M; ++j) {
      int ox = tw * WINO_M + j;
      if (ox >= OUT_W) break;
      float s = b;
      for (int q = 0; q < ALPHA; ++q) s += t[i][q] * WAT[j][q];
#if RELU
      s = max(s, 0.0);
#endif
      y[ybase + oy * OUT_W + ox] = s;
    }
  }
}
