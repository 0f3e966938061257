// Plugin registry: broken plugins are skipped with a reason naming the file,
// and the engine keeps working with the good ones.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/test_data.hpp"

using namespace sparkle;

TEST_CASE("broken plugins are rejected with their reason and the engine keeps working") {
  EngineOptions options;
  options.plugin_paths = {SPARKLE_FIXTURE_DIR, SPARKLE_CPU_PLUGIN_DIR};
  options.use_default_paths = false;
  Engine engine(options);

  std::map<std::string, PluginRecord> by_file;
  for (const auto& p : engine.plugins()) by_file[p.path.substr(p.path.rfind('/') + 1)] = p;

  const std::map<std::string, std::string> expected = {
      {"libsparkle-noentry.so", "missing entry point 'sparkle_plugin_entry'"},
      {"libsparkle-badabi.so", "wrong ABI version: plugin has 99.3, host expects 1." +
                                   std::to_string(SPARKLE_PLUGIN_ABI_MINOR)},
      {"libsparkle-small.so", "descriptor struct_size 24 too small"},
      {"libsparkle-throws.so", "init threw: fixture init failure"},
      {"libsparkle-initfails.so", "init failed: fixture refuses to start"},
      {"libsparkle-nullmember.so", "descriptor member 'enqueue_conv2d' is NULL"},
      {"libsparkle-notelf.so", "not a loadable shared object: not an ELF file"},
      // Immediate binding: refused at dlopen, not exit 127 at init.
      {"libsparkle-unresolved.so", "undefined symbol: sparkle_fixture_symbol_nobody_defines"},
  };
  for (const auto& [file, reason] : expected) {
    CAPTURE(file);
    REQUIRE(by_file.count(file) == 1);
    CHECK_FALSE(by_file[file].loaded);
    CHECK(by_file[file].reason.find(reason) != std::string::npos);
    CHECK(by_file[file].path.find(SPARKLE_FIXTURE_DIR) == 0);
  }
  // A valid plugin with no devices loads and says why it has none.
  REQUIRE(by_file.count("libsparkle-empty.so") == 1);
  CHECK(by_file["libsparkle-empty.so"].loaded);
  CHECK(by_file["libsparkle-empty.so"].reason == "fixture");

  REQUIRE(by_file.count("libsparkle-cpu.so") == 1);
  CHECK(by_file["libsparkle-cpu.so"].loaded);

  Conv2dDesc d;
  d.c = 3, d.h = 5, d.w = 5, d.k = 2, d.r = 3, d.s = 3;
  std::mt19937_64 rng(test::fresh_seed());
  const auto x = test::random_tensor(d.input_elements(), rng);
  const auto w = test::random_tensor(d.weight_elements(), rng);
  auto y = test::poisoned(d.output_elements());
  CHECK(engine.conv2d(d, x, w, {}, y).device == "cpu:0");
  CHECK(test::compare_with_reference(d, x, w, {}, y).max_rel_error < 1e-5);

  // Naming the device-less backend explains why it cannot run.
  RunOptions opts;
  opts.device = "empty";
  CHECK_THROWS_WITH_AS(engine.conv2d(d, x, w, {}, y, opts),
                       doctest::Contains("backend 'empty' has no devices: fixture"), Error);
}

TEST_CASE("the current directory is never searched implicitly") {
  EngineOptions options;
  options.use_default_paths = false;
  Engine engine(options);
  CHECK(engine.plugins().empty());
  CHECK(engine.devices().empty());
  Conv2dDesc d;
  std::vector<float> x(1), w(1), y(1);
  CHECK_THROWS_WITH_AS(engine.conv2d(d, x, w, {}, y), doctest::Contains("no devices loaded"),
                       Error);
}

TEST_CASE("a plugin built against the v1.2 header loads in a newer host and runs") {
  EngineOptions options;
  options.plugin_paths = {SPARKLE_OLD_ABI_PLUGIN_DIR};
  options.use_default_paths = false;
  Engine engine(options);
  REQUIRE(engine.plugins().size() == 1);
  CHECK(engine.plugins()[0].loaded);
  CHECK(engine.plugins()[0].reason.empty());
  REQUIRE(engine.devices().size() == 1);
  CHECK(engine.devices()[0].name == "oldabi:0");

  Conv2dDesc d;
  d.n = 2, d.c = 4, d.h = 7, d.w = 6, d.k = 3, d.r = 3, d.s = 2;
  d.pad_top = 1, d.pad_left = 0, d.pad_bottom = 2, d.pad_right = 1;
  d.stride_h = 2;
  d.has_bias = true;
  std::mt19937_64 rng(test::fresh_seed());
  const auto x = test::random_tensor(d.input_elements(), rng);
  const auto w = test::random_tensor(d.weight_elements(), rng);
  const auto b = test::random_tensor(d.bias_elements(), rng);
  auto y = test::poisoned(d.output_elements());
  RunOptions opts;
  opts.device = "oldabi";
  CHECK(engine.conv2d(d, x, w, b, y, opts).kernel == "old_abi_direct");
  CHECK(test::compare_with_reference(d, x, w, b, y).max_rel_error < 1e-5);
}

