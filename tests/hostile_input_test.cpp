// Hostile and careless input to the readers: .npy headers, integers, the
// text shown in messages, shapes files, and files that are not files.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "common/test_data.hpp"

using namespace sparkle;

namespace {

std::string temp_path(const std::string& name) {
  return "/tmp/sparkle-hostile-" + std::to_string(getpid()) + "-" + name;
}

// A .npy file of the given format version with `dict` as its header text
// (padded and ended with '\n' like numpy's writer) and `body` after it.
std::string npy_bytes(const std::string& dict, const std::string& body, int version = 1) {
  std::string header = dict;
  const size_t prefix = version == 1 ? 10 : 12;
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(version);
  out += '\0';
  const size_t n = header.size();
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>((n >> 8) & 0xff);
  if (version != 1) {
    out += static_cast<char>((n >> 16) & 0xff);
    out += static_cast<char>((n >> 24) & 0xff);
  }
  return out + header + body;
}

std::string floats(std::initializer_list<float> values) {
  std::string out;
  for (float v : values) out.append(reinterpret_cast<const char*>(&v), sizeof v);
  return out;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// The message of read_npy on these bytes, or "" if it read them.
std::string npy_error(const std::string& bytes, NpyArray* out = nullptr) {
  const auto path = temp_path("case.npy");
  write_file(path, bytes);
  try {
    NpyArray a = read_npy(path);
    if (out != nullptr) *out = std::move(a);
  } catch (const Error& e) {
    CHECK(e.is_user_error());
    std::remove(path.c_str());
    return e.what();
  }
  std::remove(path.c_str());
  return "";
}

}  // namespace

TEST_CASE("npy headers numpy accepts are read: any key order, any whitespace, versions 1-3") {
  const std::string body = floats({1.5f, -2.0f, 3.25f, 4.0f, -5.0f, 6.0f});
  const struct {
    const char* what;
    std::string dict;
    int version;
  } cases[] = {
      {"numpy's own layout", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 1},
      {"keys reordered", "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}", 1},
      {"double quotes", "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}", 1},
      {"no spaces", "{'descr':'<f4','fortran_order':False,'shape':(2,3)}", 1},
      {"tabs and newlines",
       "{\n\t'descr' :\t'<f4' ,\r\n 'fortran_order':False,'shape':( 2 , 3 , )}", 1},
      {"trailing comma in the tuple", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3,)}",
       1},
      {"version 2", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 2},
      {"version 3", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 3},
      {"40 KB of padding",
       "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + std::string(40000, ' '), 2},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.what));
    NpyArray a;
    CHECK(npy_error(npy_bytes(c.dict, body, c.version), &a) == "");
    CHECK(a.shape == std::vector<int64_t>{2, 3});
    CHECK(a.data == std::vector<float>{1.5f, -2.0f, 3.25f, 4.0f, -5.0f, 6.0f});
  }
  // A 1-tuple needs its comma, as in Python.
  NpyArray a;
  CHECK(npy_error(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", body), &a) ==
        "");
  CHECK(a.shape == std::vector<int64_t>{6});
}

TEST_CASE("npy headers numpy refuses are refused, naming what is wrong") {
  const std::string body = floats({1, 2, 3, 4});
  const std::string ok_tail = "'fortran_order': False, 'shape': (1, 1, 2, 2)";
  const struct {
    const char* what;
    std::string dict;
    const char* message;
  } cases[] = {
      // The decoy once won: a regex found it inside the extra key's value.
      {"decoy descr inside another key's value",
       "{'extra': \"'descr': '<f4'\", 'descr': '>f4', " + ok_tail + "}", "unexpected key 'extra'"},
      {"big-endian data", "{'descr': '>f4', " + ok_tail + "}", "dtype '>f4' is not float32"},
      {"float64", "{'descr': '<f8', " + ok_tail + "}", "dtype '<f8' is not float32"},
      {"extra key", "{'descr': '<f4', " + ok_tail + ", 'x': 1}", "unexpected key 'x'"},
      {"40 KB extra key",
       "{'descr': '<f4', " + ok_tail + ", 'x': '" + std::string(40000, 'a') + "'}",
       "unexpected key 'x'"},
      {"repeated key", "{'descr': '<f4', 'descr': '<f4', " + ok_tail + "}",
       "key 'descr' appears twice"},
      {"missing shape", "{'descr': '<f4', 'fortran_order': False}", "the header has no 'shape'"},
      {"missing descr", "{" + ok_tail + "}", "the header has no 'descr'"},
      {"not a dict", "['descr', '<f4']", "must be a dict"},
      {"unterminated string", "{'descr: '<f4', " + ok_tail + "}", "expected ':' after key"},
      {"escape in a string", "{'descr': '<f\\x34', " + ok_tail + "}", "escape sequences"},
      {"nested shape", "{'descr': '<f4', 'fortran_order': False, 'shape': ((1, 2), 2)}",
       "tuple of non-negative integers"},
      {"negative dimension", "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 4)}",
       "tuple of non-negative integers"},
      {"1-tuple without comma", "{'descr': '<f4', 'fortran_order': False, 'shape': (4)}",
       "is not a tuple"},
      {"shape is a list", "{'descr': '<f4', 'fortran_order': False, 'shape': [1, 4]}",
       "shape must be a tuple"},
      {"fortran_order as a string", "{'descr': '<f4', 'fortran_order': 'False', 'shape': (4,)}",
       "fortran_order must be True or False"},
      {"fortran_order prefix", "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (4,)}",
       "fortran_order must be True or False"},
      {"fortran order", "{'descr': '<f4', 'fortran_order': True, 'shape': (4,)}",
       "fortran_order arrays are not supported"},
      {"text after the dict", "{'descr': '<f4', " + ok_tail + "} junk", "unexpected text after"},
      {"missing comma", "{'descr': '<f4' 'fortran_order': False, 'shape': (4,)}",
       "expected ',' or '}'"},
      {"huge dimension",
       "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
       "is too large"},
      {"element count overflow",
       "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}",
       "element count overflows"},
      {"empty header", "", "must be a dict"},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.what));
    const std::string message = npy_error(npy_bytes(c.dict, body));
    CAPTURE(message);
    CHECK(message.find(c.message) != std::string::npos);
  }
}

