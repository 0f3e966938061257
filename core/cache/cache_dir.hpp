// Where sparkle keeps what it learns between runs (program blobs, selector
// profiles), and how it writes files there safely.
#pragma once

#include <cstdint>
#include <string>

namespace sparkle::cache {

// SPARKLE_CACHE_DIR, else $XDG_CACHE_HOME/sparkle, else ~/.cache/sparkle.
// Empty when none can be determined (no HOME).
std::string cache_directory();

// Writes bytes to path through a temporary file in the same folder and a
// rename, so readers see the old or the new file, never a torn one, also
// across processes. Creates the folder. Returns false (and fills why) on
// failure; never throws for I/O problems.
bool write_file_atomically(const std::string& path, const std::string& bytes, std::string* why);

// Whole file, or false if it cannot be read, is not a regular file or has
// more than max_bytes (the selector profile is a few KB).
bool read_file(const std::string& path, std::string* bytes, uint64_t max_bytes = 64u << 20);

}  // namespace sparkle::cache
