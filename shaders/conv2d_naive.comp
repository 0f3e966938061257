// conv2d, one invocation per output element: the fallback that handles every
// descriptor. The generator prepends #version and the shape #defines (see
// plugins/opengl/conv2d_kernels.cpp for the list).

layout(local_size_x = LOCAL_SIZE) in;

layout(std430, binding = 0) readonly restrict buffer XBuf { float x[]; };
layout(std430, binding = 1) readonly restrict buffer WBuf { float wt[]; };
#if HAS_BIAS
layout(std430, binding = 2) readonly restrict buffer BiasBuf { float bias[]; };
#endif
layout(std430, binding = 3) writeonly restrict buffer YBuf { float y[]; };

// First linear work group of this dispatch: the host splits grids that exceed
// GL_MAX_COMPUTE_WORK_GROUP_COUNT into several dispatches.
layout(location = 0) uniform uint u_group_offset;

#define HW (IN_H * IN_W)
#define OHW (OUT_H * OUT_W)

void main() {
  uint group = u_group_offset + gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (group >= uint(TOTAL_GROUPS)) return;
  uint uidx = group * uint(LOCAL_SIZE) + gl_LocalInvocationID.x;
  if (uidx >= uint(Y_ELEMS)) return;
  int idx = int(uidx);
  int ox = idx % OUT_W;
  int t = idx / OUT_W;
  int oy = t % OUT_H;
  t /= OUT_H;
  int k = t % OUT_K;
  int n = t / OUT_K;
  int g = k / KPG;
  int xbase = (n * IN_C + g * CPG) * HW;
  int wbase = k * (CPG * KER_R * KER_S);
  int iy0 = oy * STR_H - PAD_T;
  int ix0 = ox * STR_W - PAD_L;
  float acc = 0.0;
  for (int c = 0; c < CPG; ++c) {
    for (int r = 0; r < KER_R; ++r) {
      int iy = iy0 + r * DIL_H;
      if (uint(iy) >= uint(IN_H)) continue;
      for (int s = 0; s < KER_S; ++s) {
        int ix = ix0 + s * DIL_W;
        if (uint(ix) >= uint(IN_W)) continue;
        acc += x[xbase + c * HW + iy * IN_W + ix] * wt[wbase + (c * KER_R + r) * KER_S + s];
      }
    }
  }
#if HAS_BIAS
  acc += bias[k];
#endif
#if RELU
  acc = max(acc, 0.0);
#endif
  y[idx] = acc;
}
