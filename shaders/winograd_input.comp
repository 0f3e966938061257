// Winograd F(WINO_M x WINO_M, 3x3), pass 2 of 4: the input transform
// V = B^T d B of every ALPHA x ALPHA input patch d (tile p, channel c; tiles
// step by WINO_M and overlap by 2), written as V[(xi * IN_C + c) * P_PAD + p],
// the B layout of the batched GEMM (a 1x1 convolution over P_PAD "pixels").
// Columns p >= P_TILES are zero so that P_PAD can be a multiple of 4 (vec4
// loads and stores in the GEMM). Padding of x reads as zero.

layout(local_size_x = LOCAL_SIZE) in;

layout(std430, binding = 0) readonly restrict buffer XBuf { float x[]; };
layout(std430, binding = 3) writeonly restrict buffer VBuf { float v[]; };

layout(location = 0) uniform uint u_group_offset;

#define HW (IN_H * IN_W)

void main() {
  uint group = u_group_offset + gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (group >= uint(TOTAL_GROUPS)) return;
  uint uidx = group * uint(LOCAL_SIZE) + gl_LocalInvocationID.x;
  if (uidx >= uint(IN_C * P_PAD)) return;
  int idx = int(uidx);
  int c = idx / P_PAD;
  int p = idx - c * P_PAD;
  float d[ALPHA][ALPHA];
  for (int i = 0; i < ALPHA; ++i) {
    for (int j = 0; j < ALPHA; ++j) d[i][j] = 0.0;
  }
  if (p < P_TILES) {
    int tw = p % TILES_W;
    int t = p / TILES_W;
    int th = t % TILES_H;
    int n = t / TILES_H;
    int iy0 = th * WINO_M - PAD_T;
    int ix0 = tw * WINO_M - PAD_L;
    int base = (n * IN_C + c) * HW;
    for (int i = 0; i < ALPHA; ++i) {
      int iy = iy0 + i;
      if (uint(iy) >= uint(IN_H)) continue;
      for (int j = 0; j < ALPHA; ++j) {
        int ix = ix0 + j;
        if (uint(ix) < uint(IN_W)) d[i][j] = x[base + iy * IN_W + ix];
      }
    }
  }
  float t[ALPHA][ALPHA];  // B^T d
  for (int i = 0; i < ALPHA; ++i) {
    for (int j = 0; j < ALPHA; ++j) {
      float s = 0.0;
      for (int q = 0; q < ALPHA; ++q) s += WBT[i][q] * d[q][j];
      t[i][j] = s;
    }
  }
  for (int i = 0; i < ALPHA; ++i) {
    for (int j = 0; j < ALPHA; ++j) {
      float s = 0.0;
      for (int q = 0; q < ALPHA; ++q) s += t[i][q] * WBT[j][q];
      v[((i * ALPHA + j) * IN_C + c) * P_PAD + p] = s;
    }
  }
}
