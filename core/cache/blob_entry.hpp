// The on-disk format of one blob-store entry, and its reader. The reader
// never trusts the file: its size is checked before anything is read, then
// the header's own checksum, then that the declared payload size is exactly
// what is left, and only then is the payload read and checksummed. A 3 GiB
// file (or a link to one) is refused after one fstat.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sparkle::cache {

// "SPKBLOB1": magic + format version. A new layout gets a new version, so
// that entries of the old one are misses, never misread.
constexpr char kEntryMagic[8] = {'S', 'P', 'K', 'B', 'L', 'O', 'B', '1'};
// Headers hold a few key strings; anything larger is not ours.
constexpr uint32_t kMaxEntryHeaderBytes = 1u << 20;

struct EntryHeader {
  // core build id, plugin, plugin build id, kind, name, device fingerprint,
  // options, SHA-256 (hex) of the source
  std::vector<std::string> fields;
  double compile_ms = 0;
  uint64_t payload_size = 0;
  std::string payload_sha;  // hex
};

// The header's bytes for these values (the inverse of parse_entry_header).
std::string serialize_entry_header(const EntryHeader& h);
// False if the bytes are not exactly one serialized header.
bool parse_entry_header(std::string_view bytes, EntryHeader* out);

// The whole file: magic, header size, header, header SHA-256, payload.
std::string encode_entry(const EntryHeader& h, std::string_view payload);

// Reads `n` bytes at `offset` into *out; false if they are not all there.
using EntryRead = std::function<bool(uint64_t offset, size_t n, std::string* out)>;

// Decodes an entry of `file_size` bytes through `read`. With a payload
// pointer the payload is read and checksummed too; without, only the
// header is (for listing). False with *why set ("truncated payload (10 of
// 4096 bytes)") when anything does not add up. Files above max_bytes are
// refused before any read.
bool read_entry(uint64_t file_size, const EntryRead& read, uint64_t max_bytes, EntryHeader* h,
                std::string* payload, std::string* why);
// The same over bytes in memory.
bool decode_entry(std::string_view file, uint64_t max_bytes, EntryHeader* h, std::string* payload,
                  std::string* why);
// The same over a file: opened without blocking, regular files only.
bool read_entry_file(const std::string& path, uint64_t max_bytes, EntryHeader* h,
                     std::string* payload, std::string* why);

}  // namespace sparkle::cache
