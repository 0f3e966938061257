// libdrm's negative errno results turned into the plugin's errors, with a
// message that says which call failed, on which device, and what it means.
#pragma once

#include <sparkle/plugin.hpp>
#include <string>

namespace sparkle::amdgpu {

// True for the results that mean the GPU context or the whole device is gone
// (a GPU reset: -ECANCELED; a removed or wedged device: -ENODEV, -EIO).
bool is_device_lost(int rc);

// The error for `rc` returned by `call` (e.g. "amdgpu_bo_alloc(4096 bytes of
// VRAM)") on `device` (e.g. "/dev/dri/renderD128"):
//  -ENOMEM, -ENOSPC -> SPARKLE_OUT_OF_MEMORY
//  device lost      -> SPARKLE_DEVICE_ERROR, saying the device must be reopened
//  -ETIME, -ETIMEDOUT -> SPARKLE_DEVICE_ERROR (a hung GPU)
//  anything else    -> SPARKLE_DEVICE_ERROR with strerror's text
plugin::Error drm_error(int rc, const std::string& call, const std::string& device);

}  // namespace sparkle::amdgpu
