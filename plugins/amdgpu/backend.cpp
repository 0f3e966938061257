// AmdBackend: discovery and the device listing (see backend.hpp).
#include "backend.hpp"

#include <bit>
#include <cstdlib>

#include "device.hpp"
#include "device_core.hpp"
#include "discovery.hpp"
#include "launch.hpp"
#include "program_cache.hpp"

namespace sparkle::amdgpu {

namespace {

// At init: a bad SPARKLE_AMDGPU_KERNEL or _FENCE_TIMEOUT_MS is the user's
// configuration error (SPARKLE_INVALID_ARGUMENT: no Engine starts), even on
// a machine without an AMD GPU. SPARKLE_AMDGPU_DEVICE names a node, whose
// problems are reported as the reason for zero devices (docs/AMDGPU.md).
void check_environment() {
  try {
    (void)kernel_choice_from_env();
    (void)fence_timeout_from_env();
  } catch (const plugin::Error& e) {
    throw plugin::Error(SPARKLE_INVALID_ARGUMENT, e.what());
  }
}

}  // namespace

AmdBackend::AmdBackend() {
  check_environment();
  std::string why;
  auto api = load_libdrm(&why);
  if (!api) {
    reason_ = why;
    return;
  }
  discover_with(std::move(api));
}

AmdBackend::AmdBackend(std::shared_ptr<DrmApi> api) { discover_with(std::move(api)); }

AmdBackend::~AmdBackend() = default;

void AmdBackend::discover_with(std::shared_ptr<DrmApi> api) {
  try {
    DiscoveryResult r = discover(api, std::getenv("SPARKLE_AMDGPU_DEVICE"));
    devices_ = std::move(r.devices);
    reason_ = std::move(r.reason);
  } catch (const std::exception& e) {
    devices_.clear();
    reason_ = e.what();
  }
}

std::vector<plugin::DeviceEntry> AmdBackend::devices() {
  std::vector<plugin::DeviceEntry> out;
  for (const auto& d : devices_) out.push_back(device_entry(*d, reason_));
  return out;
}

std::string AmdBackend::unavailable_reason() {
  return reason_.empty() ? "no amdgpu device found" : reason_;
}

std::unique_ptr<plugin::Device> AmdBackend::open_device(size_t index) {
  if (index >= devices_.size()) throw plugin::Error(SPARKLE_NOT_FOUND, "device index out of range");
  return std::make_unique<AmdDevice>(devices_[index]);
}

plugin::DeviceEntry device_entry(const DeviceCore& core, const std::string& notes) {
  const GpuDescription& d = core.description();
  char pci_id[48];
  std::snprintf(pci_id, sizeof pci_id, "%04x:%04x rev %02x", d.vendor_id, d.device_id,
                d.revision_id);
  plugin::DeviceEntry e;
  e.kind = SPARKLE_DEVICE_GPU;
  e.description =
      (d.marketing_name.empty() ? std::string("AMD ") + d.target.chip : d.marketing_name) + " (" +
      d.target.name + ", " + d.render_node + ")";
  e.fingerprint = fingerprint(d);
  const char* wave = d.target.generation == Generation::Gfx9 ? "64" : "32";
  e.properties = {
      {"render_node", d.render_node},
      {"pci_bus", d.pci_bus.empty() ? "unknown" : d.pci_bus},
      {"pci_id", pci_id},
      {"gfx_target", d.target.name},
      {"generation", generation_name(d.target.generation)},
      {"chip", d.target.chip},
      {"family_id", std::to_string(d.gpu.family_id)},
      {"chip_external_rev", std::to_string(d.gpu.chip_external_rev)},
      {"kernel_driver", d.driver.name + " " + std::to_string(d.driver.major) + "." +
                            std::to_string(d.driver.minor) + "." +
                            std::to_string(d.driver.patchlevel)},
      {"gfx_ip", std::to_string(d.gfx_ip.hw_ip_version_major) + "." +
                     std::to_string(d.gfx_ip.hw_ip_version_minor)},
      {"compute_rings", std::to_string(std::popcount(d.compute_ip.available_rings))},
      {"compute_units", std::to_string(d.gpu.cu_active_number)},
      {"shader_engines", std::to_string(d.gpu.num_shader_engines)},
      {"max_engine_clock_mhz", std::to_string(d.gpu.max_engine_clk / 1000)},
      {"gpu_counter_freq_khz", std::to_string(d.gpu.gpu_counter_freq)},
      {"vram_bytes", std::to_string(d.vram_bytes)},
      {"gtt_bytes", std::to_string(d.gtt_bytes)},
      {"wavefront_size", wave},
      {"code_object", d.target.name + " (embedded, " + embedded_code_hash() + ")"},
  };
  if (!notes.empty()) e.properties.push_back({"amdgpu_notes", notes});
  return e;
}

}  // namespace sparkle::amdgpu
