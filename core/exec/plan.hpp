// Plan: the host's shared handle on one plugin plan. The engine's plan
// cache and every job or stream that uses the plan hold it, so evicting a
// plan from the cache never destroys it under work in flight.
#pragma once

#include <sparkle/plugin.h>

#include <memory>
#include <string>

#include "exec/device_runtime.hpp"

namespace sparkle::exec {

struct Plan {
  Plan(std::shared_ptr<DeviceRuntime> device, sparkle_plan handle)
      : device(std::move(device)), handle(handle) {
    const auto* api = this->device->api();
    if (api->plan_kernel_name != nullptr)
      if (const char* k = api->plan_kernel_name(handle)) kernel = k;
  }
  ~Plan() { device->api()->plan_destroy(handle); }
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  const std::shared_ptr<DeviceRuntime> device;
  const sparkle_plan handle;
  std::string kernel;
};

using PlanRef = std::shared_ptr<Plan>;

}  // namespace sparkle::exec
