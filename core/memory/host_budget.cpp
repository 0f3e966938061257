// The host-memory budget of include/sparkle/memory.hpp: what the kernel,
// the cgroup and the resource limits still allow, read fresh on each check
// (other processes come and go).
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sparkle/error.hpp>
#include <sparkle/memory.hpp>
#include <sparkle/text.hpp>
#include <sstream>
#include <string>

namespace sparkle {
namespace {

constexpr uint64_t kUnbounded = std::numeric_limits<uint64_t>::max();

// "MemAvailable:   12345 kB" -> bytes; kUnbounded if absent.
uint64_t meminfo_bytes(const char* key) {
  std::ifstream in("/proc/meminfo");
  std::string name, unit;
  uint64_t value = 0;
  while (in >> name >> value) {
    std::getline(in, unit);
    if (name == key) return value * 1024;
  }
  return kUnbounded;
}

// A one-number file such as memory.max ("max" means no limit).
uint64_t number_file(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return kUnbounded;
  const ParsedInteger v = parse_integer(text);
  return v.problem == IntegerProblem::none && v.value >= 0 ? static_cast<uint64_t>(v.value)
                                                           : kUnbounded;
}

// Room left in this process's cgroup (v2), walking up the hierarchy: any
// ancestor's memory.max also binds.
uint64_t cgroup_room() {
  std::ifstream in("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(in, line))
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  if (path.empty()) return kUnbounded;
  uint64_t room = kUnbounded;
  for (;;) {
    const std::string dir = "/sys/fs/cgroup" + path;
    const uint64_t max = number_file(dir + "/memory.max");
    if (max != kUnbounded) {
      const uint64_t current = number_file(dir + "/memory.current");
      const uint64_t used = current == kUnbounded ? 0 : current;
      room = std::min(room, max > used ? max - used : 0);
    }
    if (path.empty() || path == "/") break;
    const size_t slash = path.rfind('/');
    path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }
  return room;
}

// Virtual size mapped now (VmSize), for RLIMIT_AS.
uint64_t mapped_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmSize:", 0) == 0) {
      std::istringstream fields(line.substr(7));
      uint64_t kb = 0;
      if (fields >> kb) return kb * 1024;
    }
  }
  return 0;
}

uint64_t rlimit_room(int resource) {
  rlimit lim{};
  if (getrlimit(resource, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return kUnbounded;
  const uint64_t used = mapped_bytes();
  return lim.rlim_cur > used ? lim.rlim_cur - used : 0;
}

// "6.6 GB (6576668672 bytes)": readable, and exact for scripts.
std::string gigabytes(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  const char* unit = b >= 1e9 ? "GB" : "MB";
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.1f %s (%llu bytes)", b >= 1e9 ? b / 1e9 : b / 1e6, unit,
                static_cast<unsigned long long>(bytes));
  return buf;
}

}  // namespace

uint64_t host_memory_available(std::string* source) {
  uint64_t best = kUnbounded;
  std::string why = "no limit found";
  auto consider = [&](uint64_t bytes, const char* name) {
    if (bytes < best) best = bytes, why = name;
  };
  if (const char* env = std::getenv("SPARKLE_HOST_MEMORY_LIMIT"); env != nullptr && *env != '\0') {
    const ParsedInteger v = parse_integer(env);
    if (v.problem != IntegerProblem::none || v.value < 0)
      throw Error(ErrorCode::invalid_argument,
                  "SPARKLE_HOST_MEMORY_LIMIT='" + printable(env) +
                      "' is not a byte count (a non-negative integer)");
    consider(static_cast<uint64_t>(v.value), "SPARKLE_HOST_MEMORY_LIMIT");
  }
  consider(meminfo_bytes("MemAvailable:"), "MemAvailable in /proc/meminfo");
  consider(cgroup_room(), "the cgroup's memory.max");
  consider(rlimit_room(RLIMIT_AS), "RLIMIT_AS");
  consider(rlimit_room(RLIMIT_DATA), "RLIMIT_DATA");
  if (source != nullptr) *source = why;
  return best;
}

void check_host_budget(const std::vector<HostAllocation>& allocations) {
  uint64_t total = 0;
  for (const auto& a : allocations)
    total = a.bytes > kUnbounded - total ? kUnbounded : total + a.bytes;
  if (total < kHostBudgetFloorBytes) return;
  std::string source;
  const uint64_t available = host_memory_available(&source);
  if (total <= available) return;
  std::string need;
  for (const auto& a : allocations) {
    if (a.bytes == 0) continue;
    need += (need.empty() ? "" : ", ") + a.what + " " + gigabytes(a.bytes);
  }
  std::string message;
  if (allocations.size() == 1)
    message = allocations[0].what + " needs " + gigabytes(total);
  else
    message = need + ": together " + gigabytes(total);
  throw Error(ErrorCode::invalid_argument, message + ", but only " + gigabytes(available) +
                                               " of host memory are available (" + source + ")");
}

}  // namespace sparkle
