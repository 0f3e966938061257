// sparkle-run: list devices, run one convolution, or run a benchmark suite.
// Exit status: 0 success, 2 bad input (one line on stderr), 1 internal error.
#include <boost/program_options/errors.hpp>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>

#include "cli.hpp"

namespace {

const char* kUsage =
    "usage: sparkle-run <command> [options]\n"
    "       sparkle-run --version      print the version and build id\n"
    "       sparkle-run --help         print this\n"
    "\n"
    "commands:\n"
    "  devices   list plugins (loaded or rejected, with the reason) and devices;\n"
    "            --verbose also shows the folders searched and set-up hints\n"
    "  conv2d    run one convolution, time it, optionally check it\n"
    "  bench     run a suite of layers (ResNet-50 v1.5, a shapes file or a benchdnn batch)\n"
    "  cache     stats, list, clear or warm the persistent program cache\n"
    "  stream    one convolution over a stream of batches: synchronous vs pipelined\n"
    "  tune      measure each layer's kernel variants on a device, keep the fastest\n"
    "\n"
    "'sparkle-run <command> --help' lists a command's options.\n";

// Where the flag and environment tables are: installed next to the program
// (<prefix>/share/doc/sparkle), else the source tree's docs/.
std::string docs_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::canonical("/proc/self/exe", ec);
  if (!ec) {
    const auto installed = exe.parent_path().parent_path() / "share" / "doc" / "sparkle";
    if (std::filesystem::is_regular_file(installed / "ENVIRONMENT.md", ec))
      return installed.string();
  }
  return "docs (in the source tree)";
}

// Exactly one line: messages may quote file contents or names, so control
// characters are escaped here whatever the layer below did.
int fail(int status, const std::string& message) {
  std::fprintf(stderr, "sparkle-run: error: %s\n", sparkle::printable(message).c_str());
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string command = argv[1];
  if (command == "-h" || command == "--help" || command == "help") {
    std::fputs(kUsage, stdout);
    const std::string docs = docs_dir();
    std::printf(
        "Every flag: %s/CLI.md; every environment variable: %s/ENVIRONMENT.md;\n"
        "also man sparkle-run.\n",
        docs.c_str(), docs.c_str());
    return 0;
  }
  if (command == "--version") {
    std::printf("sparkle-run %s (%s)\n", sparkle::version(), sparkle::build_id());
    return 0;
  }
  try {
    // Before anything reads them: a bad value is one error naming it.
    sparkle::check_environment();
    if (command == "devices") return sparkle::cli::run_devices(argc - 1, argv + 1);
    if (command == "conv2d") return sparkle::cli::run_conv2d(argc - 1, argv + 1);
    if (command == "bench") return sparkle::cli::run_bench(argc - 1, argv + 1);
    if (command == "cache") return sparkle::cli::run_cache(argc - 1, argv + 1);
    if (command == "stream") return sparkle::cli::run_stream(argc - 1, argv + 1);
    if (command == "tune") return sparkle::cli::run_tune(argc - 1, argv + 1);
    return fail(2, "unknown command '" + command + "' (try --help)");
  } catch (const sparkle::cli::UsageError& e) {
    return fail(2, e.what());
  } catch (const boost::program_options::error& e) {
    return fail(2, e.what());
  } catch (const sparkle::Error& e) {
    return fail(e.is_user_error() ? 2 : 1, e.what());
  } catch (const std::bad_alloc&) {
    return fail(1, "out of memory");
  } catch (const std::exception& e) {
    return fail(1, std::string("internal error: ") + e.what());
  }
}
