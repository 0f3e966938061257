// libFuzzer target: the blob-store entry reader on arbitrary bytes. A
// decoded entry must re-encode to the same bytes; nothing may be read
// beyond what the checked sizes allow.
#include <cstdint>
#include <string>

#include "cache/blob_entry.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view file(reinterpret_cast<const char*>(data), size);
  sparkle::cache::EntryHeader h;
  std::string payload, why;
  // The cap both above and below the input's size.
  for (const uint64_t cap : {uint64_t{1} << 20, static_cast<uint64_t>(size / 2)}) {
    if (sparkle::cache::decode_entry(file, cap, &h, &payload, &why)) {
      if (sparkle::cache::encode_entry(h, payload) != file) __builtin_trap();
    } else if (why.empty()) {
      __builtin_trap();  // every refusal says why
    }
    sparkle::cache::EntryHeader header_only;
    why.clear();
    (void)sparkle::cache::decode_entry(file, cap, &header_only, nullptr, &why);
  }
  // The header parser alone, on the raw bytes.
  (void)sparkle::cache::parse_entry_header(file, &h);
  return 0;
}
