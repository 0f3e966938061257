// The .npy header parser on its own, for the reader and for the fuzzer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sparkle {

// numpy's own reader refuses headers above 10000 bytes unless told
// otherwise; 1 MiB leaves room for odd writers and is still parsed in
// linear time.
constexpr uint32_t kMaxNpyHeaderBytes = 1u << 20;
// NumPy's NPY_MAXDIMS (64 since numpy 2; 32 before).
constexpr size_t kMaxNpyRank = 64;

struct NpyHeader {
  std::string descr;  // as written, e.g. "<f4"
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// Parses the header dict (the bytes after the length field). Throws
// sparkle::Error(invalid_argument) "ORIGIN: npy header: ..." naming what is
// wrong, with untrusted text quoted through sparkle::printable.
NpyHeader parse_npy_header(std::string_view header, const std::string& origin);

}  // namespace sparkle
