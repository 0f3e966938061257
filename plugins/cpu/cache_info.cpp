// Cache sizes from sysconf or sysfs (see cache_info.hpp).
#include "cache_info.hpp"

#include <unistd.h>

#include <fstream>
#include <string>

namespace sparkle::cpu {

namespace {
size_t read_l2() {
#ifdef _SC_LEVEL2_CACHE_SIZE
  const long s = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (s > 0) return static_cast<size_t>(s);
#endif
  for (int i = 0; i < 8; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::ifstream level(dir + "level"), type(dir + "type"), size(dir + "size");
    int lv = 0;
    std::string ty, sz;
    if (!(level >> lv) || !(type >> ty) || !(size >> sz)) continue;
    if (lv != 2 || ty == "Instruction" || sz.empty()) continue;
    size_t mult = 1;
    if (sz.back() == 'K') mult = 1024;
    if (sz.back() == 'M') mult = 1024 * 1024;
    try {
      return std::stoul(sz) * mult;
    } catch (...) {
    }
  }
  return 256 * 1024;
}
}  // namespace

size_t l2_bytes() {
  static const size_t bytes = read_l2();
  return bytes;
}

}  // namespace sparkle::cpu
