// SHA-256 through Debian's nettle (libnettle8), rather than a hand-written
// compression function: the digests are the same, so entries written before
// the switch stay valid.
#include "cache/sha256.hpp"

namespace sparkle::cache {

Sha256::Sha256() { sha256_init(&ctx_); }

Sha256& Sha256::update(const void* data, size_t size) {
  sha256_update(&ctx_, size, static_cast<const uint8_t*>(data));
  return *this;
}

Sha256& Sha256::field(const std::string& s) {
  const uint64_t n = s.size();
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  update(len, 8);
  return update(s);
}

std::array<uint8_t, 32> Sha256::digest() {
  std::array<uint8_t, 32> out;
  sha256_digest(&ctx_, out.size(), out.data());  // also resets ctx_
  return out;
}

std::string Sha256::hex() {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : digest()) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

std::string sha256_hex(const void* data, size_t size) { return Sha256().update(data, size).hex(); }

}  // namespace sparkle::cache
