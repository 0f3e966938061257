// parallel_copy: memcpy split across a few threads. One thread moves 7-13
// GB/s between ordinary memory and mapped staging on the GPU machine, a
// fraction of PCIe's 50 GB/s; large staging copies are split.
#pragma once

#include <cstddef>

namespace sparkle::exec {

void parallel_copy(void* dst, const void* src, size_t bytes);

}  // namespace sparkle::exec
