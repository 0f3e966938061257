// The one device fingerprint of a GPU backend: a prefix and the xxHash3 (64
// bit) of the fields that identify hardware + driver. The same string keys
// the device list, the program cache, the selector's profile and the
// tuner's records, so none of them can disagree about which device it is.
// xxHash is used header-only (XXH_INLINE_ALL): plugins need no extra
// shared library on machines that only run them.
#pragma once

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace sparkle::gpu {

// "<prefix>-<16 hex digits>". Fields are length-prefixed before hashing, so
// ("ab", "c") and ("a", "bc") differ. Stable across runs, builds and hosts.
inline std::string device_fingerprint(const char* prefix,
                                      std::initializer_list<std::string> fields) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  for (const std::string& f : fields) {
    const uint64_t size = f.size();
    XXH3_64bits_update(&state, &size, sizeof size);
    XXH3_64bits_update(&state, f.data(), f.size());
  }
  char out[64];
  std::snprintf(out, sizeof out, "%s-%016llx", prefix,
                static_cast<unsigned long long>(XXH3_64bits_digest(&state)));
  return out;
}

}  // namespace sparkle::gpu
