// The tuner's records on their own (core/tune/tuning_store): a record
// survives the round trip to disk with every timing, a corrupt, truncated
// or foreign line is ignored with a warning while the others still count,
// records of other plugin builds stay apart, and a second writer's records
// are merged rather than lost.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "cache/cache_dir.hpp"
#include "tune/tuning_store.hpp"

using sparkle::tune::OpRecord;
using sparkle::tune::TimingRecord;
using sparkle::tune::TuningStore;

namespace {

std::string fresh_dir(const char* name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("sparkle-tune-store-" + std::string(name) + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

OpRecord record(const std::string& op, const std::string& winner, double ms) {
  OpRecord r;
  r.plugin = "opengl";
  r.plugin_build = "opengl-0.1.0-abc";
  r.fingerprint = "gl-0123456789abcdef";
  r.op = op;
  r.winner = winner;
  r.winner_ms = ms;
  r.default_variant = "gl_tiled_64x64x8_8x8";
  r.default_ms = ms * 1.5;
  r.timer = "device";
  r.tuned_at = 1796000000;
  r.seconds = 2.5;
  TimingRecord a;
  a.variant = winner;
  a.family = "gemm";
  a.samples_ms = {ms, ms * 1.01, ms * 0.99};
  a.median_ms = ms;
  a.min_ms = ms * 0.99;
  a.max_ms = ms * 1.01;
  a.plan_ms = 120;
  a.max_rel_error = 2.5e-7;
  TimingRecord b;
  b.variant = "gl_wino4_64x64x8_8x8";
  b.family = "winograd4";
  b.error = "wrong result: relative error 0.5 > 1e-05; with, commas = and | bars";
  b.max_rel_error = 0.5;
  r.timings = {a, b};
  return r;
}

std::string file_of(const std::string& dir) { return dir + "/gl-0123456789abcdef.txt"; }

std::string read(const std::string& path) {
  std::string s;
  REQUIRE(sparkle::cache::read_file(path, &s));
  return s;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace

TEST_CASE("a tuning record round-trips with every timing") {
  const OpRecord r = record("n1c64h56w56_k64r3s3", "gl_tiled_128x64x8_8x8_v4", 0.25);
  const std::string line = TuningStore::format_line(r);
  CHECK(line.find('\n') == std::string::npos);
  const auto back = TuningStore::parse_line(line);
  REQUIRE(back.has_value());
  CHECK(back->winner == r.winner);
  CHECK(back->winner_ms == doctest::Approx(0.25));
  CHECK(back->default_ms == doctest::Approx(0.375));
  CHECK(back->tuned_at == r.tuned_at);
  REQUIRE(back->timings.size() == 2);
  CHECK(back->timings[0].samples_ms.size() == 3);
  CHECK(back->timings[0].samples_ms[1] == doctest::Approx(0.2525));
  CHECK(back->timings[1].error == r.timings[1].error);  // separators escaped
  CHECK(back->timings[1].samples_ms.empty());

  const std::string dir = fresh_dir("roundtrip");
  {
    TuningStore store(dir);
    CHECK(store.put(r));
  }
  TuningStore again(dir);
  const auto found = again.find("opengl", "opengl-0.1.0-abc", "gl-0123456789abcdef", r.op);
  REQUIRE(found.has_value());
  CHECK(found->timings.size() == 2);
  // Another plugin build keys another record: generated code may differ.
  CHECK_FALSE(again.find("opengl", "opengl-0.1.0-xyz", "gl-0123456789abcdef", r.op).has_value());
  CHECK(again.find_any_build("gl-0123456789abcdef", r.op).has_value());
  std::filesystem::remove_all(dir);
}

TEST_CASE("corrupt, truncated and foreign records are ignored and the others still count") {
  const std::string dir = fresh_dir("corrupt");
  {
    TuningStore store(dir);
    for (int i = 0; i < 4; ++i)
      REQUIRE(store.put(record("op" + std::to_string(i), "v" + std::to_string(i), 0.1 + i)));
  }
  std::istringstream in(read(file_of(dir)));
  std::string header, l0, l1, l2, l3;
  std::getline(in, header);
  std::getline(in, l0);
  std::getline(in, l1);
  std::getline(in, l2);
  std::getline(in, l3);
  REQUIRE(!l3.empty());
  l0[l0.size() / 2] ^= 0x20;         // a flipped byte: the checksum fails
  l1 = l1.substr(0, l1.size() / 2);  // truncated
  // A line of another device in this device's file (copied by hand).
  std::string foreign = TuningStore::format_line([] {
    OpRecord r = record("op9", "v9", 1);
    r.fingerprint = "gl-ffffffffffffffff";
    return r;
  }());
  write(file_of(dir), header + "\n" + l0 + "\n" + l1 + "\n" + l2 + "\n" + l3 + "\n" + foreign +
                          "\nnot a record at all\n");
  TuningStore store(dir);
  CHECK_FALSE(store.find("opengl", "opengl-0.1.0-abc", "gl-0123456789abcdef", "op0").has_value());
  CHECK_FALSE(store.find("opengl", "opengl-0.1.0-abc", "gl-0123456789abcdef", "op1").has_value());
  CHECK(store.find("opengl", "opengl-0.1.0-abc", "gl-0123456789abcdef", "op2").has_value());
  CHECK(store.find("opengl", "opengl-0.1.0-abc", "gl-0123456789abcdef", "op3").has_value());
  CHECK(store.records("gl-0123456789abcdef").size() == 2);
  // Tuning op0 again replaces the bad line; the file is whole afterwards.
  REQUIRE(store.put(record("op0", "v0b", 0.5)));
  TuningStore fresh(dir);
  const auto r0 = fresh.find("opengl", "opengl-0.1.0-abc", "gl-0123456789abcdef", "op0");
  REQUIRE(r0.has_value());
  CHECK(r0->winner == "v0b");
  CHECK(fresh.records("gl-0123456789abcdef").size() == 3);
  // An empty file and a zero-length one are simply no records.
  write(file_of(dir), "");
  TuningStore empty(dir);
  CHECK(empty.records("gl-0123456789abcdef").empty());
  std::filesystem::remove_all(dir);
}

TEST_CASE("records another process wrote meanwhile are merged, not lost") {
  const std::string dir = fresh_dir("merge");
  TuningStore a(dir), b(dir);
  CHECK(a.records("gl-0123456789abcdef").empty());  // a loaded the (empty) file first
  REQUIRE(b.put(record("from-b", "vb", 0.2)));
  REQUIRE(a.put(record("from-a", "va", 0.3)));
  TuningStore c(dir);
  CHECK(c.find("opengl", "opengl-0.1.0-abc", "gl-0123456789abcdef", "from-a").has_value());
  CHECK(c.find("opengl", "opengl-0.1.0-abc", "gl-0123456789abcdef", "from-b").has_value());
  std::filesystem::remove_all(dir);
}

TEST_CASE("a store without a folder keeps records for the process only") {
  TuningStore store("");
  CHECK_FALSE(store.put(record("op", "v", 1)));
  CHECK(store.find("opengl", "opengl-0.1.0-abc", "gl-0123456789abcdef", "op").has_value());
}
