// Blob-backed program loading for GPU backends: a compiled program is
// looked up in the host's persistent blob store (plugin ABI 1.1 services)
// before it is compiled, and stored after. The backend says how a payload
// becomes a program (glProgramBinary, a code object load...) and how to
// compile; this file owns the key, the checks of which host services exist,
// the reject-and-recompile path and the statistics events (docs/CACHE.md).
#pragma once

#include <sparkle/plugin.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <sparkle/plugin.hpp>
#include <string>
#include <utility>

namespace sparkle::gpu {

// The host services table, or nullptr before init.
inline const sparkle_host_services* host_services() { return plugin::detail::state().host; }

inline bool host_has(size_t member_end) {
  const auto* h = host_services();
  return h != nullptr && h->struct_size >= member_end;
}

// Reports a cache event when the host has the v1.1 member.
inline void report_cache_event(sparkle_cache_event event, double ms) {
  if (host_has(offsetof(sparkle_host_services, cache_event) + sizeof(void*)) &&
      host_services()->cache_event != nullptr) {
    host_services()->cache_event(event, ms);
  }
}

// The blob store, or nullptr when the host predates ABI 1.1 or omits it.
inline const sparkle_host_services* blob_store() {
  const auto* h = host_services();
  if (!host_has(offsetof(sparkle_host_services, blob_reject) + sizeof(void*))) return nullptr;
  if (h->blob_get == nullptr || h->blob_release == nullptr || h->blob_put == nullptr ||
      h->blob_reject == nullptr) {
    return nullptr;
  }
  return h;
}

// The fields of one entry's key; the strings must outlive the calls.
struct BlobKeyFields {
  std::string plugin, plugin_build_id, kind, name, device_fingerprint, options;
  const std::string* source = nullptr;

  sparkle_blob_key key() const {
    sparkle_blob_key k;
    std::memset(&k, 0, sizeof k);
    k.struct_size = sizeof k;
    k.plugin = plugin.c_str();
    k.plugin_build_id = plugin_build_id.c_str();
    k.kind = kind.c_str();
    k.name = name.c_str();
    k.device_fingerprint = device_fingerprint.c_str();
    k.options = options.c_str();
    k.source = source != nullptr ? source->data() : "";
    k.source_size = source != nullptr ? source->size() : 0;
    return k;
  }
};

// What a backend's compile step returns: the program, what compiling cost,
// and the payload to store (empty: nothing to store).
template <class Program>
struct Compiled {
  Program program{};
  double ms = 0;
  std::string payload;
};

// The program for `fields`: from the store when it holds a payload that
// load(payload, &why) accepts (a DISK_HIT), else compile() (a COMPILE),
// whose payload is then stored. A payload load() refuses is rejected, so
// the host drops it, and the program is compiled again. With use_store
// false (the device has no binaries) only compile() runs.
//   load:    (const std::string& payload, std::string* why) -> Program, empty on refusal
//   compile: () -> Compiled<Program>
template <class Program, class Load, class Compile>
Program load_or_compile(const BlobKeyFields& fields, bool use_store, Load&& load,
                        Compile&& compile) {
  using Clock = std::chrono::steady_clock;
  const sparkle_host_services* store = use_store ? blob_store() : nullptr;
  const sparkle_blob_key key = fields.key();
  if (store != nullptr) {
    const auto t0 = Clock::now();
    size_t size = 0;
    if (void* blob = store->blob_get(&key, &size); blob != nullptr) {
      std::string payload(static_cast<const char*>(blob), size);
      store->blob_release(blob);
      std::string why;
      Program p = load(payload, &why);
      if (p) {
        report_cache_event(SPARKLE_CACHE_DISK_HIT,
                           std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        return p;
      }
      // A driver update, or bytes the store could not tell were wrong.
      store->blob_reject(&key, why.c_str());
    }
  }
  Compiled<Program> built = compile(store != nullptr);
  report_cache_event(SPARKLE_CACHE_COMPILE, built.ms);
  if (store != nullptr && !built.payload.empty()) {
    store->blob_put(&key, built.payload.data(), built.payload.size(), built.ms);
  }
  return std::move(built.program);
}

}  // namespace sparkle::gpu
