// Loaded programs through the LiveCache and the host's blob store (see
// program_cache.hpp).
#include "program_cache.hpp"

#include <chrono>
#include <cstring>
#include <sparkle/plugin.hpp>

namespace sparkle::amdgpu {
namespace {

using plugin::Error;
using Clock = std::chrono::steady_clock;

constexpr const char* kBlobKind = "amdgpu-loaded-code-object";

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

const sparkle_host_services* host() { return plugin::detail::state().host; }

bool host_has(size_t member_end) {
  const auto* h = host();
  return h != nullptr && h->struct_size >= member_end;
}

void report(sparkle_cache_event event, double ms) {
  if (host_has(offsetof(sparkle_host_services, cache_event) + sizeof(void*)) &&
      host()->cache_event != nullptr) {
    host()->cache_event(event, ms);
  }
}

// The blob store, or nullptr when the host predates ABI 1.1 or leaves it out.
const sparkle_host_services* blob_store() {
  const auto* h = host();
  if (!host_has(offsetof(sparkle_host_services, blob_reject) + sizeof(void*))) return nullptr;
  if (h->blob_get == nullptr || h->blob_release == nullptr || h->blob_put == nullptr ||
      h->blob_reject == nullptr) {
    return nullptr;
  }
  return h;
}

}  // namespace

const EmbeddedCodeObject* embedded_code_object(const std::string& target) {
  for (const auto& e : embedded_code_objects())
    if (target == e.target) return &e;
  return nullptr;
}

std::string embedded_target_list() {
  std::string out;
  for (const auto& e : embedded_code_objects())
    out += (out.empty() ? "" : ", ") + std::string(e.target);
  return out.empty() ? "none" : out;
}

CodeObject load_embedded(const EmbeddedCodeObject& embedded) {
  CodeObject co = load_code_object(std::span<const uint8_t>(embedded.data, embedded.size));
  if (co.target != embedded.target)
    throw CodeObjectError("code object: embedded as " + std::string(embedded.target) +
                          " but its metadata says " + co.target);
  return co;
}

ProgramCache::ProgramCache(std::shared_ptr<DeviceCore> core) : core_(std::move(core)), live_(4) {}

std::shared_ptr<const LoadedProgram> ProgramCache::program() {
  const std::string& target = core_->description().target.name;
  const EmbeddedCodeObject* embedded = embedded_code_object(target);
  if (embedded == nullptr)
    throw Error(SPARKLE_UNSUPPORTED, "this build has no code object for " + target +
                                         " (built for: " + embedded_target_list() +
                                         "; meson option amdgpu_targets)");
  bool hit = false;
  auto p = live_.get(
      target, [&] { return build(*embedded); }, &hit);
  if (hit) report(SPARKLE_CACHE_MEMORY_HIT, 0);
  return p;
}

std::shared_ptr<LoadedProgram> ProgramCache::build(const EmbeddedCodeObject& embedded) {
  const sparkle_host_services* store = blob_store();
  const std::string device = fingerprint(core_->description());
  const std::string name = std::string("shaders/amdgpu (") + embedded.target + ")";
  sparkle_blob_key key;
  std::memset(&key, 0, sizeof key);
  key.struct_size = sizeof key;
  key.plugin = "amdgpu";
  key.plugin_build_id = plugin_build_id();
  key.kind = kBlobKind;
  key.name = name.c_str();
  key.device_fingerprint = device.c_str();
  key.options = kernel_compile_flags();
  key.source = embedded.data;
  key.source_size = embedded.size;

  auto loaded = std::make_shared<LoadedProgram>();
  bool have = false;
  if (store != nullptr) {
    const auto t0 = Clock::now();
    size_t size = 0;
    if (void* blob = store->blob_get(&key, &size); blob != nullptr) {
      std::vector<uint8_t> payload(static_cast<const uint8_t*>(blob),
                                   static_cast<const uint8_t*>(blob) + size);
      store->blob_release(blob);
      try {
        loaded->code = deserialize(payload);
        if (loaded->code.target != embedded.target)
          throw CodeObjectError("cached program is for " + loaded->code.target);
        have = true;
        report(SPARKLE_CACHE_DISK_HIT, ms_since(t0));
      } catch (const CodeObjectError& e) {
        store->blob_reject(&key, e.what());
      }
    }
  }
  if (!have) {
    const auto t0 = Clock::now();
    try {
      loaded->code = load_embedded(embedded);
    } catch (const CodeObjectError& e) {
      throw Error(SPARKLE_INTERNAL, std::string("embedded ") + embedded.target + " " + e.what());
    }
    const double ms = ms_since(t0);
    report(SPARKLE_CACHE_COMPILE, ms);
    if (store != nullptr) {
      const auto payload = serialize(loaded->code);
      store->blob_put(&key, payload.data(), payload.size(), ms);
    }
  }

  // Upload: the image into system memory the GPU reads (instructions and
  // descriptors are read-only and small), with R_AMDGPU_RELATIVE64 applied.
  auto image =
      std::make_shared<GpuBo>(core_, loaded->code.image.size(), Domain::GttCached, "kernel code");
  std::memcpy(image->cpu(), loaded->code.image.data(), loaded->code.image.size());
  for (const auto& rel : loaded->code.relocations) {
    const uint64_t value = image->va() + static_cast<uint64_t>(rel.addend);
    std::memcpy(image->cpu() + rel.offset, &value, sizeof value);
  }
  loaded->image = std::move(image);
  return loaded;
}

}  // namespace sparkle::amdgpu
