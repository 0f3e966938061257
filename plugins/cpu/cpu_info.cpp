// Reads the processor model from /proc/cpuinfo and the ISA from cpuid.
#include "cpu_info.hpp"

#include <tbb/info.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "../common/fingerprint.hpp"
#include "isa.hpp"
#include "micro_kernel.hpp"

namespace sparkle::cpu {
namespace {

std::string model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown CPU";
}

std::string isa_flags() {
  std::string flags;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) flags += "sse4.2 ";
  if (__builtin_cpu_supports("avx")) flags += "avx ";
  if (__builtin_cpu_supports("avx2")) flags += "avx2 ";
  if (__builtin_cpu_supports("fma")) flags += "fma ";
  if (__builtin_cpu_supports("avx512f")) flags += "avx512f ";
#endif
  if (!flags.empty()) flags.pop_back();
  return flags.empty() ? "portable" : flags;
}

// The ISA the kernels will use, or why SPARKLE_CPU_ISA cannot be honoured
// (listing devices must not fail; planning reports the error).
std::string kernel_isa() {
  try {
    const Isa isa = selected_isa();
    return std::string(isa_name(isa)) + " (" + kernels_for(isa).name + ")";
  } catch (const plugin::Error& e) {
    return std::string("error: ") + e.what();
  }
}

}  // namespace

plugin::DeviceEntry describe_host_cpu() {
  plugin::DeviceEntry e;
  e.kind = SPARKLE_DEVICE_CPU;
  const std::string model = model_name();
  const int threads = tbb::info::default_concurrency();
  const std::string isa = isa_flags();
  e.description = model + " (" + std::to_string(threads) + " threads, oneTBB)";
  // xxHash3 (plugins/common): stable across runs and builds, unlike std::hash.
  e.fingerprint =
      gpu::device_fingerprint("cpu", {model, isa, kernel_isa(), std::to_string(threads)});
  e.properties = {{"model", model},
                  {"threads", std::to_string(threads)},
                  {"isa", isa},
                  {"kernel_isa", kernel_isa()},
                  {"memory", "host"}};
  return e;
}

}  // namespace sparkle::cpu
