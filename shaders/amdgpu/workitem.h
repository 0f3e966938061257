// Work-item builtins for the kernels in this folder, so that one source
// builds two ways:
//  - for amdgcn with clang-16 -nogpulib: ROCm's device libraries are absent,
//    so get_group_id(), barrier(), fma() and min() do not link; these map
//    to clang's __builtin_amdgcn_* intrinsics and plain C instead;
//  - for the CPU through any OpenCL implementation (PoCL in the tests), where
//    they map to the standard OpenCL built-ins.
#ifndef SPK_WORKITEM_H
#define SPK_WORKITEM_H

#if defined(__AMDGCN__)
#define SPK_GROUP_ID(d) __builtin_amdgcn_workgroup_id_##d()
#define SPK_LOCAL_ID_X() __builtin_amdgcn_workitem_id_x()
#define SPK_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
// A work-group barrier with the fences OpenCL's barrier() implies for local
// memory: release our LDS writes, wait for every wave, acquire theirs.
#define SPK_LOCAL_BARRIER()                                \
  do {                                                     \
    __builtin_amdgcn_fence(__ATOMIC_RELEASE, "workgroup"); \
    __builtin_amdgcn_s_barrier();                          \
    __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "workgroup"); \
  } while (0)
#else
#define SPK_GROUP_ID(d) ((uint)get_group_id(SPK_DIM_##d))
#define SPK_DIM_x 0
#define SPK_DIM_y 1
#define SPK_DIM_z 2
#define SPK_LOCAL_ID_X() ((uint)get_local_id(0))
#define SPK_LOCAL_BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
#define SPK_FMA(a, b, c) fma((a), (b), (c))
#endif

#define SPK_MIN(a, b) ((a) < (b) ? (a) : (b))

// Work-items per group of every kernel here; plugins/amdgpu/launch.hpp
// (kGroupSize) uses the same value.
#define SPK_GROUP_SIZE 64

#endif
