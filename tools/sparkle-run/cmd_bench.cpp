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
      "batch-file", po::value<std::string>(),
      "a oneDNN benchdnn batch file of convolution problems (mb from each problem unless "
      "--batch is given)")("threads", po::value<std::string>(),
                           "at most N threads for the CPU backend")(
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
  const po::variables_map vm = parse_options(argc, argv, opts);
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  const int64_t batch = int_option(vm, "batch"), repeat = int_option(vm, "repeat"),
                warmup = int_option(vm, "warmup"), seed = int_option(vm, "seed");
  if (batch <= 0) throw UsageError("batch=" + std::to_string(batch) + " must be > 0");
  if (repeat <= 0) throw UsageError("repeat=" + std::to_string(repeat) + " must be > 0");
  if (warmup < 0) throw UsageError("warmup=" + std::to_string(warmup) + " must be >= 0");
  const std::string timer = vm["timer"].as<std::string>();
  if (timer != "auto" && timer != "wall")
    throw UsageError("timer='" + timer + "' must be auto or wall");
  if (vm.count("suite") + vm.count("shapes") + vm.count("batch-file") > 1)
    throw UsageError("give at most one of --suite, --shapes and --batch-file");
  const auto threads = limit_threads(vm);

  std::vector<Layer> layers;
  std::string suite = "resnet50";
  if (vm.count("batch-file")) {
    suite = vm["batch-file"].as<std::string>();
    layers = read_benchdnn_batch(suite, vm["batch"].defaulted() ? 0 : batch);
  } else if (vm.count("shapes")) {
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
    const Layer* layer;
    std::string device, kernel;
    double ms, min_ms, max_ms, gflops;
    bool device_timed;
  };
  // All four tensors of a layer live at once; the weights count too (they
  // were once left out, and huge weights ended in "out of memory", exit 1).
  auto check_layer_budget = [](const Layer& l) {
    const Conv2dDesc& d = l.desc;
    check_host_budget({{"input of layer " + l.name, float_bytes(d.input_elements())},
                       {"weights", float_bytes(d.weight_elements())},
                       {"bias", float_bytes(d.bias_elements())},
                       {"output", float_bytes(d.output_elements())}});
  };
  std::vector<Row> rows;
  double total_ms = 0, total_flops = 0, suite_flops = 0, total_wall_ms = 0, total_kernel_ms = 0;
  bool all_kernel_timed = true;
  for (const auto& l : layers) suite_flops += l.desc.flops();
  const bool resident = vm.count("resident") > 0;
  // Resident: every layer's tensors are made on its device before any
  // timing, so the device never waits for the host between layers.
  std::vector<ResidentLayer> placed;
  if (resident) placed = place_layers(engine, layers, run, static_cast<uint64_t>(seed), quiet);
  const int64_t spinup_ms = int_option(vm, "spinup");
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
      check_layer_budget(layers.front());
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
  Progress progress(layers.size(), suite_flops, quiet);
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    const Conv2dDesc& d = l.desc;
    Timing t;
    if (resident) {
      t = time_resident(engine, placed[i], warmup, repeat, timer == "wall");
    } else {
      check_layer_budget(l);
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
    rows.push_back(
        {&l, t.last.device, t.last.kernel, t.ms, t.min_ms, t.max_ms, gflops, t.device_timed});
    total_ms += t.ms * static_cast<double>(l.count);
    total_flops += d.flops() * static_cast<double>(l.count);
    char line[256];
    std::snprintf(line, sizeof line, "%-10s %9.3f ms %9.1f GFLOPS on %s", printable(l.name).c_str(),
                  t.ms, gflops, t.last.device.c_str());
    progress.done(i, d.flops(), line);
  }
  const double total_gflops = total_flops / (total_ms * 1e6);
  std::string device = rows.front().device;
  for (const auto& r : rows)
    if (r.device != device) device = "mixed";

  if (json) {
    Json out = {
        {"version", version()}, {"build_id", json_text(build_id())}, {"device", json_text(device)}};
    // The devices that ran layers, with what identifies their hardware and
    // driver, so that a log can be compared with another machine's.
    Json devices = Json::array();
    for (const auto& props : engine.devices()) {
      bool used = false;
      for (const auto& r : rows) used = used || r.device.find(props.name) != std::string::npos;
      if (used)
        devices.push_back({{"name", json_text(props.name)},
                           {"description", json_text(props.description)},
                           {"fingerprint", json_text(props.fingerprint)}});
    }
    out["devices"] = devices;
    out["suite"] = json_text(suite);
    out["batch"] = batch;
    out["warmup"] = warmup;
    out["repeat"] = repeat;
    out["layers"] = Json::array();
    for (const auto& r : rows) {
      const Conv2dDesc& d = r.layer->desc;
      out["layers"].push_back({{"name", json_text(r.layer->name)},
                               {"input_shape", {d.n, d.c, d.h, d.w}},
                               {"weight_shape", {d.k, d.c / d.groups, d.r, d.s}},
                               {"output_shape", {d.n, d.k, d.out_h(), d.out_w()}},
                               {"desc", d.to_string()},
                               {"flops", d.flops()},
                               {"ms", r.ms},
                               {"min_ms", r.min_ms >= 0 ? Json(r.min_ms) : Json()},
                               {"median_ms", r.ms},
                               {"max_ms", r.max_ms >= 0 ? Json(r.max_ms) : Json()},
                               {"gflops", r.gflops},
                               {"count", r.layer->count},
                               {"device", json_text(r.device)},
                               {"kernel", json_text(r.kernel)},
                               {"timer", r.device_timed ? "device" : "wall"}});
    }
    out["total_ms"] = total_ms;
    out["total_gflops"] = total_gflops;
    out["resident"] = resident;
    out["total_wall_ms"] = total_wall_ms;
    out["total_kernel_ms"] = all_kernel_timed ? total_kernel_ms : -1;
    if (resident)
      out["pass"] = {{"passes", repeat},
                     {"wall_ms", pass.wall_ms},
                     {"kernel_ms", pass.kernel_timed ? pass.kernel_ms : -1}};
    print_json(out);
  } else {
    std::printf("%-10s %5s %10s %10s  %-10s %s\n", "layer", "count", "ms", "GFLOPS", "device",
                "kernel");
    for (const auto& r : rows)
      std::printf("%-10s %5lld %10.3f %10.1f  %-10s %s\n", printable(r.layer->name).c_str(),
                  static_cast<long long>(r.layer->count), r.ms, r.gflops, r.device.c_str(),
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
