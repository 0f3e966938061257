// libFuzzer target: the .npy reader on arbitrary bytes, through the header
// parser alone and through read_npy on an in-memory file (both with and
// without --cast). Any exception but sparkle::Error, any crash, hang,
// sanitizer report or unbounded allocation is a finding.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <sparkle/error.hpp>
#include <sparkle/npy.hpp>
#include <string>

#include "npy/npy_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    (void)sparkle::parse_npy_header(bytes, "fuzz");
  } catch (const sparkle::Error&) {
  }
  // The whole input as a file: magic, lengths and body sizes included.
  static const int fd = memfd_create("fuzz.npy", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  for (const bool cast : {false, true}) {
    try {
      const sparkle::NpyArray a = sparkle::read_npy(path, 0, cast);
      int64_t count = 1;
      for (int64_t d : a.shape) count *= d;
      if (static_cast<size_t>(count) != a.data.size()) __builtin_trap();  // shape and data agree
    } catch (const sparkle::Error&) {
    }
  }
  return 0;
}
