// Cache sizes of this processor, read at run time (never assumed).
#pragma once

#include <cstddef>

namespace sparkle::cpu {

// Per-core L2 data cache in bytes: sysconf, else sysfs (cpu0, level 2);
// 256 KiB, the smallest L2 of x86 cores in use, when neither tells.
size_t l2_bytes();
// Per-core L1 data cache: likewise (32 KiB when neither tells).
size_t l1_bytes();

}  // namespace sparkle::cpu
