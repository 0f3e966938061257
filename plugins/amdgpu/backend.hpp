// The amdgpu backend: discovery at construction, one sparkle device per
// usable amdgpu render node. The default constructor loads the real libdrm;
// tests construct it with a fake DrmApi.
#pragma once

#include <memory>
#include <sparkle/plugin.hpp>
#include <string>
#include <vector>

#include "device_core.hpp"
#include "drm_api.hpp"

namespace sparkle::amdgpu {

class AmdBackend final : public plugin::Backend {
 public:
  AmdBackend();
  explicit AmdBackend(std::shared_ptr<DrmApi> api);
  ~AmdBackend() override;

  std::vector<plugin::DeviceEntry> devices() override;
  std::string unavailable_reason() override;
  std::unique_ptr<plugin::Device> open_device(size_t index) override;

 private:
  void discover_with(std::shared_ptr<DrmApi> api);

  std::vector<std::shared_ptr<DeviceCore>> devices_;
  std::string reason_;
};

// The listing entry of a device (description, fingerprint, properties).
plugin::DeviceEntry device_entry(const DeviceCore& core, const std::string& notes);

}  // namespace sparkle::amdgpu
