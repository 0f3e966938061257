// NumPy .npy reading and writing (format versions 1-3), float32 C order only.
//
// The header is a Python dict literal that numpy reads with
// ast.literal_eval and then requires to have exactly the keys descr,
// fortran_order and shape. This parses that literal by hand, one pass and no
// recursion (work is linear in the header), accepting the literals numpy
// writes in any key order and with any whitespace, and refusing everything
// else: unknown or repeated keys, nested values, escapes in strings.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sparkle/error.hpp>
#include <sparkle/memory.hpp>
#include <sparkle/npy.hpp>
#include <sparkle/text.hpp>
#include <string_view>

#include "npy/npy_header.hpp"

namespace sparkle {
namespace {

[[noreturn]] void bad(const std::string& origin, const std::string& why) {
  throw Error(ErrorCode::invalid_argument, printable(origin) + ": " + why);
}

// Quotes untrusted header text for a message, cut to a readable length.
std::string quoted(std::string_view text) {
  constexpr size_t kMax = 60;
  const bool cut = text.size() > kMax;
  return "'" + printable(text.substr(0, kMax)) + (cut ? "...'" : "'");
}

class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& origin) : s_(text), origin_(origin) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_order = false, have_shape = false;
    skip_space();
    expect('{', "the header must be a dict starting with '{'");
    skip_space();
    while (peek() != '}') {
      const std::string key = string_literal("a dict key");
      skip_space();
      expect(':', "expected ':' after key " + quoted(key));
      skip_space();
      if (key == "descr") {
        if (have_descr) fail("key 'descr' appears twice");
        have_descr = true;
        h.descr = string_literal("the value of 'descr'");
      } else if (key == "fortran_order") {
        if (have_order) fail("key 'fortran_order' appears twice");
        have_order = true;
        h.fortran_order = boolean_literal();
      } else if (key == "shape") {
        if (have_shape) fail("key 'shape' appears twice");
        have_shape = true;
        h.shape = shape_tuple();
      } else {
        // numpy refuses extra keys too; reading past them is how a decoy
        // 'descr' inside another value once fooled a regex.
        fail("unexpected key " + quoted(key) + " (a .npy header has only descr, fortran_order, " +
             "shape)");
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        skip_space();
      } else if (peek() != '}') {
        fail("expected ',' or '}' after the value of '" + key + "'");
      }
    }
    ++pos_;  // '}'
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the header dict: " + quoted(rest()));
    if (!have_descr) fail("the header has no 'descr'");
    if (!have_order) fail("the header has no 'fortran_order'");
    if (!have_shape) fail("the header has no 'shape'");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const { bad(origin_, "npy header: " + why); }

  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  std::string_view rest() const { return s_.substr(pos_); }
  bool at_end() const { return pos_ >= s_.size(); }

  void expect(char c, const std::string& why) {
    if (at_end() || s_[pos_] != c)
      fail(why + (at_end() ? " (end of header)" : ", got " + quoted(rest())));
    ++pos_;
  }

  // Python's whitespace between tokens (numpy pads with spaces and ends the
  // header with '\n').
  void skip_space() {
    auto space = [](char c) {
      return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    };
    while (!at_end() && space(s_[pos_])) ++pos_;
  }

  // '...' or "..." without escapes (numpy writes repr() of a plain dtype
  // string, which never has any).
  std::string string_literal(const std::string& what) {
    const char q = peek();
    if (q != '\'' && q != '"')
      fail("expected a quoted string as " + what + ", got " + quoted(rest()));
    const size_t start = ++pos_;
    while (!at_end() && s_[pos_] != q) {
      if (s_[pos_] == '\\') fail("escape sequences in header strings are not supported");
      if (s_[pos_] == '\n')
        fail("unterminated string " + quoted(s_.substr(start - 1, pos_ - start + 1)));
      ++pos_;
    }
    if (at_end()) fail("unterminated string " + quoted(s_.substr(start - 1)));
    return std::string(s_.substr(start, pos_++ - start));
  }

