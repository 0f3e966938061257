// Encoding and checked decoding of blob-store entries (blob_entry.hpp).
// Layout, little-endian:
//   "SPKBLOB1"  u32 header_size  header  32-byte SHA-256 of the header  payload
// The header holds, length-prefixed (u64): the eight key fields, then the
// compile ms (f64 bits), the payload size (u64) and the payload SHA-256
// (length-prefixed hex).
#include "cache/blob_entry.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cache/sha256.hpp"

namespace sparkle::cache {
namespace {

constexpr size_t kFieldCount = 8;
constexpr uint64_t kPrefixBytes = sizeof kEntryMagic + 4;  // magic + header size
constexpr uint64_t kShaBytes = 32;

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>(v >> (8 * i));
}

}  // namespace

std::string serialize_entry_header(const EntryHeader& h) {
  std::string out;
  for (const std::string& f : h.fields) {
    put_u64(out, f.size());
    out += f;
  }
  uint64_t ms_bits = 0;
  std::memcpy(&ms_bits, &h.compile_ms, sizeof ms_bits);
  put_u64(out, ms_bits);
  put_u64(out, h.payload_size);
  put_u64(out, h.payload_sha.size());
  out += h.payload_sha;
  return out;
}

bool parse_entry_header(std::string_view bytes, EntryHeader* out) {
  size_t pos = 0;
  auto u64 = [&](uint64_t* v) {
    if (bytes.size() - pos < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i) *v |= uint64_t{static_cast<uint8_t>(bytes[pos + i])} << (8 * i);
    pos += 8;
    return true;
  };
  auto string = [&](std::string* s) {
    uint64_t n = 0;
    if (!u64(&n) || n > bytes.size() - pos) return false;
    *s = std::string(bytes.substr(pos, n));
    pos += n;
    return true;
  };
  out->fields.assign(kFieldCount, std::string());
  for (auto& f : out->fields)
    if (!string(&f)) return false;
  uint64_t ms_bits = 0;
  if (!u64(&ms_bits) || !u64(&out->payload_size) || !string(&out->payload_sha)) return false;
  std::memcpy(&out->compile_ms, &ms_bits, sizeof ms_bits);
  return pos == bytes.size();
}

std::string encode_entry(const EntryHeader& h, std::string_view payload) {
  const std::string header = serialize_entry_header(h);
  std::string file(kEntryMagic, sizeof kEntryMagic);
  for (int i = 0; i < 4; ++i) file += static_cast<char>(header.size() >> (8 * i));
  file += header;
  const auto sha = Sha256().update(header).digest();
  file.append(reinterpret_cast<const char*>(sha.data()), sha.size());
  file.append(payload);
  return file;
}

bool read_entry(uint64_t file_size, const EntryRead& read, uint64_t max_bytes, EntryHeader* h,
                std::string* payload, std::string* why) {
  if (file_size == 0) {
    *why = "empty file";
    return false;
  }
  // put() never writes an entry above the cap, so a larger file is not one
  // of ours; reading it whole to find out cost seconds and gigabytes.
  if (file_size > max_bytes) {
    *why = "larger than SPARKLE_CACHE_MAX_BYTES (" + std::to_string(file_size) + " > " +
           std::to_string(max_bytes) + " bytes); not read";
    return false;
  }
  if (file_size < kPrefixBytes + kShaBytes) {
    *why = "truncated (" + std::to_string(file_size) + " bytes)";
    return false;
  }
  std::string prefix;
  if (!read(0, kPrefixBytes, &prefix)) {
    *why = "truncated (the file shrank while it was read)";
    return false;
  }
  if (std::memcmp(prefix.data(), kEntryMagic, sizeof kEntryMagic) != 0) {
    *why = "not a sparkle cache entry of this format version";
    return false;
  }
  uint32_t hsize = 0;
  for (int i = 0; i < 4; ++i)
    hsize |= uint32_t{static_cast<uint8_t>(prefix[sizeof kEntryMagic + i])} << (8 * i);
  if (hsize > kMaxEntryHeaderBytes || hsize > file_size - kPrefixBytes - kShaBytes) {
    *why = "truncated header";
    return false;
  }
  std::string header_and_sha;
  if (!read(kPrefixBytes, hsize + kShaBytes, &header_and_sha)) {
    *why = "truncated header";
    return false;
  }
  const std::string_view header(header_and_sha.data(), hsize);
  const auto sha = Sha256().update(header.data(), header.size()).digest();
  if (std::memcmp(sha.data(), header_and_sha.data() + hsize, kShaBytes) != 0) {
    *why = "corrupt header (checksum mismatch)";
    return false;
  }
  if (!parse_entry_header(header, h)) {
    *why = "unreadable header";
    return false;
  }
  const uint64_t payload_at = kPrefixBytes + hsize + kShaBytes;
  if (file_size - payload_at != h->payload_size) {
    *why = "truncated payload (" + std::to_string(file_size - payload_at) + " of " +
           std::to_string(h->payload_size) + " bytes)";
    return false;
  }
  if (payload == nullptr) return true;
  if (!read(payload_at, static_cast<size_t>(h->payload_size), payload)) {
    *why = "truncated payload (the file shrank while it was read)";
    return false;
  }
  if (sha256_hex(payload->data(), payload->size()) != h->payload_sha) {
    *why = "corrupt payload (checksum mismatch)";
    return false;
  }
  return true;
}

bool decode_entry(std::string_view file, uint64_t max_bytes, EntryHeader* h, std::string* payload,
                  std::string* why) {
  auto read = [&](uint64_t offset, size_t n, std::string* out) {
    if (offset > file.size() || n > file.size() - offset) return false;
    *out = std::string(file.substr(offset, n));
    return true;
  };
  return read_entry(file.size(), read, max_bytes, h, payload, why);
}

bool read_entry_file(const std::string& path, uint64_t max_bytes, EntryHeader* h,
                     std::string* payload, std::string* why) {
  // O_NONBLOCK: a FIFO put in place of an entry must not stall the caller.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    *why = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  struct stat st {};
  bool ok = false;
  if (::fstat(fd, &st) != 0) {
    *why = std::string("cannot stat: ") + std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    *why = "not a regular file";
  } else {
    auto read = [fd](uint64_t offset, size_t n, std::string* out) {
      out->assign(n, '\0');
      size_t got = 0;
      while (got < n) {
        const ssize_t r = ::pread(fd, out->data() + got, n - got, static_cast<off_t>(offset + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        got += static_cast<size_t>(r);
      }
      return true;
    };
    ok = read_entry(static_cast<uint64_t>(st.st_size), read, max_bytes, h, payload, why);
  }
  ::close(fd);
  return ok;
}

}  // namespace sparkle::cache
