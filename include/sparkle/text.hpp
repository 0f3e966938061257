// Text rules shared by libsparkle, the plugins and sparkle-run: one integer
// grammar, and how untrusted bytes (file contents, file names) are shown.
// Header-only because plugins never link libsparkle but must parse their
// environment variables by the same rule.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace sparkle {

// The one integer grammar: an optional '-', then 1 to 19 decimal digits, and
// nothing else: no spaces, no '+', no "0x", no trailing text. Every flag,
// shapes-file field and environment variable reads integers this way, so
// "8 ", " 8" and "+8" are refused alike.
enum class IntegerProblem { none, empty, not_integer, out_of_range };

struct ParsedInteger {
  int64_t value = 0;
  IntegerProblem problem = IntegerProblem::none;
};

inline ParsedInteger parse_integer(std::string_view text) {
  ParsedInteger out;
  if (text.empty()) {
    out.problem = IntegerProblem::empty;
    return out;
  }
  const char* first = text.data();
  const char* last = first + text.size();
  // from_chars takes '-' but never '+' or spaces; check the first digit
  // ourselves so that "-" alone or "--1" read as not an integer.
  const char* digits = *first == '-' ? first + 1 : first;
  if (digits == last || *digits < '0' || *digits > '9') {
    out.problem = IntegerProblem::not_integer;
    return out;
  }
  const auto [end, ec] = std::from_chars(first, last, out.value, 10);
  if (ec == std::errc::result_out_of_range) {
    out.problem = IntegerProblem::out_of_range;
  } else if (ec != std::errc() || end != last) {
    out.problem = IntegerProblem::not_integer;
  }
  return out;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if the byte there
// does not start one (overlong forms, surrogates and code points past
// U+10FFFF are invalid, as in RFC 3629).
inline size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    if (b0 == 0xe0) lo = 0xa0;  // overlong
    if (b0 == 0xed) hi = 0x9f;  // surrogates
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    if (b0 == 0xf0) lo = 0x90;  // overlong
    if (b0 == 0xf4) hi = 0x8f;  // past U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  return n;
}

namespace text_detail {
inline void append_hex_escape(std::string& out, unsigned char b) {
  static const char digits[] = "0123456789abcdef";
  out += "\\x";
  out += digits[b >> 4];
  out += digits[b & 15];
}
}  // namespace text_detail

// s with every byte that is not part of valid UTF-8 written as the four
// characters \xNN, so that it can go into JSON (which must be UTF-8) without
// losing what the byte was.
inline std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      text_detail::append_hex_escape(out, static_cast<unsigned char>(s[i]));
      ++i;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  return out;
}

// s made safe for a one-line message on a terminal: valid UTF-8 is kept,
// control characters become \n, \r, \t or \xNN and invalid bytes \xNN.
// Untrusted text (a .npy header, a file name) goes through this before it
// is quoted in an error, so it can neither split the line nor send escape
// sequences to the terminal.
inline std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0 || b < 0x20 || b == 0x7f) {
      if (b == '\n') {
        out += "\\n";
      } else if (b == '\r') {
        out += "\\r";
      } else if (b == '\t') {
        out += "\\t";
      } else {
        text_detail::append_hex_escape(out, b);
      }
      ++i;
    } else if (n == 2 && b == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0) {
      // C1 controls (U+0080..U+009F): CSI among them starts terminal codes.
      text_detail::append_hex_escape(out, b);
      text_detail::append_hex_escape(out, static_cast<unsigned char>(s[i + 1]));
      i += 2;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  return out;
}

}  // namespace sparkle