TEST_CASE("npy errors quote header text escaped, on one line") {
  const std::string dict = "{'descr': '<f8\x1b[31m', 'fortran_order': False, 'shape': (1,)}";
  const std::string message = npy_error(npy_bytes(dict, floats({1, 2})));
  CAPTURE(message);
  CHECK(message.find("'<f8\\x1b[31m'") != std::string::npos);
  CHECK(message.find('\x1b') == std::string::npos);
  // A newline inside a string ends it as far as the parser is concerned.
  const std::string split = npy_error(
      npy_bytes("{'descr': '<f8\nsparkle-run: error: fake', 'fortran_order': False, 'shape': (1,)}",
                floats({1, 2})));
  CAPTURE(split);
  CHECK(split.find('\n') == std::string::npos);
  CHECK(split.find("unterminated string") != std::string::npos);
}

TEST_CASE("npy length fields and bodies that do not match the file are refused") {
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)}";
  std::string lying = npy_bytes(dict, floats({1, 2, 3, 4}), 2);
  lying[8] = '\xff', lying[9] = '\xff', lying[10] = '\x0f', lying[11] = '\0';  // ~1 MB
  CHECK(npy_error(lying).find("truncated npy header") != std::string::npos);
  std::string huge = lying;
  huge[10] = '\xff';  // ~16 MB
  CHECK(npy_error(huge).find("is implausible") != std::string::npos);
  CHECK(npy_error(npy_bytes(dict, floats({1, 2, 3}))).find("truncated body") != std::string::npos);
  CHECK(npy_error(npy_bytes(dict, floats({1, 2, 3, 4, 5}))).find("4 trailing bytes") !=
        std::string::npos);
  CHECK(npy_error("\x93NUMPY\x04").find("bad magic") != std::string::npos);
  CHECK(npy_error(std::string("\x93NUMPY\x04\0\0\0", 10)).find("unsupported npy version 4") !=
        std::string::npos);
}

