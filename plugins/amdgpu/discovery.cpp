// Finding amdgpu render nodes and describing their GPUs (see discovery.hpp).
#include "discovery.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sparkle/plugin.hpp>

#include "program_cache.hpp"

namespace sparkle::amdgpu {
namespace {

constexpr uint16_t kVendorAmd = 0x1002;

std::string errno_text(int rc) { return std::strerror(rc < 0 ? -rc : rc); }

std::string hex4(uint32_t v) {
  char out[16];
  std::snprintf(out, sizeof out, "0x%04x", v);
  return out;
}

class Prober {
 public:
  explicit Prober(const std::shared_ptr<DrmApi>& api) : api_(api) {}

  // Opens and probes a node; the device, or nullptr with *why.
  std::shared_ptr<DeviceCore> probe(const DrmDeviceEntry& entry, std::string* why) {
    DrmApi& api = *api_;
    const std::string& node = entry.render_node;
    const int fd = api.open_node(node);
    if (fd < 0) {
      *why = node + ": cannot open (" + errno_text(fd) + ")";
      return nullptr;
    }
    DrmVersion version;
    int rc = api.get_version(fd, &version);
    if (rc != 0) {
      api.close_node(fd);
      *why = node + ": drmGetVersion failed (" + errno_text(rc) + ")";
      return nullptr;
    }
    if (version.name != "amdgpu") {
      api.close_node(fd);
      *why = node + ": kernel driver is " + (version.name.empty() ? "unnamed" : version.name) +
             ", not amdgpu";
      return nullptr;
    }
    uint32_t major = 0, minor = 0;
    amdgpu_device_handle dev = nullptr;
    rc = api.device_initialize(fd, &major, &minor, &dev);
    if (rc != 0) {
      api.close_node(fd);
      *why = node + ": amdgpu_device_initialize failed (" + errno_text(rc) + ")";
      return nullptr;
    }
    GpuDescription d;
    d.render_node = node;
    d.pci_bus = entry.pci_bus;
    d.vendor_id = entry.vendor_id;
    d.device_id = entry.device_id;
    d.revision_id = entry.revision_id;
    d.driver = version;
    auto give_up = [&](const std::string& w) {
      api.device_deinitialize(dev);
      api.close_node(fd);
      *why = node + ": " + w;
      return nullptr;
    };
    if ((rc = api.query_gpu_info(dev, &d.gpu)) != 0)
      return give_up("amdgpu_query_gpu_info failed (" + errno_text(rc) + ")");
    if ((rc = api.query_hw_ip_info(dev, AMDGPU_HW_IP_GFX, 0, &d.gfx_ip)) != 0)
      return give_up("amdgpu_query_hw_ip_info(GFX) failed (" + errno_text(rc) + ")");
    if ((rc = api.query_hw_ip_info(dev, AMDGPU_HW_IP_COMPUTE, 0, &d.compute_ip)) != 0)
      return give_up("amdgpu_query_hw_ip_info(COMPUTE) failed (" + errno_text(rc) + ")");
    if (d.compute_ip.available_rings == 0) return give_up("no compute ring available");
    // Without PCI ids from drmGetDevices2 (SPARKLE_AMDGPU_DEVICE), the
    // driver's own asic id is the device id.
    if (d.device_id == 0) d.device_id = static_cast<uint16_t>(d.gpu.asic_id);
    if (d.vendor_id == 0) d.vendor_id = kVendorAmd;
    if (d.revision_id == 0) d.revision_id = static_cast<uint8_t>(d.gpu.pci_rev_id);
    std::string target_why;
    const auto target = identify_target(d.gpu.family_id, d.gpu.chip_external_rev,
                                        d.gfx_ip.hw_ip_version_major, &target_why);
    if (!target) return give_up(target_why);
    d.target = *target;
    if (embedded_code_object(d.target.name) == nullptr)
      return give_up(d.target.name + " (" + d.target.chip +
                     ") has no code object in this build (built for: " + embedded_target_list() +
                     "; meson option amdgpu_targets)");
    if (const char* name = api.get_marketing_name(dev); name != nullptr) d.marketing_name = name;
    amdgpu_heap_info heap{};
    if (api.query_heap_info(dev, AMDGPU_GEM_DOMAIN_VRAM, 0, &heap) == 0)
      d.vram_bytes = heap.heap_size;
    if (api.query_heap_info(dev, AMDGPU_GEM_DOMAIN_GTT, 0, &heap) == 0)
      d.gtt_bytes = heap.heap_size;
    try {
      return std::make_shared<DeviceCore>(api_, fd, dev, std::move(d));
    } catch (const std::exception& e) {
      return give_up(e.what());
    }
  }

