// Cache sizes of this processor, read at run time (never assumed).
#pragma once

#include <cstddef>

namespace sparkle::cpu {

// Per-core L2 data cache in bytes: sysconf, else sysfs (cpu0, level 2);
// 256 KiB, the smallest L2 of x86 cores in use, when neither tells.
size_t l2_bytes();

}  // namespace sparkle::cpu
