// Program cache: the live-object LRU (single flight, LRU order, in-use
// entries survive) and the disk blob store (round trip, every kind of bad
// entry is a miss that gets replaced or skipped, size cap, eviction).
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sparkle/live_cache.hpp>
#include <thread>

#include "cache/blob_entry.hpp"
#include "cache/blob_store.hpp"
#include "cache/sha256.hpp"

namespace fs = std::filesystem;
using sparkle::LiveCache;
using sparkle::cache::BlobStore;
using sparkle::cache::BlobStoreConfig;

namespace {

struct Program {
  explicit Program(int id) : id(id) {}
  int id;
};

fs::path fresh_dir(const std::string& name) {
  auto dir =
      fs::temp_directory_path() / ("sparkle-cache-test-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

BlobStoreConfig config_in(const fs::path& dir, uint64_t max_bytes = 1 << 20) {
  BlobStoreConfig c;
  c.dir = dir.string();
  c.max_bytes = max_bytes;
  c.core_build_id = "test-core";
  return c;
}

struct Key {
  std::string source, fingerprint = "gpu-A", name = "k";
  sparkle_blob_key c() const {
    return {sizeof(sparkle_blob_key), "opengl", "p1",          "gl-program-binary", name.c_str(),
            fingerprint.c_str(),      "",       source.data(), source.size()};
  }
};

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

TEST_CASE("sha256 matches the FIPS 180-2 test vectors") {
  CHECK(sparkle::cache::sha256_hex("abc", 3) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sparkle::cache::sha256_hex("", 0) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK(sparkle::cache::sha256_hex(two_blocks.data(), two_blocks.size()) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("16 threads asking for the same 8 programs compile each exactly once") {
  LiveCache<int, Program> cache(64);
  std::atomic<int> compiles{0};
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      while (!go) std::this_thread::yield();
      for (int i = 0; i < 8; ++i) {
        const int key = (i + t) % 8;
        auto p = cache.get(key, [&] {
          ++compiles;
          std::this_thread::sleep_for(std::chrono::milliseconds(5));  // widen the race
          return std::make_shared<Program>(key);
        });
        CHECK(p->id == key);
      }
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  CHECK(compiles == 8);
  CHECK(cache.size() == 8);
}

TEST_CASE("the live cache evicts least recently used entries, never ones in use") {
  LiveCache<int, Program> cache(3);
  auto make = [](int k) { return [k] { return std::make_shared<Program>(k); }; };
  auto held = cache.get(1, make(1));  // in use for the whole test
  cache.get(2, make(2));
  cache.get(3, make(3));
  bool hit = false;
  cache.get(2, make(2), &hit);  // 2 becomes most recent
  CHECK(hit);
  cache.get(4, make(4));  // over capacity: 3 is the oldest not in use (1 is held)
  CHECK(cache.keys() == std::vector<int>{4, 2, 1});
  cache.get(5, make(5));
  CHECK(cache.keys() == std::vector<int>{5, 4, 1});
  CHECK(held->id == 1);
  held.reset();
  cache.get(6, make(6));  // now 1 may go
  CHECK(cache.keys() == std::vector<int>{6, 5, 4});
  int calls = 0;
  CHECK_THROWS(cache.get(7, [&]() -> std::shared_ptr<Program> {
    ++calls;
    throw std::runtime_error("compile failed");
  }));
  CHECK_FALSE(cache.contains(7));  // a failure is not cached
  cache.get(7, make(7));
  CHECK(cache.contains(7));
}

TEST_CASE("blob store round trip and key fields") {
  BlobStore store(config_in(fresh_dir("roundtrip")));
  Key k{"void main() {}"};
  CHECK_FALSE(store.get(k.c()));
  store.put(k.c(), "binary", 6, 12.5);
  double ms = 0;
  auto got = store.get(k.c(), &ms);
  REQUIRE(got);
  CHECK(*got == "binary");
  CHECK(ms == 12.5);
  Key other = k;
  other.source += " ";  // any change of source is another entry
  CHECK_FALSE(store.get(other.c()));
  other = k;
  other.fingerprint = "gpu-B";
  CHECK_FALSE(store.get(other.c()));
  const auto entries = store.list();
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].name == "k");
  CHECK(entries[0].problem.empty());
}

TEST_CASE("bad cache entries are misses and are replaced") {
  const auto dir = fresh_dir("bad");
  BlobStore store(config_in(dir));
  Key k{"source text"};
  const std::string payload(1000, 'p');
  store.put(k.c(), payload.data(), payload.size(), 1);
  const std::string path = store.path_of(k.c());
  const std::string good = read(path);
  auto header_end = good.size() - payload.size();

  struct Damage {
    const char* what;
    std::string bytes;
  };
  std::string flipped_payload = good, flipped_header = good;
  flipped_payload[header_end + 10] ^= 0x40;
  flipped_header[20] ^= 0x01;
  const std::vector<Damage> cases = {
      {"truncated entry", good.substr(0, good.size() / 2)},
      {"flipped byte in the payload", flipped_payload},
      {"flipped byte in the header", flipped_header},
      {"zero-length file", ""},
      {"not an entry at all", "hello"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    write(path, c.bytes);
    CHECK_FALSE(store.get(k.c()));
    store.put(k.c(), payload.data(), payload.size(), 1);  // recompiled and replaced
    auto again = store.get(k.c());
    REQUIRE(again);
    CHECK(*again == payload);
  }

  // An entry made for another device fingerprint, found under this key's name.
  Key foreign = k;
  foreign.fingerprint = "gpu-Z";
  store.put(foreign.c(), payload.data(), payload.size(), 1);
  fs::copy_file(store.path_of(foreign.c()), path, fs::copy_options::overwrite_existing);
  CHECK_FALSE(store.get(k.c()));
  store.put(k.c(), payload.data(), payload.size(), 1);
  CHECK(store.get(k.c()));

  // A directory where the entry's file should be: skipped, not replaced.
  fs::remove(path);
  fs::create_directories(path);
  CHECK_FALSE(store.get(k.c()));
  store.put(k.c(), payload.data(), payload.size(), 1);
  CHECK_FALSE(store.get(k.c()));
  CHECK(fs::is_directory(path));
  fs::remove(path);
}

TEST_CASE("oversized, linked and special cache entries are refused before they are read") {
  const auto dir = fresh_dir("oversized");
  BlobStore store(config_in(dir, 1 << 20));
  Key k{"source"};
  const std::string path = store.path_of(k.c());
  fs::create_directories(dir);
  // A sparse 3 GiB file (no disk used): reading it whole before rejecting
  // it took seconds and 3 GiB of memory.
  const auto big = dir / "big-file";
  write(big.string(), "SPKBLOB1");
  fs::resize_file(big, uint64_t{3} << 30);
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  double seconds = 0;
  auto timed_miss = [&] {
    const auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(store.get(k.c()));
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  fs::rename(big, path);
  timed_miss();
  fs::rename(path, big);
  fs::create_symlink(big, path);  // a link to it
  timed_miss();
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  CHECK(seconds < 0.5);
  CHECK(after.ru_maxrss - before.ru_maxrss < 65536);  // KiB: no 3 GiB buffer
  const auto listed = store.list();
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].problem.find("larger than SPARKLE_CACHE_MAX_BYTES") != std::string::npos);

  // A FIFO in the entry's place must not block the lookup.
  fs::remove(path);
  REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
  CHECK_FALSE(store.get(k.c()));
  CHECK(store.list().at(0).problem == "not a regular file");
  fs::remove(path);
  fs::remove(big);
  store.put(k.c(), "data", 4, 1);
  CHECK(store.get(k.c()));
}

TEST_CASE("the entry reader names what does not add up") {
  sparkle::cache::EntryHeader h;
  h.fields = {"core", "plugin", "pb", "kind", "name", "fp", "opts", "srcsha"};
  const std::string payload = "the payload";
  h.payload_size = payload.size();
  h.payload_sha = sparkle::cache::sha256_hex(payload.data(), payload.size());
  const std::string good = sparkle::cache::encode_entry(h, payload);
  const size_t header_size = good.size() - payload.size() - 12 - 32;
  auto with_size_field = [&](uint32_t v) {
    std::string f = good;
    for (int i = 0; i < 4; ++i) f[8 + i] = static_cast<char>(v >> (8 * i));
    return f;
  };
  const struct {
    const char* what;
    std::string file;
    uint64_t max_bytes;
    const char* why;
  } cases[] = {
      {"good", good, 1 << 20, ""},
      {"empty", "", 1 << 20, "empty file"},
      {"above the cap", good, good.size() - 1, "larger than SPARKLE_CACHE_MAX_BYTES"},
      {"too short", good.substr(0, 20), 1 << 20, "truncated (20 bytes)"},
      {"other format version", "SPKBLOB0" + good.substr(8), 1 << 20,
       "not a sparkle cache entry of this format version"},
      {"header size past the end", with_size_field(0xffffffffu), 1 << 20, "truncated header"},
      {"header size one short", with_size_field(static_cast<uint32_t>(header_size - 1)), 1 << 20,
       "corrupt header"},
      {"payload cut", good.substr(0, good.size() - 3), 1 << 20,
       "truncated payload (8 of 11 bytes)"},
      {"payload grown", good + "x", 1 << 20, "truncated payload (12 of 11 bytes)"},
      {"payload flipped", good.substr(0, good.size() - 1) + "X", 1 << 20, "corrupt payload"},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.what));
    sparkle::cache::EntryHeader got;
    std::string body, why;
    const bool ok = sparkle::cache::decode_entry(c.file, c.max_bytes, &got, &body, &why);
    CAPTURE(why);
    CHECK(ok == (std::string(c.why).empty()));
    CHECK(why.find(c.why) != std::string::npos);
    if (ok) {
      CHECK(body == payload);
      CHECK(got.fields == h.fields);
    }
  }
}

TEST_CASE("an unwritable cache folder turns caching off without failing") {
  const auto base = fresh_dir("readonly");
  // A folder below a regular file cannot be created, even by root.
  write((base / "file").string(), "x");
  BlobStore store(config_in(base / "file" / "programs"));
  Key k{"s"};
  store.put(k.c(), "data", 4, 1);
  CHECK_FALSE(store.get(k.c()));
  if (geteuid() != 0) {  // permissions only bind non-root users
    const auto ro = fresh_dir("readonly2");
    BlobStore store2(config_in(ro));
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
    store2.put(k.c(), "data", 4, 1);
    CHECK_FALSE(store2.get(k.c()));
    fs::permissions(ro, fs::perms::owner_all);
  }
}

TEST_CASE("the size cap evicts least recently used entries and refuses oversized ones") {
  const auto dir = fresh_dir("cap");
  const std::string payload(1000, 'x');
  // Room for three entries of ~1.3 KB.
  BlobStore store(config_in(dir, 4000));
  std::vector<Key> keys;
  for (int i = 0; i < 3; ++i) {
    keys.push_back(Key{"src" + std::to_string(i)});
    store.put(keys.back().c(), payload.data(), payload.size(), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // distinct mtimes
  }
  CHECK(store.get(keys[0].c()));  // 0 becomes most recently used
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  keys.push_back(Key{"src3"});
  store.put(keys[3].c(), payload.data(), payload.size(), 1);
  CHECK(store.get(keys[0].c()));
  CHECK_FALSE(store.get(keys[1].c()));  // the least recently used went
  CHECK(store.get(keys[2].c()));
  CHECK(store.get(keys[3].c()));
  uint64_t total = 0;
  for (const auto& e : store.list()) total += e.bytes;
  CHECK(total <= 4000);

  const std::string huge(5000, 'h');
  Key big{"big"};
  store.put(big.c(), huge.data(), huge.size(), 1);  // larger than the whole cap
  CHECK_FALSE(store.get(big.c()));
  CHECK(store.get(keys[3].c()));  // nothing already stored was lost for it
}
