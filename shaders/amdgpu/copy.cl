// Device-side copies for the AMDGPU backend's transfers (staging <-> device
// buffers, buffer to buffer). Builtins: workitem.h.
#include "workitem.h"

// dst[i] = src[i] for i < count 32-bit words (both 4-byte aligned).
__attribute__((reqd_work_group_size(SPK_GROUP_SIZE, 1, 1))) kernel void copy_words(
    global const uint* restrict src, global uint* restrict dst, uint count) {
  const uint i = SPK_GROUP_ID(x) * SPK_GROUP_SIZE + SPK_LOCAL_ID_X();
  if (i < count) dst[i] = src[i];
}

// The same for bytes, for offsets or sizes that are not multiples of 4.
__attribute__((reqd_work_group_size(SPK_GROUP_SIZE, 1, 1))) kernel void copy_bytes(
    global const uchar* restrict src, global uchar* restrict dst, uint count) {
  const uint i = SPK_GROUP_ID(x) * SPK_GROUP_SIZE + SPK_LOCAL_ID_X();
  if (i < count) dst[i] = src[i];
}
