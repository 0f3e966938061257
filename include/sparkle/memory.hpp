// Host-memory budget: a large allocation is checked against what the machine
// can still give before it is made, so that a huge but valid shape fails
// with a message naming the tensor and its bytes instead of being killed by
// the kernel's OOM killer (Linux overcommits, so new never fails first).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparkle {

// Host memory this process may still allocate: the least of MemAvailable
// (/proc/meminfo), the room left in its cgroup (memory.max - memory.current),
// RLIMIT_AS / RLIMIT_DATA beyond what is mapped now, and
// SPARKLE_HOST_MEMORY_LIMIT when set. `source` (if given) names the bound
// that won, for messages. Throws Error(invalid_argument) naming
// SPARKLE_HOST_MEMORY_LIMIT when its value is not a byte count.
uint64_t host_memory_available(std::string* source = nullptr);

// One allocation that will be live at the same time as the others passed
// with it.
struct HostAllocation {
  std::string what;  // "x", "weights", "reference output"
  uint64_t bytes = 0;
};

// Below this total the check returns at once: small allocations cannot be
// what exhausts a machine, and reading /proc costs ~20 us.
constexpr uint64_t kHostBudgetFloorBytes = uint64_t{64} << 20;

// Throws Error(invalid_argument) when the allocations together exceed
// host_memory_available(); the message names each allocation with its bytes
// and the bound, e.g. "x needs 6.6 GB (6576668672 bytes) ... but 4.1 GB
// (...) of host memory are available (MemAvailable)".
void check_host_budget(const std::vector<HostAllocation>& allocations);
inline void check_host_budget(const std::string& what, uint64_t bytes) {
  check_host_budget({{what, bytes}});
}

}  // namespace sparkle
