// Second pass of a split-K conv2d (see conv2d_tiled.comp): sums the SPLIT_K
// partial results, then adds the bias and applies the relu. The generator
// prepends #version and the shape #defines.

layout(local_size_x = LOCAL_SIZE) in;

layout(std430, binding = 0) readonly restrict buffer Partial { float part[]; };
#if HAS_BIAS
layout(std430, binding = 2) readonly restrict buffer BiasBuf { float bias[]; };
#endif
layout(std430, binding = 3) writeonly restrict buffer YBuf { float y[]; };

layout(location = 0) uniform uint u_group_offset;

void main() {
  uint group = u_group_offset + gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (group >= uint(TOTAL_GROUPS)) return;
  uint uidx = group * uint(LOCAL_SIZE) + gl_LocalInvocationID.x;
  if (uidx >= uint(Y_ELEMS)) return;
  int idx = int(uidx);
  float v = 0.0;
  for (int z = 0; z < SPLIT_K; ++z) v += part[z * Y_ELEMS + idx];
#if HAS_BIAS
  v += bias[(idx / (OUT_H * OUT_W)) % OUT_K];
#endif
#if RELU
  v = max(v, 0.0);
#endif
  y[idx] = v;
}
