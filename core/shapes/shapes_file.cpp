// Parser of benchmark shape files (see include/sparkle/shapes.hpp).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sparkle/error.hpp>
#include <sparkle/shapes.hpp>
#include <sparkle/text.hpp>
#include <sstream>

namespace sparkle {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw Error(ErrorCode::invalid_argument, message);
}

int64_t parse_int(const std::string& text, const std::string& field) {
  const ParsedInteger v = parse_integer(text);
  switch (v.problem) {
    case IntegerProblem::none:
      return v.value;
    case IntegerProblem::empty:
      fail(field + " is empty");
    case IntegerProblem::out_of_range:
      fail(field + "='" + printable(text) + "' is out of range");
    case IntegerProblem::not_integer:
      break;
  }
  fail(field + "='" + printable(text) + "' is not an integer");
}

// A shapes file is a few hundred lines; anything this large is a mistake
// (or /dev/zero) and would only be read into memory to be refused.
constexpr uintmax_t kMaxShapesFileBytes = 16 << 20;

}  // namespace

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& field,
                                    const std::vector<size_t>& allowed_counts) {
  std::vector<int64_t> values;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) values.push_back(parse_int(item, field));
  if (!text.empty() && text.back() == ',')
    fail(field + "='" + printable(text) + "' ends with a comma");
  if (std::find(allowed_counts.begin(), allowed_counts.end(), values.size()) ==
      allowed_counts.end()) {
    std::string counts;
    for (size_t c : allowed_counts) counts += (counts.empty() ? "" : " or ") + std::to_string(c);
    fail(field + "='" + printable(text) + "' needs " + counts + " comma-separated values");
  }
  return values;
}

std::vector<Layer> parse_shapes(const std::string& text, const std::string& origin, int64_t batch) {
  std::vector<Layer> layers;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string where = printable(origin) + ":" + std::to_string(line_no) + ": ";
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream fields(line);
    std::vector<std::string> tok;
    for (std::string t; fields >> t;) tok.push_back(t);
    if (tok.empty()) continue;
    size_t positional = 0;
    while (positional < tok.size() && tok[positional].find('=') == std::string::npos) ++positional;
    if (positional != 10)
      fail(where + "expected 10 fields (name C H W K R S stride pad count), got " +
           std::to_string(positional));
    try {
      Layer l;
      l.name = tok[0];
      Conv2dDesc& d = l.desc;
      d.n = batch;
      d.c = parse_int(tok[1], "C");
      d.h = parse_int(tok[2], "H");
      d.w = parse_int(tok[3], "W");
      d.k = parse_int(tok[4], "K");
      d.r = parse_int(tok[5], "R");
      d.s = parse_int(tok[6], "S");
      d.stride_h = d.stride_w = parse_int(tok[7], "stride");
      d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = parse_int(tok[8], "pad");
      l.count = parse_int(tok[9], "count");
      if (l.count <= 0) fail("count=" + tok[9] + " must be > 0");
      for (size_t i = positional; i < tok.size(); ++i) {
        const auto eq = tok[i].find('=');
        if (eq == std::string::npos)
          fail("'" + printable(tok[i]) + "' after key=value fields is not key=value");
        const std::string key = tok[i].substr(0, eq), value = tok[i].substr(eq + 1);
        if (key == "groups") {
          d.groups = parse_int(value, "groups");
        } else if (key == "dilation") {
          auto v = parse_int_list(value, "dilation", {1, 2});
          d.dilation_h = v[0];
          d.dilation_w = v.back();
        } else if (key == "stride") {
          auto v = parse_int_list(value, "stride", {1, 2});
          d.stride_h = v[0];
          d.stride_w = v.back();
        } else if (key == "pad") {
          auto v = parse_int_list(value, "pad", {1, 2, 4});
          if (v.size() == 1) v = {v[0], v[0], v[0], v[0]};
          if (v.size() == 2) v = {v[0], v[1], v[0], v[1]};
          d.pad_top = v[0];
          d.pad_left = v[1];
          d.pad_bottom = v[2];
          d.pad_right = v[3];
        } else {
          fail("unknown field '" + printable(key) + "' (known: groups, dilation, stride, pad)");
        }
      }
      d.validate();
      layers.push_back(l);
    } catch (const Error& e) {
      fail(where + "layer '" + printable(tok[0]) + "': " + e.what());
    }
  }
  if (layers.empty()) fail(printable(origin) + ": no layers");
  return layers;
}

std::vector<Layer> read_shapes_file(const std::string& path, int64_t batch) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status))
    throw Error(ErrorCode::io_error, printable(path) + ": cannot open shapes file");
  // A FIFO or a device would block or never end; only regular files are read.
  if (!std::filesystem::is_regular_file(status))
    fail(printable(path) + ": shapes file is not a regular file");
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxShapesFileBytes)
    fail(printable(path) + ": shapes file has " + std::to_string(size) + " bytes, more than the " +
         std::to_string(kMaxShapesFileBytes) + " a shapes file may have");
  std::ifstream in(path, std::ios::binary);
  if (ec || !in) throw Error(ErrorCode::io_error, printable(path) + ": cannot open shapes file");
  std::string text(static_cast<size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (in.bad()) throw Error(ErrorCode::io_error, printable(path) + ": cannot read shapes file");
  text.resize(static_cast<size_t>(in.gcount()));
  return parse_shapes(text, path, batch);
}

}  // namespace sparkle
