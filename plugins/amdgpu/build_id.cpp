// The plugin's build id: it changes whenever an embedded code object does,
// so cached programs and learned timings of an older build are not reused.
#include <string>

#include "program_cache.hpp"

namespace sparkle::amdgpu {

const char* plugin_build_id() {
  static const std::string id =
      std::string("amdgpu-") + SPARKLE_AMDGPU_VERSION + "-" + embedded_code_hash();
  return id.c_str();
}

}  // namespace sparkle::amdgpu
