// Winograd F(WINO_M x WINO_M, 3x3), pass 1 of 4: the filter transform
// U = G g G^T of every (output channel k, input channel c), written as
// U[(xi * OUT_K + k) * IN_C + c] for xi = i * ALPHA + j, which is the weight
// layout of the batched GEMM (pass 3, conv2d_gemm.comp with one group per
// xi). The generator prepends #version, the shape and WINO_M, LOCAL_SIZE,
// TOTAL_GROUPS; the generator prepends G, B^T and A^T (winograd_common.glsl).

layout(local_size_x = LOCAL_SIZE) in;

layout(std430, binding = 1) readonly restrict buffer WBuf { float wt[]; };
layout(std430, binding = 3) writeonly restrict buffer UBuf { float u[]; };

layout(location = 0) uniform uint u_group_offset;

void main() {
  uint group = u_group_offset + gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (group >= uint(TOTAL_GROUPS)) return;
  uint uidx = group * uint(LOCAL_SIZE) + gl_LocalInvocationID.x;
  if (uidx >= uint(OUT_K * IN_C)) return;
  int idx = int(uidx);
  int k = idx / IN_C;
  int c = idx - k * IN_C;
  float g[3][3];
  for (int r = 0; r < 3; ++r) {
    for (int s = 0; s < 3; ++s) g[r][s] = wt[idx * 9 + r * 3 + s];
  }
  float t[ALPHA][3];  // G g
  for (int i = 0; i < ALPHA; ++i) {
    for (int s = 0; s < 3; ++s) t[i][s] = WG[i][0] * g[0][s] + WG[i][1] * g[1][s] + WG[i][2] * g[2][s];
  }
  for (int i = 0; i < ALPHA; ++i) {
    for (int j = 0; j < ALPHA; ++j) {
      float v = t[i][0] * WG[j][0] + t[i][1] * WG[j][1] + t[i][2] * WG[j][2];
      u[((i * ALPHA + j) * OUT_K + k) * IN_C + c] = v;
    }
  }
}
