// `sparkle-run bench`: every layer of a shapes file at one batch size, with
// per-layer median time and GFLOPS, and the network total (sum of ms x count).
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <limits>

#include "cli.hpp"

namespace po = boost::program_options;

namespace sparkle::cli {

int run_bench(int argc, char** argv) {
  po::options_description opts(
      "sparkle-run bench [--suite resnet50 | --shapes FILE] [--batch N] [--device D] [--repeat N] "
      "[--resident] [--json]");
  opts.add_options()("help,h", "show this help")(
      "suite", po::value<std::string>(), "built-in suite: resnet50 (ResNet-50 v1.5, 53 convs)")(
      "shapes", po::value<std::string>(), "shapes file (format in docs/CLI.md)")(
      "batch", po::value<std::string>()->default_value("1"), "batch size N")(
      "device", po::value<std::string>()->default_value(""),
      "auto, a backend or NAME:INDEX; default SPARKLE_DEVICE or auto")(
      "repeat", po::value<std::string>()->default_value("10"), "timed runs per layer (median)")(
      // GPUs drop their clocks while the host prepares the next layer's
      // data; one warm-up run left the H100 at 6.5 instead of 15 TFLOPS.
      "warmup", po::value<std::string>()->default_value("5"), "untimed runs per layer first")(
      "seed", po::value<std::string>()->default_value("1"), "seed of the random data")(
      "timer", po::value<std::string>()->default_value("auto"),
      "auto: device timer where the device has one, else wall; wall: always wall time "
      "(transfers included)")("quiet", "no progress lines on stderr")(
      "constant-weights",
      "promise the weights do not change between runs: backends may pack them once "
      "(RunOptions::constant_weights)")(
      "spinup", po::value<std::string>()->default_value("1000"),
      "milliseconds of back-to-back runs of the first layer before timing, so a GPU's clocks "
      "are up (0: none)")(
      "resident",
      "tensors live on the device (made there before timing): each layer's --repeat runs are "
      "submitted back to back and waited for once, with no host transfers")(
      "json", "print one JSON object");
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  auto one_int = [&](const char* name) {
    return parse_int_list(vm[name].as<std::string>(), name, {1})[0];
  };
  const int64_t batch = one_int("batch"), repeat = one_int("repeat"), warmup = one_int("warmup"),
                seed = one_int("seed");
  if (batch <= 0) throw UsageError("batch=" + std::to_string(batch) + " must be > 0");
  if (repeat <= 0) throw UsageError("repeat=" + std::to_string(repeat) + " must be > 0");
  if (warmup < 0) throw UsageError("warmup=" + std::to_string(warmup) + " must be >= 0");
  const std::string timer = vm["timer"].as<std::string>();
  if (timer != "auto" && timer != "wall")
    throw UsageError("timer='" + timer + "' must be auto or wall");
  if (vm.count("suite") && vm.count("shapes"))
    throw UsageError("give at most one of --suite and --shapes");

  std::vector<Layer> layers;
  std::string suite = "resnet50";
  if (vm.count("shapes")) {
    suite = vm["shapes"].as<std::string>();
    layers = read_shapes_file(suite, batch);
  } else {
    if (vm.count("suite")) suite = vm["suite"].as<std::string>();
    if (suite != "resnet50") throw UsageError("unknown suite '" + suite + "' (known: resnet50)");
    layers = parse_shapes(kResnet50Suite, "resnet50", batch);
  }

  Engine engine;
  RunOptions run;
  run.device = vm["device"].as<std::string>();
  run.constant_weights = vm.count("constant-weights") > 0;
  const bool json = vm.count("json") > 0, quiet = vm.count("quiet") > 0;
  struct Row {
    std::string name, device, kernel;
    double ms, gflops;
    int64_t count;
    bool device_timed;
  };
  std::vector<Row> rows;
  double total_ms = 0, total_flops = 0, total_wall_ms = 0, total_kernel_ms = 0;
  bool all_kernel_timed = true;
  const bool resident = vm.count("resident") > 0;
  // Resident: every layer's tensors are made on its device before any
  // timing, so the device never waits for the host between layers.
  std::vector<ResidentLayer> placed;
  if (resident) placed = place_layers(engine, layers, run, static_cast<uint64_t>(seed), quiet);
  const int64_t spinup_ms = one_int("spinup");
  if (spinup_ms < 0) throw UsageError("spinup=" + std::to_string(spinup_ms) + " must be >= 0");
  if (spinup_ms > 0 && !layers.empty()) {
    // The first layer, back to back, until the device's clocks are up.
    std::vector<float> sx, sw, sb, sy;
    std::function<Future()> one;
    if (resident) {
      // Whole network passes: every program compiled, every clock up.
      const auto start = std::chrono::steady_clock::now();
      while (std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                 .count() < static_cast<double>(spinup_ms))
        time_passes(engine, placed, layers, 1);
    } else {
      const Conv2dDesc& d = layers.front().desc;
      sx = random_tensor(d.input_elements(), 1);
      sw = random_tensor(d.weight_elements(), 2);
      sb = random_tensor(d.bias_elements(), 3);
      sy.resize(static_cast<size_t>(d.output_elements()));
      one = [&] { return engine.submit(d, sx, sw, sb, sy, run); };
    }
    if (one) spin_up(one, static_cast<double>(spinup_ms));
  }
  PassTiming pass;
  if (resident) pass = time_passes(engine, placed, layers, repeat);
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    const Conv2dDesc& d = l.desc;
    Timing t;
    if (resident) {
      t = time_resident(engine, placed[i], warmup, repeat, timer == "wall");
    } else {
      check_fits_in_memory(l.name + " input", d.input_elements());
      check_fits_in_memory(l.name + " output", d.output_elements());
      const uint64_t s = static_cast<uint64_t>(seed) * 1000 + i * 3;
      const auto x = random_tensor(d.input_elements(), s);
      const auto w = random_tensor(d.weight_elements(), s + 1);
      const auto b = random_tensor(d.bias_elements(), s + 2);
      std::vector<float> y(static_cast<size_t>(d.output_elements()),
                           std::numeric_limits<float>::quiet_NaN());
      t = time_conv2d(engine, d, x, w, b, y, run, warmup, repeat, timer == "wall");
    }
    total_wall_ms += t.wall_ms * static_cast<double>(l.count);
    if (t.kernel_ms > 0)
      total_kernel_ms += t.kernel_ms * static_cast<double>(l.count);
    else
      all_kernel_timed = false;
    const double gflops = d.flops() / (t.ms * 1e6);
    rows.push_back({l.name, t.last.device, t.last.kernel, t.ms, gflops, l.count, t.device_timed});
    total_ms += t.ms * static_cast<double>(l.count);
    total_flops += d.flops() * static_cast<double>(l.count);
    if (!quiet)
      std::fprintf(stderr, "[%zu/%zu] %-10s %9.3f ms %9.1f GFLOPS on %s\n", i + 1, layers.size(),
                   l.name.c_str(), t.ms, gflops, t.last.device.c_str());
  }
  const double total_gflops = total_flops / (total_ms * 1e6);
  std::string device = rows.front().device;
  for (const auto& r : rows)
    if (r.device != device) device = "mixed";

