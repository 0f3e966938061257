// Cache sizes from sysconf or sysfs (see cache_info.hpp).
#include "cache_info.hpp"

#include <unistd.h>

#include <fstream>
#include <string>

namespace sparkle::cpu {

namespace {
size_t read_cache(int level, int sc_name, size_t fallback) {
  const long s = sysconf(sc_name);
  if (s > 0) return static_cast<size_t>(s);
  for (int i = 0; i < 8; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::ifstream level_file(dir + "level"), type(dir + "type"), size(dir + "size");
    int lv = 0;
    std::string ty, sz;
    if (!(level_file >> lv) || !(type >> ty) || !(size >> sz)) continue;
    if (lv != level || ty == "Instruction" || sz.empty()) continue;
    size_t mult = 1;
    if (sz.back() == 'K') mult = 1024;
    if (sz.back() == 'M') mult = 1024 * 1024;
    try {
      return std::stoul(sz) * mult;
    } catch (...) {
    }
  }
  return fallback;
}
}  // namespace

size_t l2_bytes() {
  static const size_t bytes = read_cache(2, _SC_LEVEL2_CACHE_SIZE, 256 * 1024);
  return bytes;
}

size_t l1_bytes() {
  static const size_t bytes = read_cache(1, _SC_LEVEL1_DCACHE_SIZE, 32 * 1024);
  return bytes;
}

}  // namespace sparkle::cpu
