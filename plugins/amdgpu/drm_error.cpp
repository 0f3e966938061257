// errno results of libdrm calls as plugin errors (see drm_error.hpp).
#include "drm_error.hpp"

#include <cerrno>
#include <cstring>

namespace sparkle::amdgpu {

bool is_device_lost(int rc) { return rc == -ECANCELED || rc == -ENODEV || rc == -EIO; }

plugin::Error drm_error(int rc, const std::string& call, const std::string& device) {
  const int e = rc < 0 ? -rc : rc;
  const std::string where = call + " on " + device;
  const std::string text = std::string(std::strerror(e)) + " (errno " + std::to_string(e) + ")";
  if (e == ENOMEM || e == ENOSPC)
    return plugin::Error(SPARKLE_OUT_OF_MEMORY, where + ": out of GPU memory: " + text);
  if (is_device_lost(rc))
    return plugin::Error(SPARKLE_DEVICE_ERROR,
                         where + ": the GPU was reset or removed (" + text +
                             "); work in flight is lost and the device must be reopened");
  if (e == ETIME || e == ETIMEDOUT)
    return plugin::Error(SPARKLE_DEVICE_ERROR,
                         where + ": timed out (" + text + "); the GPU may be hung");
  return plugin::Error(SPARKLE_DEVICE_ERROR, where + " failed: " + text);
}

}  // namespace sparkle::amdgpu
