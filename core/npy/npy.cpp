// NumPy .npy reading and writing (format versions 1-3), float32 C order only.
#include <cstring>
#include <fstream>
#include <regex>
#include <sparkle/error.hpp>
#include <sparkle/npy.hpp>

namespace sparkle {
namespace {

[[noreturn]] void bad(const std::string& path, const std::string& why) {
  throw Error(ErrorCode::invalid_argument, path + ": " + why);
}

// Finds `'key': value` in the header dict and returns value's text.
std::string header_field(const std::string& header, const std::string& key,
                         const std::string& path) {
  const std::regex re("['\"]" + key + "['\"]\\s*:\\s*('[^']*'|\"[^\"]*\"|\\([^)]*\\)|\\w+)");
  std::smatch m;
  if (!std::regex_search(header, m, re)) bad(path, "npy header has no '" + key + "'");
  return m[1].str();
}

std::vector<int64_t> parse_shape(const std::string& text, const std::string& path) {
  std::vector<int64_t> shape;
  std::string inner = text.substr(1, text.size() - 2);  // strip ( )
  size_t pos = 0;
  while (pos < inner.size()) {
    while (pos < inner.size() && (inner[pos] == ' ' || inner[pos] == ',')) ++pos;
    if (pos >= inner.size()) break;
    size_t end = pos;
    while (end < inner.size() && inner[end] >= '0' && inner[end] <= '9') ++end;
    if (end == pos) bad(path, "npy shape '" + text + "' is not a tuple of integers");
    const std::string digits = inner.substr(pos, end - pos);
    if (digits.size() > 18) bad(path, "npy shape dimension " + digits + " is too large");
    shape.push_back(std::stoll(digits));
    pos = end;
  }
  return shape;
}

}  // namespace

NpyArray read_npy(const std::string& path, int expected_rank) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::io_error, path + ": cannot open for reading");
  char magic[8] = {};
  in.read(magic, 8);
  if (in.gcount() != 8 || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    bad(path, "not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  if (major < 1 || major > 3) bad(path, "unsupported npy version " + std::to_string(major));
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    if (in.gcount() != 2) bad(path, "truncated npy header");
    header_len = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    if (in.gcount() != 4) bad(path, "truncated npy header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  }
  if (header_len > (1u << 20))
    bad(path, "npy header length " + std::to_string(header_len) + " is implausible");
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  if (in.gcount() != static_cast<std::streamsize>(header_len)) bad(path, "truncated npy header");

  const std::string descr = header_field(header, "descr", path);
  if (descr != "'<f4'" && descr != "\"<f4\"")
    bad(path, "dtype " + descr + " is not float32 little-endian ('<f4')");
  if (header_field(header, "fortran_order", path) != "False")
    bad(path, "fortran_order arrays are not supported; save in C order");
  const std::string shape_text = header_field(header, "shape", path);
  if (shape_text.front() != '(') bad(path, "npy shape '" + shape_text + "' is not a tuple");

  NpyArray a;
  a.shape = parse_shape(shape_text, path);
  if (expected_rank > 0 && static_cast<int>(a.shape.size()) != expected_rank)
    bad(path, "rank " + std::to_string(a.shape.size()) + " but expected " +
                  std::to_string(expected_rank) + " dimensions");
  int64_t count = 1;
  for (int64_t d : a.shape) {
    if (d <= 0) bad(path, "npy shape has a zero dimension");
    if (__builtin_mul_overflow(count, d, &count) || count > (int64_t{1} << 40))
      bad(path, "npy element count overflows");
  }
  const auto body_start = in.tellg();
  in.seekg(0, std::ios::end);
  const auto body_bytes = static_cast<int64_t>(in.tellg() - body_start);
  const int64_t want_bytes = count * static_cast<int64_t>(sizeof(float));
  if (body_bytes < want_bytes)
    bad(path, "truncated body: " + std::to_string(body_bytes) + " bytes, shape needs " +
                  std::to_string(want_bytes));
  if (body_bytes > want_bytes)
    bad(path,
        "body has " + std::to_string(body_bytes - want_bytes) + " trailing bytes beyond the shape");
  in.seekg(body_start);
  a.data.resize(static_cast<size_t>(count));
  in.read(reinterpret_cast<char*>(a.data.data()), want_bytes);
  if (in.gcount() != want_bytes) bad(path, "truncated body");
  return a;
}

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  int64_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    dict += (shape.size() == 1 || i + 1 < shape.size()) ? ", " : "";
    count *= shape[i];
  }
  if (shape.size() == 1) dict.pop_back();
  dict += "), }";
  // Pad so that magic + len + header is a multiple of 64, ending in '\n'.
  const size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(ErrorCode::io_error, path + ": cannot open for writing");
  const unsigned char head[10] = {0x93,
                                  'N',
                                  'U',
                                  'M',
                                  'P',
                                  'Y',
                                  1,
                                  0,
                                  static_cast<unsigned char>(dict.size() & 0xff),
                                  static_cast<unsigned char>(dict.size() >> 8)};
  out.write(reinterpret_cast<const char*>(head), 10);
  out.write(dict.data(), static_cast<std::streamsize>(dict.size()));
  out.write(reinterpret_cast<const char*>(data), count * static_cast<int64_t>(sizeof(float)));
  if (!out) throw Error(ErrorCode::io_error, path + ": write failed");
}

}  // namespace sparkle
