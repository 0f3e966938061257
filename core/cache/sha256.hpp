// SHA-256 (FIPS 180-4), for cache keys and payload checksums.
#pragma once

#include <nettle/sha2.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sparkle::cache {

class Sha256 {
 public:
  Sha256();
  Sha256& update(const void* data, size_t size);
  Sha256& update(const std::string& s) { return update(s.data(), s.size()); }
  // Length-prefixed, so that ("ab","c") and ("a","bc") hash differently.
  Sha256& field(const std::string& s);
  // The digest of everything so far; the hasher starts over afterwards.
  std::array<uint8_t, 32> digest();
  std::string hex();

 private:
  sha256_ctx ctx_;
};

std::string sha256_hex(const void* data, size_t size);

}  // namespace sparkle::cache
