// `sparkle-run devices`: every plugin file found (loaded or rejected, with
// the reason) and every device with its properties.
#include <boost/program_options.hpp>
#include <iostream>

#include "cli.hpp"

namespace po = boost::program_options;

namespace sparkle::cli {

int run_devices(int argc, char** argv) {
  po::options_description opts("sparkle-run devices [--json] [--verbose]");
  opts.add_options()("help,h", "show this help")("json", "print JSON")(
      "verbose,v",
      "also the plugin folders searched (in order), files skipped and why, the environment in "
      "effect and set-up hints");
  const po::variables_map vm = parse_options(argc, argv, opts);
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  Engine engine;
  const bool verbose = vm.count("verbose") > 0;
  if (vm.count("json")) {
    Json out = {{"plugins", Json::array()}, {"devices", Json::array()}};
    if (verbose) {
      out["search"] = Json::array();
      for (const auto& f : plugin_search()) {
        Json ignored = Json::array();
        for (const auto& i : f.ignored) ignored.push_back(json_text(i));
        out["search"].push_back({{"path", json_text(f.path)},
                                 {"origin", f.origin},
                                 {"problem", json_text(f.problem)},
                                 {"ignored", ignored}});
      }
      out["environment"] = Json::object();
      for (const auto& [k, v] : environment_in_effect()) out["environment"][k] = json_text(v);
      out["hints"] = Json::array();
      for (const auto& h : setup_hints()) out["hints"].push_back(json_text(h));
    }
    for (const auto& p : engine.plugins())
      out["plugins"].push_back({{"path", json_text(p.path)},
                                {"name", json_text(p.name)},
                                {"version", json_text(p.version)},
                                {"loaded", p.loaded},
                                {"reason", json_text(p.reason)}});
    for (const auto& d : engine.devices()) {
      Json props = Json::object();
      for (const auto& [k, v] : d.properties) props[valid_utf8(k)] = json_text(v);
      out["devices"].push_back({{"name", json_text(d.name)},
                                {"backend", json_text(d.backend)},
                                {"kind", json_text(d.kind)},
                                {"description", json_text(d.description)},
                                {"fingerprint", json_text(d.fingerprint)},
                                {"properties", props}});
    }
    print_json(out);
    return 0;
  }
  if (verbose) {
    std::cout << "plugin folders, in search order:\n";
    for (const auto& f : plugin_search()) {
      std::cout << "  " << printable(f.path) << "  (" << f.origin << ")"
                << (f.problem.empty() ? "" : ": " + printable(f.problem)) << "\n";
      for (const auto& i : f.ignored) std::cout << "      ignored " << printable(i) << "\n";
    }
  }
  std::cout << "plugins:\n";
  if (engine.plugins().empty())
    std::cout << "  (none found; set SPARKLE_PLUGIN_PATH or check the install)\n";
  for (const auto& p : engine.plugins()) {
    std::cout << "  " << (p.loaded ? "loaded   " : "REJECTED ") << printable(p.path);
    if (!p.name.empty())
      std::cout << " [" << printable(p.name) << " " << printable(p.version) << "]";
    if (!p.reason.empty())
      std::cout << (p.loaded ? " (" : ": ") << printable(p.reason) << (p.loaded ? ")" : "");
    std::cout << "\n";
  }
  std::cout << "devices:\n";
  if (engine.devices().empty()) std::cout << "  (none)\n";
  for (const auto& d : engine.devices()) {
    std::cout << "  " << d.name << "  " << d.kind << "  " << d.description << "\n";
    std::cout << "      fingerprint: " << d.fingerprint << "\n";
    for (const auto& [k, v] : d.properties) std::cout << "      " << k << ": " << v << "\n";
  }
  if (verbose) {
    std::cout << "environment in effect:\n";
    const auto env = environment_in_effect();
    if (env.empty()) std::cout << "  (no SPARKLE_*, Mesa, EGL or XDG variables set)\n";
    for (const auto& [k, v] : env) std::cout << "  " << k << "=" << printable(v) << "\n";
    std::cout << "hints:\n";
    const auto hints = setup_hints();
    if (hints.empty()) std::cout << "  (none)\n";
    for (const auto& h : hints) std::cout << "  " << printable(h) << "\n";
  }
  return 0;
}

}  // namespace sparkle::cli
