// Device discovery: drmGetDevices2, keep the render nodes of PCI devices
// from AMD (0x1002) whose kernel driver (drmGetVersion) is amdgpu, then
// amdgpu_device_initialize and the GPU / hw-ip queries that identify the
// gfx target. SPARKLE_AMDGPU_DEVICE names one render node to use instead.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "device_core.hpp"
#include "drm_api.hpp"

namespace sparkle::amdgpu {

struct DiscoveryResult {
  std::vector<std::shared_ptr<DeviceCore>> devices;
  // Why there are none ("no /dev/dri ..."), or notes on skipped nodes.
  std::string reason;
};

// `only_node` is SPARKLE_AMDGPU_DEVICE (nullptr or "" when unset). A node
// that is not an amdgpu render node is reported in `reason`, naming the
// variable, and yields no device.
DiscoveryResult discover(const std::shared_ptr<DrmApi>& api, const char* only_node);

}  // namespace sparkle::amdgpu