TEST_CASE("readers refuse FIFOs and folders instead of blocking on them") {
  const auto fifo = temp_path("fifo.npy");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH_AS(read_npy(fifo), doctest::Contains("not a regular file"), Error);
  CHECK_THROWS_WITH_AS(read_shapes_file(fifo, 1), doctest::Contains("not a regular file"), Error);
  std::remove(fifo.c_str());
  CHECK_THROWS_WITH_AS(read_npy("/tmp"), doctest::Contains("not a regular file"), Error);
  CHECK_THROWS_WITH_AS(read_shapes_file("/tmp", 1), doctest::Contains("not a regular file"), Error);
  CHECK_THROWS_WITH_AS(read_shapes_file("/dev/zero", 1), doctest::Contains("not a regular file"),
                       Error);
}

TEST_CASE("one integer grammar: optional '-', digits, nothing else") {
  const struct {
    const char* text;
    IntegerProblem problem;
    int64_t value;
  } cases[] = {
      {"0", IntegerProblem::none, 0},
      {"8", IntegerProblem::none, 8},
      {"-3", IntegerProblem::none, -3},
      {"007", IntegerProblem::none, 7},
      {"9223372036854775807", IntegerProblem::none, INT64_MAX},
      {"-9223372036854775808", IntegerProblem::none, INT64_MIN},
      {"9223372036854775808", IntegerProblem::out_of_range, 0},
      {"", IntegerProblem::empty, 0},
      {" 1", IntegerProblem::not_integer, 0},
      {"8 ", IntegerProblem::not_integer, 0},
      {"+1", IntegerProblem::not_integer, 0},
      {"-", IntegerProblem::not_integer, 0},
      {"--1", IntegerProblem::not_integer, 0},
      {"0x10", IntegerProblem::not_integer, 0},
      {"1e3", IntegerProblem::not_integer, 0},
      {"1.0", IntegerProblem::not_integer, 0},
      {"١", IntegerProblem::not_integer, 0},  // Arabic-Indic digit one
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.text));
    const ParsedInteger v = parse_integer(c.text);
    CHECK(v.problem == c.problem);
    if (c.problem == IntegerProblem::none) CHECK(v.value == c.value);
  }
  // The CLI's and the shapes files' lists use it too.
  CHECK_THROWS_WITH_AS(parse_int_list("8 ", "batch", {1}), doctest::Contains("is not an integer"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_int_list("+1", "batch", {1}), doctest::Contains("is not an integer"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_int_list(" 1", "batch", {1}), doctest::Contains("is not an integer"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_int_list("1,,2", "pad", {1, 2, 4}), doctest::Contains("pad is empty"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_shapes("a +64 56 56 64 3 3 1 1 1\n", "t", 1),
                       doctest::Contains("C='+64' is not an integer"), Error);
}

TEST_CASE("untrusted text is shown printable and JSON gets valid UTF-8") {
  const struct {
    std::string in, printable, utf8;
  } cases[] = {
      {"plain", "plain", "plain"},
      {"line\nbreak\ttab\r", "line\\nbreak\\ttab\\r", "line\nbreak\ttab\r"},
      {"esc\x1b[2J", "esc\\x1b[2J", "esc\x1b[2J"},
      {"caf\xc3\xa9", "caf\xc3\xa9", "caf\xc3\xa9"},                    // valid UTF-8 is kept
      {"bad\xff\xfe", "bad\\xff\\xfe", "bad\\xff\\xfe"},                // invalid bytes
      {"cut\xe2\x82", "cut\\xe2\\x82", "cut\\xe2\\x82"},                // truncated sequence
      {"over\xc0\xaf", "over\\xc0\\xaf", "over\\xc0\\xaf"},             // overlong '/'
      {"sur\xed\xa0\x80", "sur\\xed\\xa0\\x80", "sur\\xed\\xa0\\x80"},  // surrogate
      {"c1\xc2\x9b", "c1\\xc2\\x9b", "c1\xc2\x9b"},                     // C1 CSI
      {std::string("nul\0", 4), "nul\\x00", std::string("nul\0", 4)},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(printable(c.in) == c.printable);
    CHECK(valid_utf8(c.in) == c.utf8);
  }
}

TEST_CASE("shapes files: bad lines name the line and refuse junk") {
  const struct {
    const char* text;
    const char* message;
  } cases[] = {
      {"a 1 2 3\n", "t:1: expected 10 fields"},
      {"a 64 56 56 64 3 3 1 1 1 groups=\n", "groups is empty"},
      {"a 64 56 56 64 3 3 1 1 1 pad=1,2,3\n", "needs 1 or 2 or 4 comma-separated values"},
      {"a 64 56 56 64 3 3 1 1 1 stride=1,\n", "ends with a comma"},
      {"a 64 56 56 64 3 3 1 1 0\n", "count=0 must be > 0"},
      {"a 64 56 56 64 3 3 1 1 1 dilation=99999999999999999999\n", "is out of range"},
      {"a 64 56 56 64 3 3 1 1 1 x\n",
       "expected 10 fields (name C H W K R S stride pad count), got 11"},
      {"a 64 56 56 64 3 3 1 1 1 groups=1 x\n", "'x' after key=value fields is not key=value"},
      {"\xff\xfe 64 56 56 64 3 3 1 -1 1\n", "layer '\\xff\\xfe': pad_top=-1 must be >= 0"},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.text));
    try {
      parse_shapes(c.text, "t", 1);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find(c.message) != std::string::npos);
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("npy float64 and big-endian files are converted only when asked to") {
  const double values[] = {1.5, -2.25, 1e300, -1e300, 3.4028235e38, 0.1};
  std::string le8, be8, be4;
  for (double v : values) {
    std::string b(reinterpret_cast<const char*>(&v), 8);
    le8 += b;
    be8 += std::string(b.rbegin(), b.rend());
    const float f = static_cast<float>(v > 1e38 ? 1 : v < -1e38 ? -1 : v);
    std::string fb(reinterpret_cast<const char*>(&f), 4);
    be4 += std::string(fb.rbegin(), fb.rend());
  }
  const std::string tail = "'fortran_order': False, 'shape': (6,)}";
  const auto path = temp_path("cast.npy");
  const float inf = std::numeric_limits<float>::infinity();
  const float flt_max = std::numeric_limits<float>::max();
  for (const auto& [descr, body] :
       {std::pair{"<f8", le8}, std::pair{">f8", be8}, std::pair{">f4", be4}}) {
    CAPTURE(std::string(descr));
    write_file(path, npy_bytes("{'descr': '" + std::string(descr) + "', " + tail, body));
    CHECK_THROWS_WITH_AS(read_npy(path), doctest::Contains("--cast converts it"), Error);
    const NpyArray a = read_npy(path, 1, true);
    REQUIRE(a.data.size() == 6);
    CHECK(a.data[0] == 1.5f);
    CHECK(a.data[1] == -2.25f);
    if (descr[2] == '8') {
      CHECK(a.data[2] == inf);  // out of float range: +-inf, as numpy's astype
      CHECK(a.data[3] == -inf);
      CHECK(a.data[4] == flt_max);  // above FLT_MAX but rounds to it
    } else {
      CHECK(a.data[2] == 1.0f);
    }
    CHECK(a.data[5] == 0.1f);
  }
  std::remove(path.c_str());
}

TEST_CASE("benchdnn problem descriptors: benchdnn's defaults, and errors naming the key") {
  const struct {
    const char* text;
    const char* want;  // Conv2dDesc::to_string()
    const char* name;
  } good[] = {
      {"mb1ic64ih56oc64kh3ph1", "n1c64h56w56_k64r3s3_st1x1_p1.1.1.1_d1x1_g1_b0_r0",
       "mb1ic64ih56oc64kh3ph1"},
      // mb defaults to 2; iw and kw follow ih and kh.
      {"ic3ih224oc64kh7sh2ph3", "n2c3h224w224_k64r7s7_st2x2_p3.3.3.3_d1x1_g1_b0_r0", nullptr},
      // Padding derived from the output size; '_' separators; a name.
      {"mb1_ic3ih224_oc64oh112_kh7sh2n\"resnet_50:conv1\"",
       "n1c3h224w224_k64r7s7_st2x2_p3.3.3.3_d1x1_g1_b0_r0", "resnet_50:conv1"},
      // Groups, rectangles, dilation counted from 0 (dw follows dh).
      {"g32mb8ic32ih112iw56oc32kh3kw1ph1pw0dh1",
       "n8c32h112w56_k32r3s1_st1x1_p1.0.1.0_d2x2_g32_b0_r0", nullptr},
  };
  for (const auto& c : good) {
    CAPTURE(std::string(c.text));
    const Layer l = parse_benchdnn_conv(c.text);
    CHECK(l.desc.to_string() == c.want);
    CHECK(l.name == (c.name != nullptr ? c.name : c.text));
  }
  const struct {
    const char* text;
    const char* message;
  } bad[] = {
      {"mb1ih56oc64kh3", "needs ic and oc"},
      {"mb1ic64oc64kh3", "needs ih or iw"},
      {"mb1ic64ih56oc64kh3xx1", "unknown key 'xx'"},
      {"mb1ic64ih56oc64kh", "kh needs a number"},
      {"mb1ic64ic3ih56oc64", "ic is given twice"},
      {"mb1ic64id8ih56oc64kh3", "3-D problems (id) are not supported"},
      {"mb1ic64ih56oc64kh3ph0oh99", "oh99 does not match the output size 54"},
      {"mb1ic64ih56oc64kh3oh99", "oh99 does not match the output size 100"},
      {"mb1ic64ih56oc64kh3n\"open", "unterminated name"},
      {"g3mb1ic64ih56oc64kh3", "groups=3 does not divide C=64"},
      {"mb1ic64ih56oc64kh3sh99999999999999999999", "is out of range"},
      {"mb1ic4ih6oc4kh3dh9223372036854775807", "dh is out of range"},
      {"mb1ic4ih6oc4kh3sh4611686018427387904oh9", "oh is out of range"},
      {"mb1ic64ih56oc64kh3\x1b", "unknown key '\\x1b'"},
  };
  for (const auto& c : bad) {
    CAPTURE(std::string(c.text));
    CHECK_THROWS_WITH_AS(parse_benchdnn_conv(c.text), doctest::Contains(c.message), Error);
  }
}

TEST_CASE("benchdnn batch files: options carry over, includes, and refusals") {
  const auto dir = temp_path("batch");
  std::filesystem::create_directories(dir);
  write_file(dir + "/inner", "# included\nmb1ic8ih8oc8kh3ph1n\"inner\"\n");
  write_file(dir + "/main",
             "--dir=FWD_B --mb=4\nic4ih6oc4kh3ph1n\"a\"  # comment\n--attr-post-ops=relu "
             "--alg=direct --batch=inner\n--reset ic4ih6oc4kh1n\"b\"\n");
  const auto layers = read_benchdnn_batch(dir + "/main");
  REQUIRE(layers.size() == 3);
  CHECK(layers[0].name == "a");
  CHECK(layers[0].desc.n == 4);
  CHECK(layers[0].desc.has_bias);
  CHECK_FALSE(layers[0].desc.relu);
  CHECK(layers[1].name == "inner");
  CHECK(layers[1].desc.n == 4);  // --mb overrides the problem's own mb1
  CHECK(layers[1].desc.relu);
  CHECK(layers[2].desc.n == 2);  // reset: benchdnn's default
  CHECK_FALSE(layers[2].desc.has_bias);
  CHECK(read_benchdnn_batch(dir + "/main", 7)[2].desc.n == 7);

  write_file(dir + "/loop", "--batch=loop\n");
  CHECK_THROWS_WITH_AS(read_benchdnn_batch(dir + "/loop"), doctest::Contains("nested more than 8"),
                       Error);
  write_file(dir + "/bwd", "--dir=BWD_D ic4ih6oc4kh3\n");
  CHECK_THROWS_WITH_AS(read_benchdnn_batch(dir + "/bwd"),
                       doctest::Contains("bwd:1: --dir=BWD_D: only forward"), Error);
  write_file(dir + "/bf16", "--dt=bf16 ic4ih6oc4kh3\n");
  CHECK_THROWS_WITH_AS(read_benchdnn_batch(dir + "/bf16"), doctest::Contains("only f32"), Error);
  write_file(dir + "/bad", "\nic4ih6oc4kh3 ic4ih6kh3\n");
  CHECK_THROWS_WITH_AS(read_benchdnn_batch(dir + "/bad"), doctest::Contains("bad:2: benchdnn"),
                       Error);
  write_file(dir + "/empty", "# nothing\n");
  CHECK_THROWS_WITH_AS(read_benchdnn_batch(dir + "/empty"), doctest::Contains("no problems"),
                       Error);
  std::filesystem::remove_all(dir);
}
