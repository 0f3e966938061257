// Device-side copies for the AMDGPU backend's transfers (staging <-> device
// buffers, buffer to buffer). Built like conv2d.cl: amdgcn intrinsics under
// clang -nogpulib, standard OpenCL built-ins elsewhere.
#if defined(__AMDGCN__)
#define SPK_GROUP_ID_X() __builtin_amdgcn_workgroup_id_x()
#define SPK_LOCAL_ID_X() __builtin_amdgcn_workitem_id_x()
#else
#define SPK_GROUP_ID_X() ((uint)get_group_id(0))
#define SPK_LOCAL_ID_X() ((uint)get_local_id(0))
#endif

#define SPK_GROUP_SIZE 64

// dst[i] = src[i] for i < count 32-bit words (both 4-byte aligned).
__attribute__((reqd_work_group_size(SPK_GROUP_SIZE, 1, 1))) kernel void copy_words(
    global const uint* restrict src, global uint* restrict dst, uint count) {
  const uint i = SPK_GROUP_ID_X() * SPK_GROUP_SIZE + SPK_LOCAL_ID_X();
  if (i < count) dst[i] = src[i];
}

// The same for bytes, for offsets or sizes that are not multiples of 4.
__attribute__((reqd_work_group_size(SPK_GROUP_SIZE, 1, 1))) kernel void copy_bytes(
    global const uchar* restrict src, global uchar* restrict dst, uint count) {
  const uint i = SPK_GROUP_ID_X() * SPK_GROUP_SIZE + SPK_LOCAL_ID_X();
  if (i < count) dst[i] = src[i];
}