  bool boolean_literal() {
    for (const auto& [word, value] : {std::pair{"True", true}, std::pair{"False", false}}) {
      const std::string_view w(word);
      if (rest().substr(0, w.size()) == w) {
        const char next = pos_ + w.size() < s_.size() ? s_[pos_ + w.size()] : '\0';
        if (std::isalnum(static_cast<unsigned char>(next)) || next == '_') break;
        pos_ += w.size();
        return value;
      }
    }
    fail("fortran_order must be True or False, got " + quoted(rest()));
  }

  // "()", "(3,)", "(1, 3, 8, 8)", "(1, 3,)": non-negative decimal integers.
  std::vector<int64_t> shape_tuple() {
    expect('(', "shape must be a tuple");
    std::vector<int64_t> shape;
    skip_space();
    bool comma_after_last = false;
    while (peek() != ')') {
      if (!shape.empty() && !comma_after_last) fail("expected ',' or ')' in shape");
      const size_t start = pos_;
      while (!at_end() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      const std::string_view digits = s_.substr(start, pos_ - start);
      const ParsedInteger v = parse_integer(digits);
      if (v.problem == IntegerProblem::out_of_range)
        fail("shape dimension " + quoted(digits) + " is too large");
      if (v.problem != IntegerProblem::none)
        fail("shape must be a tuple of non-negative integers, got " + quoted(rest()));
      if (shape.size() >= kMaxNpyRank)
        fail("shape has more than " + std::to_string(kMaxNpyRank) + " dimensions");
      shape.push_back(v.value);
      skip_space();
      comma_after_last = peek() == ',';
      if (comma_after_last) {
        ++pos_;
        skip_space();
      }
    }
    // Python needs the comma in a 1-tuple: "(3)" is the integer 3.
    if (shape.size() == 1 && !comma_after_last) fail("shape (N) is not a tuple; numpy writes (N,)");
    ++pos_;  // ')'
    return shape;
  }

  std::string_view s_;
  const std::string& origin_;
  size_t pos_ = 0;
};

// Reads exactly n bytes at the current offset; false at end of file.
bool read_exact(int fd, void* data, size_t n) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t got = ::read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

// double -> float rounded to nearest, overflowing to +-inf like IEEE
// hardware and numpy; written out because an out-of-range conversion is
// undefined behaviour in C++.
float to_float(double v) {
  constexpr double kRoundsToInf = 0x1.ffffffp127;  // FLT_MAX + half an ulp (ties to even: up)
  if (std::isnan(v) || std::fabs(v) <= std::numeric_limits<float>::max())
    return static_cast<float>(v);
  const float inf = std::numeric_limits<float>::infinity();
  if (std::fabs(v) >= kRoundsToInf) return v > 0 ? inf : -inf;
  return v > 0 ? std::numeric_limits<float>::max() : -std::numeric_limits<float>::max();
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

NpyHeader parse_npy_header(std::string_view header, const std::string& origin) {
  return HeaderParser(header, origin).parse();
}

NpyArray read_npy(const std::string& path, int expected_rank, bool cast) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then
  // refuses everything that is not a regular file (FIFO, device, folder).
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (f.fd < 0)
    throw Error(ErrorCode::io_error,
                printable(path) + ": cannot open for reading: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) bad(path, "not a regular file");
  const int64_t file_bytes = st.st_size;

  char magic[8] = {};
  if (!read_exact(f.fd, magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    bad(path, "not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  if (major < 1 || major > 3) bad(path, "unsupported npy version " + std::to_string(major));
  uint32_t header_len = 0;
  unsigned char b[4] = {};
  const size_t len_bytes = major == 1 ? 2 : 4;
  if (!read_exact(f.fd, b, len_bytes)) bad(path, "truncated npy header");
  header_len = b[0] | (b[1] << 8) | (static_cast<uint32_t>(b[2]) << 16) |
               (static_cast<uint32_t>(b[3]) << 24);
  const int64_t body_start = 8 + static_cast<int64_t>(len_bytes) + header_len;
  if (header_len > kMaxNpyHeaderBytes)
    bad(path, "npy header length " + std::to_string(header_len) + " is implausible (at most " +
                  std::to_string(kMaxNpyHeaderBytes) + ")");
  if (body_start > file_bytes)
    bad(path, "truncated npy header: it says " + std::to_string(header_len) +
                  " bytes, the file has " +
                  std::to_string(file_bytes - 8 - static_cast<int64_t>(len_bytes)));
  std::string header(header_len, '\0');
  if (!read_exact(f.fd, header.data(), header_len)) bad(path, "truncated npy header");

  const NpyHeader h = parse_npy_header(header, path);
  const bool convertible = h.descr == "<f8" || h.descr == ">f8" || h.descr == ">f4";
  if (h.descr != "<f4" && !(cast && convertible))
    bad(path, "dtype " + quoted(h.descr) + " is not float32 little-endian ('<f4')" +
                  (convertible ? "; --cast converts it" : ""));
  const size_t item = h.descr[2] == '8' ? 8 : 4;
  const bool swap = h.descr[0] == '>';
  if (h.fortran_order) bad(path, "fortran_order arrays are not supported; save in C order");

  NpyArray a;
  a.shape = h.shape;
  if (expected_rank > 0 && static_cast<int>(a.shape.size()) != expected_rank)
    bad(path, "rank " + std::to_string(a.shape.size()) + " but expected " +
                  std::to_string(expected_rank) + " dimensions");
  int64_t count = 1;
  for (int64_t d : a.shape) {
    if (d <= 0) bad(path, "npy shape has a zero dimension");
    if (__builtin_mul_overflow(count, d, &count) || count > (int64_t{1} << 40))
      bad(path, "npy element count overflows");
  }
  const int64_t body_bytes = file_bytes - body_start;
  const int64_t want_bytes = count * static_cast<int64_t>(item);
  if (body_bytes < want_bytes)
    bad(path, "truncated body: " + std::to_string(body_bytes) + " bytes, shape needs " +
                  std::to_string(want_bytes));
  if (body_bytes > want_bytes)
    bad(path,
        "body has " + std::to_string(body_bytes - want_bytes) + " trailing bytes beyond the shape");
  check_host_budget(printable(path), static_cast<uint64_t>(count) * sizeof(float));
  a.data.resize(static_cast<size_t>(count));
  if (item == 4 && !swap) {
    if (!read_exact(f.fd, a.data.data(), static_cast<size_t>(want_bytes)))
      bad(path, "truncated body (the file shrank while it was read)");
    return a;
  }
  // Converted in chunks, so that a float64 file needs no second full copy.
  std::vector<unsigned char> chunk(item << 16);
  for (int64_t done = 0; done < count;) {
    const int64_t n = std::min<int64_t>(count - done, 1 << 16);
    if (!read_exact(f.fd, chunk.data(), static_cast<size_t>(n) * item))
      bad(path, "truncated body (the file shrank while it was read)");
    for (int64_t i = 0; i < n; ++i) {
      unsigned char* p = chunk.data() + i * static_cast<int64_t>(item);
      if (swap) std::reverse(p, p + item);
      if (item == 8) {
        double v;
        std::memcpy(&v, p, 8);
        a.data[static_cast<size_t>(done + i)] = to_float(v);
      } else {
        std::memcpy(&a.data[static_cast<size_t>(done + i)], p, 4);
      }
    }
    done += n;
  }
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
  if (!out) throw Error(ErrorCode::io_error, printable(path) + ": cannot open for writing");
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
  if (!out) throw Error(ErrorCode::io_error, printable(path) + ": write failed");
}

}  // namespace sparkle