TEST_CASE("plugin files that cannot be loaded safely get a row naming why; nothing blocks") {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("sparkle-hostile-plugins-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path good = fs::path(SPARKLE_FIXTURE_DIR) / "libsparkle-empty.so";
  const auto good_size = fs::file_size(good);
  auto truncated_copy = [&](const char* name, uintmax_t size) {
    fs::copy_file(good, dir / name);
    fs::resize_file(dir / name, size);
  };
  // As an interrupted install leaves them: mapped, they raised SIGBUS.
  // Past the first page, where the code segment of every plugin begins.
  truncated_copy("libsparkle-half.so", 4096 + 64);
  truncated_copy("libsparkle-tail.so", good_size - 64);
  truncated_copy("libsparkle-header.so", 40);
  truncated_copy("libsparkle-zero.so", 0);
  // Opening a FIFO without O_NONBLOCK blocked start-up forever.
  REQUIRE(::mkfifo((dir / "libsparkle-fifo.so").c_str(), 0600) == 0);
  fs::create_directory(dir / "libsparkle-folder.so");
  fs::create_symlink(dir / "nowhere.so", dir / "libsparkle-dangling.so");
  fs::create_symlink(dir / "libsparkle-loop.so", dir / "libsparkle-loop.so");
  fs::create_symlink("/dev/zero", dir / "libsparkle-device.so");
  // Two links to one good plugin: loaded once, the second says so.
  fs::create_symlink(good, dir / "libsparkle-link1.so");
  fs::create_symlink(good, dir / "libsparkle-link2.so");
  // Misnamed files are not plugins and are not rows.
  fs::copy_file(good, dir / "sparkle-misnamed.so");

  EngineOptions options;
  options.plugin_paths = {dir.string(), SPARKLE_CPU_PLUGIN_DIR};
  options.use_default_paths = false;
  Engine engine(options);
  std::map<std::string, PluginRecord> by_file;
  for (const auto& p : engine.plugins()) by_file[fs::path(p.path).filename().string()] = p;

  const struct {
    const char* file;
    const char* reason;
  } cases[] = {
      {"libsparkle-half.so", "truncated: segment"},
      {"libsparkle-tail.so", "truncated: section headers end past"},
      {"libsparkle-header.so", "truncated: 40 bytes, shorter than an ELF header"},
      {"libsparkle-zero.so", "empty file"},
      {"libsparkle-fifo.so", "not a regular file (a FIFO)"},
      {"libsparkle-folder.so", "not a regular file (a directory)"},
      {"libsparkle-dangling.so", "dangling symbolic link to"},
      {"libsparkle-loop.so", "symbolic link loop"},
      {"libsparkle-device.so", "not a regular file (a device, through a link)"},
      {"libsparkle-link2.so", "same file as"},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.file));
    REQUIRE(by_file.count(c.file) == 1);
    CHECK_FALSE(by_file[c.file].loaded);
    CAPTURE(by_file[c.file].reason);
    CHECK(by_file[c.file].reason.find(c.reason) != std::string::npos);
  }
  CHECK(by_file["libsparkle-link1.so"].loaded);
  CHECK(by_file.count("sparkle-misnamed.so") == 0);

  // The engine still runs on the CPU.
  Conv2dDesc d;
  d.c = 2, d.h = 4, d.w = 4, d.k = 3, d.r = 3, d.s = 3;
  std::mt19937_64 rng(test::fresh_seed());
  const auto x = test::random_tensor(d.input_elements(), rng);
  const auto w = test::random_tensor(d.weight_elements(), rng);
  auto y = test::poisoned(d.output_elements());
  CHECK(engine.conv2d(d, x, w, {}, y).device == "cpu:0");
  CHECK(test::compare_with_reference(d, x, w, {}, y).max_rel_error < 1e-5);
  fs::remove_all(dir);
}
