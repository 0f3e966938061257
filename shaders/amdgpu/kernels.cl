// Every AMDGPU kernel in one translation unit: clang-16 compiles this file
// into one object per target, so the linked code object carries a single
// AMDGPU metadata note listing all kernels (two objects linked together
// would carry two notes, which HSA loaders do not merge).
#include "conv2d.cl"
#include "copy.cl"
