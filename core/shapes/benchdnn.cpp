// oneDNN benchdnn convolution problem descriptors and batch files
// (include/sparkle/shapes.hpp), so that layer lists written for oneDNN run
// here unchanged.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sparkle/error.hpp>
#include <sparkle/shapes.hpp>
#include <sparkle/text.hpp>
#include <sstream>

namespace sparkle {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw Error(ErrorCode::invalid_argument, message);
}

}  // namespace

Layer parse_benchdnn_conv(const std::string& text) {
  const std::string what = "benchdnn problem '" + printable(text) + "'";
  // Every key takes a decimal value; '_' may separate groups of keys.
  std::map<std::string, int64_t> v;
  std::string name;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '_') {
      ++i;
      continue;
    }
    if (text[i] == 'n' && i + 1 < text.size() && text[i + 1] == '"') {
      const size_t end = text.find('"', i + 2);
      if (end == std::string::npos) fail(what + ": unterminated name");
      name = text.substr(i + 2, end - i - 2);
      i = end + 1;
      continue;
    }
    size_t key_end = i;
    while (key_end < text.size() && text[key_end] >= 'a' && text[key_end] <= 'z') ++key_end;
    size_t num_end = key_end;
    while (num_end < text.size() && text[num_end] >= '0' && text[num_end] <= '9') ++num_end;
    const std::string key = text.substr(i, key_end - i);
    const std::string digits = text.substr(key_end, num_end - key_end);
    static const char* const kKeys[] = {"g",  "mb", "ic", "id", "ih", "iw", "oc", "od",
                                        "oh", "ow", "kd", "kh", "kw", "sd", "sh", "sw",
                                        "pd", "ph", "pw", "dd", "dh", "dw"};
    bool known = false;
    for (const char* k : kKeys) known = known || key == k;
    if (key.empty() || !known)
      fail(what + ": unknown key '" + printable(key.empty() ? text.substr(i, 1) : key) +
           "' (known: g mb ic ih iw oc oh ow kh kw sh sw ph pw dh dw n\"name\")");
    const ParsedInteger n = parse_integer(digits);
    if (n.problem == IntegerProblem::out_of_range)
      fail(what + ": " + key + digits + " is out of range");
    if (n.problem != IntegerProblem::none) fail(what + ": " + key + " needs a number");
    if (v.count(key)) fail(what + ": " + key + " is given twice");
    v[key] = n.value;
    i = num_end;
  }
  for (const char* k : {"id", "od", "kd", "sd", "pd", "dd"})
    if (v.count(k)) fail(what + ": 3-D problems (" + k + ") are not supported");
  if (!v.count("ic") || !v.count("oc")) fail(what + ": needs ic and oc");
  if (!v.count("ih") && !v.count("iw")) fail(what + ": needs ih or iw");
  // benchdnn's defaults: mb 2, one spatial size for both when only one is
  // given, stride 1, no dilation (benchdnn counts dilation from 0).
  auto get = [&](const char* k, int64_t fallback) { return v.count(k) ? v[k] : fallback; };
  // An output size given for one side is the other's too, like the rest.
  if (v.count("oh") && !v.count("ow")) v["ow"] = v["oh"];
  if (v.count("ow") && !v.count("oh")) v["oh"] = v["ow"];
  Layer l;
  l.name = name.empty() ? text : name;
  Conv2dDesc& d = l.desc;
  d.groups = get("g", 1);
  d.n = get("mb", 2);
  d.c = v["ic"];
  d.k = v["oc"];
  d.h = get("ih", get("iw", 0));
  d.w = get("iw", d.h);
  d.r = get("kh", get("kw", 1));
  d.s = get("kw", d.r);
  d.stride_h = get("sh", get("sw", 1));
  d.stride_w = get("sw", d.stride_h);
  // benchdnn's dilation 0 is ours 1; the +1 must not overflow.
  for (const char* k : {"dh", "dw"})
    if (v.count(k) && v[k] == INT64_MAX) fail(what + ": " + k + " is out of range");
  d.dilation_h = get("dh", get("dw", 0)) + 1;
  d.dilation_w = get("dw", get("dh", 0)) + 1;
  // Padding: as given (one side's for the other when only one is); else,
  // when the output size is given, the smallest symmetric padding that
  // produces it; else none. Checked against oh/ow below either way.
  auto pad_for = [&](const char* pk, const char* ok, const char* other, int64_t in, int64_t k,
                     int64_t s, int64_t dil) -> int64_t {
    if (v.count(pk)) return v[pk];
    if (v.count(ok)) {
      // (out - 1) * s + (k - 1) * dil + 1 - in, in int64 or not at all.
      int64_t total = 0, extent = 0;
      if (__builtin_mul_overflow(v[ok] - 1, s, &total) ||
          __builtin_mul_overflow(k - 1, dil, &extent) ||
          __builtin_add_overflow(total, extent, &total) ||
          __builtin_sub_overflow(total, in - 1, &total))
        fail(what + ": " + ok + " is out of range");
      return total > 0 ? total / 2 + total % 2 : 0;
    }
    return v.count(other) ? v[other] : 0;
  };
  d.pad_top = d.pad_bottom = pad_for("ph", "oh", "pw", d.h, d.r, d.stride_h, d.dilation_h);
  d.pad_left = d.pad_right = pad_for("pw", "ow", "ph", d.w, d.s, d.stride_w, d.dilation_w);
  try {
    d.validate();
  } catch (const Error& e) {
    fail(what + ": " + e.what());
  }
  for (const auto& [ok, got] : {std::pair{"oh", d.out_h()}, std::pair{"ow", d.out_w()}})
    if (v.count(ok) && v[ok] != got)
      fail(what + ": " + ok + std::to_string(v[ok]) + " does not match the output size " +
           std::to_string(got) + " of the other fields");
  return l;
}

