// ISA detection through cpuid (GCC's __builtin_cpu_supports also checks that
// the OS saves the wide registers) and the SPARKLE_CPU_ISA override.
#include "isa.hpp"

#include <cstdlib>
#include <sparkle/plugin.hpp>
#include <string>

namespace sparkle::cpu {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    case Isa::portable:
      break;
  }
  return "portable";
}

bool cpu_has(Isa isa) {
  switch (isa) {
    case Isa::portable:
      return true;
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    case Isa::avx2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma");
#else
    default:
      return false;
#endif
  }
  return false;
}

Isa best_isa() {
  if (cpu_has(Isa::avx512)) return Isa::avx512;
  if (cpu_has(Isa::avx2)) return Isa::avx2;
  return Isa::portable;
}

Isa selected_isa() {
  const char* env = std::getenv("SPARKLE_CPU_ISA");
  if (env == nullptr || *env == '\0') return best_isa();
  const std::string want = env;
  Isa isa;
  if (want == "avx512") {
    isa = Isa::avx512;
  } else if (want == "avx2") {
    isa = Isa::avx2;
  } else if (want == "portable") {
    isa = Isa::portable;
  } else {
    throw plugin::Error(SPARKLE_INVALID_ARGUMENT,
                        "SPARKLE_CPU_ISA=" + want + " is unknown; use avx512, avx2 or portable");
  }
  if (!cpu_has(isa))
    throw plugin::Error(SPARKLE_UNSUPPORTED, std::string("SPARKLE_CPU_ISA=") + want +
                                                 " but this CPU lacks it (best available: " +
                                                 isa_name(best_isa()) + ")");
  return isa;
}

}  // namespace sparkle::cpu
