// `sparkle-run cache stats|list|clear|warm`: inspect, empty or fill the
// persistent program cache.
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "cli.hpp"

namespace po = boost::program_options;

namespace sparkle::cli {

Json cache_stats_json(const CacheStats& s) {
  return {{"memory_hits", s.memory_hits},
          {"disk_hits", s.disk_hits},
          {"compiles", s.compiles},
          {"compile_ms", s.compile_ms},
          {"saved_ms", s.saved_ms},
          {"entries", s.entries},
          {"bytes_on_disk", s.bytes_on_disk},
          {"directory", json_text(s.directory)},
          {"enabled", s.enabled}};
}

int run_cache(int argc, char** argv) {
  po::options_description opts(
      "sparkle-run cache stats|list|clear [--json]\n"
      "sparkle-run cache warm [--suite resnet50 | --shapes FILE] [--batch N] [--device D]");
  opts.add_options()("help,h", "show this help")("json", "print JSON")(
      "suite", po::value<std::string>(), "warm: built-in suite (resnet50)")(
      "shapes", po::value<std::string>(), "warm: shapes file")(
      "batch-file", po::value<std::string>(), "warm: a oneDNN benchdnn batch file")(
      "batch", po::value<std::string>()->default_value("1"), "warm: batch size")(
      "device", po::value<std::string>()->default_value(""), "warm: device (default auto)");
  po::options_description with_action = opts;
  with_action.add_options()("action", po::value<std::string>(), "");
  const po::variables_map vm = parse_options(argc, argv, with_action, {"action"});
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  if (!vm.count("action")) throw UsageError("cache needs an action: stats, list, clear or warm");
  const std::string action = vm["action"].as<std::string>();
  const bool json = vm.count("json") > 0;

  if (action == "stats") {
    const CacheStats s = cache_stats();
    if (json) {
      print_json(cache_stats_json(s));
    } else {
      std::printf("cache folder: %s%s\n", s.directory.c_str(), s.enabled ? "" : " (disabled)");
      std::printf("entries: %lld, %.1f KiB on disk\n", static_cast<long long>(s.entries),
                  static_cast<double>(s.bytes_on_disk) / 1024.0);
      std::printf("this process: %lld memory hits, %lld disk hits, %lld compiles\n",
                  static_cast<long long>(s.memory_hits), static_cast<long long>(s.disk_hits),
                  static_cast<long long>(s.compiles));
    }
    return 0;
  }
  if (action == "list") {
    const auto entries = cache_entries();
    if (json) {
      Json out = Json::array();
      for (const auto& e : entries)
        out.push_back({{"file", json_text(e.file)},
                       {"plugin", json_text(e.plugin)},
                       {"kind", json_text(e.kind)},
                       {"name", json_text(e.name)},
                       {"device_fingerprint", json_text(e.device_fingerprint)},
                       {"bytes", e.bytes},
                       {"compile_ms", e.compile_ms},
                       {"age_s", e.age_s},
                       {"problem", json_text(e.problem)}});
      print_json(out);
    } else {
      std::printf("%-8s %-22s %-34s %10s %10s %8s  %s\n", "plugin", "device", "name", "bytes",
                  "compile ms", "age s", "problem");
      for (const auto& e : entries)
        std::printf("%-8s %-22s %-34s %10llu %10.1f %8lld  %s\n", e.plugin.c_str(),
                    e.device_fingerprint.substr(0, 22).c_str(), e.name.c_str(),
                    static_cast<unsigned long long>(e.bytes), e.compile_ms,
                    static_cast<long long>(e.age_s), e.problem.c_str());
      std::printf("%zu entries\n", entries.size());
    }
    return 0;
  }
  if (action == "clear") {
    const size_t removed = cache_clear();
    if (json)
      print_json({{"removed", removed}});
    else
      std::printf("removed %zu cache files\n", removed);
    return 0;
  }
  if (action == "warm") {
    const int64_t batch = int_option(vm, "batch");
    if (batch <= 0) throw UsageError("batch=" + std::to_string(batch) + " must be > 0");
    std::vector<Layer> layers;
    if (vm.count("suite") + vm.count("shapes") + vm.count("batch-file") > 1)
      throw UsageError("give at most one of --suite, --shapes and --batch-file");
    if (vm.count("batch-file")) {
      layers = read_benchdnn_batch(vm["batch-file"].as<std::string>(),
                                   vm["batch"].defaulted() ? 0 : batch);
    } else if (vm.count("shapes")) {
      layers = read_shapes_file(vm["shapes"].as<std::string>(), batch);
    } else {
      const std::string suite = vm.count("suite") ? vm["suite"].as<std::string>() : "resnet50";
      if (suite != "resnet50") throw UsageError("unknown suite '" + suite + "' (known: resnet50)");
      layers = parse_shapes(kResnet50Suite, "resnet50", batch);
    }
    Engine engine;
    RunOptions run;
    run.device = vm["device"].as<std::string>();
    // Each layer costs about one compile: the time left is by count.
    Progress progress(layers.size(), static_cast<double>(layers.size()), false);
    for (size_t i = 0; i < layers.size(); ++i) {
      const std::string device = engine.prepare(layers[i].desc, run);
      progress.done(i, 1, layers[i].name + " prepared on " + device);
    }
    const CacheStats s = cache_stats();
    if (json)
      print_json(cache_stats_json(s));
    else
      std::printf(
          "warmed %zu layers: %lld compiles, %lld disk hits, %lld memory hits; %lld "
          "entries on disk\n",
          layers.size(), static_cast<long long>(s.compiles), static_cast<long long>(s.disk_hits),
          static_cast<long long>(s.memory_hits), static_cast<long long>(s.entries));
    return 0;
  }
  throw UsageError("unknown cache action '" + action + "' (stats, list, clear, warm)");
}

}  // namespace sparkle::cli