std::vector<Layer> read_benchdnn_batch(const std::string& path, int64_t batch_override) {
  std::vector<Layer> layers;
  struct State {
    int64_t mb = 0;  // --mb: 0 keeps each problem's own
    bool bias = false, relu = false;
  };
  // Included files (--batch=FILE, relative to the including file) share the
  // state, as in benchdnn; the depth limit stops include loops.
  auto read = [&](auto&& self, const std::string& file, State& st, int depth) -> void {
    if (depth > 8) fail(printable(file) + ": --batch files nested more than 8 deep");
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
      throw Error(ErrorCode::io_error, printable(file) + ": cannot open batch file");
    if (std::filesystem::file_size(file, ec) > (16u << 20))
      fail(printable(file) + ": batch file larger than 16 MiB");
    std::ifstream in(file);
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      const std::string where = printable(file) + ":" + std::to_string(line_no) + ": ";
      if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
      std::istringstream tokens(line);
      for (std::string t; tokens >> t;) {
        if (t.rfind("--", 0) != 0) {
          Layer l;
          try {
            l = parse_benchdnn_conv(t);
          } catch (const Error& e) {
            fail(where + e.what());
          }
          if (st.mb > 0) l.desc.n = st.mb;
          if (batch_override > 0) l.desc.n = batch_override;
          l.desc.has_bias = st.bias;
          l.desc.relu = st.relu;
          layers.push_back(l);
          continue;
        }
        const size_t eq = t.find('=');
        const std::string key = t.substr(0, eq),
                          value = eq == std::string::npos ? "" : t.substr(eq + 1);
        if (key == "--reset") {
          st = State{};
        } else if (key == "--mb") {
          const ParsedInteger n = parse_integer(value);
          if (n.problem != IntegerProblem::none || n.value < 0)
            fail(where + "--mb='" + printable(value) + "' is not a batch size");
          st.mb = n.value;
        } else if (key == "--dir") {
          if (value != "FWD_B" && value != "FWD_D" && value != "FWD_I")
            fail(where + "--dir=" + printable(value) +
                 ": only forward convolution (FWD_B, FWD_D, "
                 "FWD_I) is supported");
          st.bias = value == "FWD_B";
        } else if (key == "--dt" || key == "--cfg") {
          if (value != "f32" && value != "f32:f32:f32")
            fail(where + key + "=" + printable(value) + ": only f32 is supported");
        } else if (key == "--attr-post-ops") {
          if (value != "relu" && value != "'relu'" && !value.empty() && value != "''")
            fail(where + "--attr-post-ops=" + printable(value) + ": only relu is supported");
          st.relu = value == "relu" || value == "'relu'";
        } else if (key == "--alg" || key == "--stag" || key == "--wtag" || key == "--dtag" ||
                   key == "--conv") {
          // Algorithm and memory-format hints: sparkle chooses its own.
        } else if (key == "--batch") {
          const std::filesystem::path inc(value);
          self(self,
               inc.is_absolute() ? value
                                 : (std::filesystem::path(file).parent_path() / inc).string(),
               st, depth + 1);
        } else {
          fail(where + "unsupported benchdnn option '" + printable(key) + "'");
        }
      }
    }
  };
  State st;
  read(read, path, st, 0);
  if (layers.empty()) fail(printable(path) + ": no problems");
  return layers;
}

}  // namespace sparkle
