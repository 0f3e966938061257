// `sparkle-run devices`: every plugin file found (loaded or rejected, with
// the reason) and every device with its properties.
#include <boost/program_options.hpp>
#include <iostream>

#include "cli.hpp"

namespace po = boost::program_options;

namespace sparkle::cli {

int run_devices(int argc, char** argv) {
  po::options_description opts("sparkle-run devices [--json]");
  opts.add_options()("help,h", "show this help")("json", "print JSON");
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  Engine engine;
  if (vm.count("json")) {
    std::string out = "{\"plugins\":[";
    bool first = true;
    for (const auto& p : engine.plugins()) {
      out += (first ? "" : ",") + std::string("{\"path\":") + json_string(p.path) +
             ",\"name\":" + json_string(p.name) + ",\"version\":" + json_string(p.version) +
             ",\"loaded\":" + (p.loaded ? "true" : "false") +
             ",\"reason\":" + json_string(p.reason) + "}";
      first = false;
    }
    out += "],\"devices\":[";
    first = true;
    for (const auto& d : engine.devices()) {
      out += (first ? "" : ",") + std::string("{\"name\":") + json_string(d.name) +
             ",\"backend\":" + json_string(d.backend) + ",\"kind\":" + json_string(d.kind) +
             ",\"description\":" + json_string(d.description) +
             ",\"fingerprint\":" + json_string(d.fingerprint) + ",\"properties\":{";
      bool pfirst = true;
      for (const auto& [k, v] : d.properties) {
        out += (pfirst ? "" : ",") + json_string(k) + ":" + json_string(v);
        pfirst = false;
      }
      out += "}}";
      first = false;
    }
    std::cout << out << "]}\n";
    return 0;
  }
  std::cout << "plugins:\n";
  if (engine.plugins().empty())
    std::cout << "  (none found; set SPARKLE_PLUGIN_PATH or check the install)\n";
  for (const auto& p : engine.plugins()) {
    std::cout << "  " << (p.loaded ? "loaded   " : "REJECTED ") << p.path;
    if (!p.name.empty()) std::cout << " [" << p.name << " " << p.version << "]";
    if (!p.reason.empty())
      std::cout << (p.loaded ? " (" : ": ") << p.reason << (p.loaded ? ")" : "");
    std::cout << "\n";
  }
  std::cout << "devices:\n";
  if (engine.devices().empty()) std::cout << "  (none)\n";
  for (const auto& d : engine.devices()) {
    std::cout << "  " << d.name << "  " << d.kind << "  " << d.description << "\n";
    std::cout << "      fingerprint: " << d.fingerprint << "\n";
    for (const auto& [k, v] : d.properties) std::cout << "      " << k << ": " << v << "\n";
  }
  return 0;
}

}  // namespace sparkle::cli