 private:
  std::shared_ptr<DrmApi> api_;
};

void note(std::string* reason, const std::string& why) {
  plugin::log(SPARKLE_LOG_DEBUG, why);
  if (!reason->empty()) *reason += "; ";
  *reason += why;
}

}  // namespace

DiscoveryResult discover(const std::shared_ptr<DrmApi>& api, const char* only_node) {
  DiscoveryResult out;
  Prober prober(api);
  std::vector<DrmDeviceEntry> entries;
  const int rc = api->get_devices(&entries);

  if (only_node != nullptr && *only_node != '\0') {
    const std::string node = only_node;
    const std::string var = "SPARKLE_AMDGPU_DEVICE=" + node;
    // Ask the node itself first, so a node of another driver is named as
    // such even when it is not in drmGetDevices2's list.
    const int fd = api->open_node(node);
    if (fd < 0) {
      out.reason = var + ": cannot open (" + errno_text(fd) + ")";
      return out;
    }
    DrmVersion version;
    const int vrc = api->get_version(fd, &version);
    api->close_node(fd);
    if (vrc != 0) {
      out.reason = var + " is not a DRM device (drmGetVersion: " + errno_text(vrc) + ")";
      return out;
    }
    if (version.name != "amdgpu") {
      out.reason = var + " is a " + (version.name.empty() ? "unnamed" : version.name) +
                   " device, not amdgpu";
      return out;
    }
    const DrmDeviceEntry* entry = nullptr;
    for (const auto& e : entries)
      if (e.render_node == node) entry = &e;
    if (entry == nullptr) {
      out.reason = var + " is an amdgpu node but not a render node (use /dev/dri/renderD*)";
      return out;
    }
    std::string why;
    if (auto d = prober.probe(*entry, &why)) {
      out.devices.push_back(std::move(d));
    } else {
      out.reason = var + ": " + why;
    }
    return out;
  }

  if (rc < 0) {
    out.reason = rc == -ENOENT ? "no /dev/dri (drmGetDevices2: " + errno_text(rc) + ")"
                               : "drmGetDevices2 failed (" + errno_text(rc) + ")";
    return out;
  }
  if (entries.empty()) {
    out.reason = "no DRM devices (drmGetDevices2 found none)";
    return out;
  }
  std::string notes;
  size_t candidates = 0;
  for (const auto& e : entries) {
    if (e.render_node.empty()) continue;
    if (!e.pci || e.vendor_id != kVendorAmd) {
      note(&notes, e.render_node + ": vendor " +
                       (e.pci ? hex4(e.vendor_id) : std::string("not PCI")) + ", not AMD");
      continue;
    }
    ++candidates;
    std::string why;
    if (auto d = prober.probe(e, &why)) {
      out.devices.push_back(std::move(d));
    } else {
      note(&notes, why);
    }
  }
  if (out.devices.empty()) {
    out.reason = candidates == 0 ? "no amdgpu render node among " + std::to_string(entries.size()) +
                                       " DRM device(s)" + (notes.empty() ? "" : " (" + notes + ")")
                                 : "no usable amdgpu device: " + notes;
  } else {
    out.reason = notes;  // kept as a property: why other nodes were skipped
  }
  return out;
}

}  // namespace sparkle::amdgpu