  if (json) {
    std::string out = "{\"device\":" + json_string(device) + ",\"suite\":" + json_string(suite) +
                      ",\"batch\":" + std::to_string(batch) +
                      ",\"repeat\":" + std::to_string(repeat) + ",\"layers\":[";
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      out += (i ? "," : "") + std::string("{\"name\":") + json_string(r.name) +
             ",\"ms\":" + json_number(r.ms) + ",\"gflops\":" + json_number(r.gflops) +
             ",\"count\":" + std::to_string(r.count) + ",\"device\":" + json_string(r.device) +
             ",\"kernel\":" + json_string(r.kernel) +
             ",\"timer\":" + json_string(r.device_timed ? "device" : "wall") + "}";
    }
    out += "],\"total_ms\":" + json_number(total_ms) +
           ",\"total_gflops\":" + json_number(total_gflops) +
           ",\"resident\":" + (resident ? "true" : "false") +
           ",\"total_wall_ms\":" + json_number(total_wall_ms) +
           ",\"total_kernel_ms\":" + json_number(all_kernel_timed ? total_kernel_ms : -1);
    if (resident)
      out += ",\"pass\":{\"passes\":" + std::to_string(repeat) +
             ",\"wall_ms\":" + json_number(pass.wall_ms) +
             ",\"kernel_ms\":" + json_number(pass.kernel_timed ? pass.kernel_ms : -1) + "}";
    out += "}";
    std::cout << out << "\n";
  } else {
    std::printf("%-10s %5s %10s %10s  %-10s %s\n", "layer", "count", "ms", "GFLOPS", "device",
                "kernel");
    for (const auto& r : rows)
      std::printf("%-10s %5lld %10.3f %10.1f  %-10s %s\n", r.name.c_str(),
                  static_cast<long long>(r.count), r.ms, r.gflops, r.device.c_str(),
                  r.kernel.c_str());
    std::printf("total (sum of ms x count): %.3f ms, %.1f GFLOPS, batch %lld, device %s\n",
                total_ms, total_gflops, static_cast<long long>(batch), device.c_str());
    if (resident && pass.kernel_timed)
      std::printf(
          "network pass, every layer submitted back to back (%lld passes): wall %.3f ms, "
          "kernels %.3f ms, wall/kernels %.3f\n",
          static_cast<long long>(repeat), pass.wall_ms, pass.kernel_ms,
          pass.wall_ms / pass.kernel_ms);
    else if (resident)
      std::printf("network pass, every layer submitted back to back (%lld passes): wall %.3f ms\n",
                  static_cast<long long>(repeat), pass.wall_ms);
    if (all_kernel_timed)
      std::printf("wall %.3f ms, kernels %.3f ms, wall/kernels %.3f%s\n", total_wall_ms,
                  total_kernel_ms, total_wall_ms / total_kernel_ms,
                  resident ? " (resident tensors)" : " (host data, transfers included)");
  }
  return 0;
}

}  // namespace sparkle::cli
