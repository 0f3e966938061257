// `sparkle-run conv2d`: one convolution from .npy files or random data,
// timed over --repeat runs, optionally checked against the reference.
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>

#include "cli.hpp"

namespace po = boost::program_options;

namespace sparkle::cli {
namespace {

// Tolerance of --check on the relative error (see sparkle::compare).
constexpr double kCheckTolerance = 1e-5;

int64_t to_int(const std::string& text, const std::string& field) {
  return parse_int_list(text, field, {1})[0];
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t;
  for (auto v : s) t += (t.empty() ? "" : "x") + std::to_string(v);
  return t;
}

}  // namespace

int run_conv2d(int argc, char** argv) {
  po::options_description opts(
      "sparkle-run conv2d [--input X.npy | --shape N,C,H,W] [--weights W.npy | --filter K,R,S]\n"
      "                   [--bias B.npy | --bias-random] [--output Y.npy] [options]");
  opts.add_options()("help,h", "show this help")("input", po::value<std::string>(),
                                                 "input activations, .npy float32 N x C x H x W")(
      "shape", po::value<std::string>(), "random input of shape N,C,H,W")(
      "weights", po::value<std::string>(), "weights, .npy float32 K x C/groups x R x S")(
      "filter", po::value<std::string>(), "random weights for K,R,S filters")(
      "bias", po::value<std::string>(), "bias, .npy float32 of K elements")(
      "bias-random", "random bias")("output", po::value<std::string>(), "write the result as .npy")(
      "stride", po::value<std::string>()->default_value("1"), "S or SH,SW")(
      "pad", po::value<std::string>()->default_value("0"), "P, PH,PW or PT,PL,PB,PR")(
      "dilation", po::value<std::string>()->default_value("1"), "D or DH,DW")(
      "groups", po::value<std::string>()->default_value("1"), "channel groups")(
      "relu", "fuse max(0, y)")("seed", po::value<std::string>()->default_value("1"),
                                "seed of the random data")(
      "device", po::value<std::string>()->default_value(""),
      "auto, a backend (cpu, opengl) or NAME:INDEX; default SPARKLE_DEVICE or auto")(
      "repeat", po::value<std::string>()->default_value("5"), "timed runs (median reported)")(
      "warmup", po::value<std::string>()->default_value("1"), "untimed runs first")(
      "check", "compare with the float64 reference; fail above 1e-5 relative error")(
      "explain", "print why the device was chosen (candidates, estimates, selected: DEVICE)")(
      "json", "print one JSON object")(
      "stats", "end with one JSON line of this process's program-cache counters")(
      "constant-weights",
      "promise the weights do not change between runs: backends may pack them once "
      "(RunOptions::constant_weights)");
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  if (vm.count("input") == vm.count("shape"))
    throw UsageError("give exactly one of --input X.npy or --shape N,C,H,W");
  if (vm.count("weights") == vm.count("filter"))
    throw UsageError("give exactly one of --weights W.npy or --filter K,R,S");
  if (vm.count("bias") && vm.count("bias-random"))
    throw UsageError("give at most one of --bias and --bias-random");

  Conv2dDesc d;
  auto stride = parse_int_list(vm["stride"].as<std::string>(), "stride", {1, 2});
  d.stride_h = stride[0];
  d.stride_w = stride.back();
  auto pad = parse_int_list(vm["pad"].as<std::string>(), "pad", {1, 2, 4});
  if (pad.size() == 1) pad = {pad[0], pad[0], pad[0], pad[0]};
  if (pad.size() == 2) pad = {pad[0], pad[1], pad[0], pad[1]};
  d.pad_top = pad[0];
  d.pad_left = pad[1];
  d.pad_bottom = pad[2];
  d.pad_right = pad[3];
  auto dil = parse_int_list(vm["dilation"].as<std::string>(), "dilation", {1, 2});
  d.dilation_h = dil[0];
  d.dilation_w = dil.back();
  d.groups = to_int(vm["groups"].as<std::string>(), "groups");
  d.relu = vm.count("relu") > 0;
  const int64_t seed = to_int(vm["seed"].as<std::string>(), "seed");
  const int64_t repeat = to_int(vm["repeat"].as<std::string>(), "repeat");
  const int64_t warmup = to_int(vm["warmup"].as<std::string>(), "warmup");
  if (repeat <= 0) throw UsageError("repeat=" + std::to_string(repeat) + " must be > 0");
  if (warmup < 0) throw UsageError("warmup=" + std::to_string(warmup) + " must be >= 0");

  std::vector<float> x, w, bias;
  if (vm.count("input")) {
    auto a = read_npy(vm["input"].as<std::string>(), 4);
    d.n = a.shape[0], d.c = a.shape[1], d.h = a.shape[2], d.w = a.shape[3];
    x = std::move(a.data);
  } else {
    auto s = parse_int_list(vm["shape"].as<std::string>(), "shape", {4});
    d.n = s[0], d.c = s[1], d.h = s[2], d.w = s[3];
  }
  std::vector<int64_t> wshape;
  if (vm.count("weights")) {
    const std::string path = vm["weights"].as<std::string>();
    auto a = read_npy(path, 4);
    wshape = a.shape;
    d.k = a.shape[0], d.r = a.shape[2], d.s = a.shape[3];
    // The weights' channel dimension must agree with the input and groups.
    if (d.groups > 0 && a.shape[1] * d.groups != d.c)
      throw Error(ErrorCode::invalid_argument,
                  path + ": weights shape " + shape_text(a.shape) + " has C/groups=" +
                      std::to_string(a.shape[1]) + ", but input C=" + std::to_string(d.c) +
                      " with groups=" + std::to_string(d.groups) + " needs " +
                      (d.c % d.groups == 0 ? std::to_string(d.c / d.groups) : "a divisor"));
    w = std::move(a.data);
  } else {
    auto f = parse_int_list(vm["filter"].as<std::string>(), "filter", {3});
    d.k = f[0], d.r = f[1], d.s = f[2];
  }
  d.has_bias = vm.count("bias") || vm.count("bias-random");
  d.validate();
  check_fits_in_memory("input", d.input_elements());
  check_fits_in_memory("weights", d.weight_elements());
  check_fits_in_memory("output", d.output_elements());
  if (vm.count("bias")) {
    const std::string path = vm["bias"].as<std::string>();
    auto a = read_npy(path, 1);
    if (a.shape[0] != d.k)
      throw Error(ErrorCode::invalid_argument, path + ": bias has " + std::to_string(a.shape[0]) +
                                                   " elements, but K=" + std::to_string(d.k));
    bias = std::move(a.data);
  } else if (d.has_bias) {
    bias = random_tensor(d.k, static_cast<uint64_t>(seed) * 3 + 2);
  }
  if (x.empty()) x = random_tensor(d.input_elements(), static_cast<uint64_t>(seed) * 3);
  if (w.empty()) w = random_tensor(d.weight_elements(), static_cast<uint64_t>(seed) * 3 + 1);

  Engine engine;
  RunOptions run;
  run.device = vm["device"].as<std::string>();
  run.constant_weights = vm.count("constant-weights") > 0;
  // Poisoned, so that an element the backend never writes cannot pass --check.
  std::vector<float> y(static_cast<size_t>(d.output_elements()),
                       std::numeric_limits<float>::quiet_NaN());
  if (vm.count("explain")) {
    // The choice of the first call, before timing runs teach the selector.
    RunOptions first = run;
    first.explain = true;
    for (const auto& line : engine.conv2d(d, x, w, bias, y, first).explanation)
      std::cout << line << "\n";
  }
  const Timing t = time_conv2d(engine, d, x, w, bias, y, run, warmup, repeat);
  const RunResult& last = t.last;
  const bool device_timed = t.device_timed;
  const double ms = t.ms;
  const double gflops = d.flops() / (ms * 1e6);

  bool passed = true;
  Comparison cmp;
  if (vm.count("check")) {
    std::vector<double> ref(y.size()), magnitude(y.size());
    reference_conv2d(d, x.data(), w.data(), bias.empty() ? nullptr : bias.data(), ref.data(),
                     magnitude.data());
    cmp = compare(y.data(), ref.data(), magnitude.data(), static_cast<int64_t>(y.size()));
    passed = cmp.non_finite == 0 && cmp.max_rel_error <= kCheckTolerance;
  }
  if (vm.count("output"))
    write_npy(vm["output"].as<std::string>(), {d.n, d.k, d.out_h(), d.out_w()}, y.data());

  if (vm.count("json")) {
    std::string out =
        "{\"device\":" + json_string(last.device) + ",\"kernel\":" + json_string(last.kernel) +
        ",\"desc\":" + json_string(d.to_string()) + ",\"output_shape\":[" + std::to_string(d.n) +
        "," + std::to_string(d.k) + "," + std::to_string(d.out_h()) + "," +
        std::to_string(d.out_w()) + "],\"repeat\":" + std::to_string(repeat) +
        ",\"timer\":" + json_string(device_timed ? "device" : "wall") +
        ",\"ms\":" + json_number(ms) + ",\"gflops\":" + json_number(gflops);
    if (vm.count("check"))
      out += ",\"check\":{\"max_abs_error\":" + json_number(cmp.max_abs_error) +
             ",\"max_rel_error\":" + json_number(cmp.max_rel_error) +
             ",\"non_finite\":" + std::to_string(cmp.non_finite) +
             ",\"tolerance\":" + json_number(kCheckTolerance) +
             ",\"passed\":" + (passed ? "true" : "false") + "}";
    std::cout << out << "}\n";
  } else {
    std::printf("device: %s (kernel %s)\n", last.device.c_str(), last.kernel.c_str());
    std::printf("conv2d %s -> output %lldx%lldx%lldx%lld\n", d.to_string().c_str(),
                static_cast<long long>(d.n), static_cast<long long>(d.k),
                static_cast<long long>(d.out_h()), static_cast<long long>(d.out_w()));
    std::printf("median %.4f ms over %lld runs (%s time), %.2f GFLOPS\n", ms,
                static_cast<long long>(repeat), device_timed ? "device" : "wall", gflops);
    if (vm.count("check"))
      std::printf("check: max abs error %.3g, max rel error %.3g, non-finite %lld: %s\n",
                  cmp.max_abs_error, cmp.max_rel_error, static_cast<long long>(cmp.non_finite),
                  passed ? "PASS" : "FAIL");
  }
  if (vm.count("stats")) {
    const CacheStats s = cache_stats();
    std::cout << "{\"cache\":{\"compiles\":" << s.compiles << ",\"disk_hits\":" << s.disk_hits
              << ",\"memory_hits\":" << s.memory_hits << "}}\n";
  }
  if (!passed) {
    std::fprintf(stderr, "sparkle-run: error: check failed: max rel error %.3g > %.1g\n",
                 cmp.max_rel_error, kCheckTolerance);
    return 1;
  }
  return 0;
}

}  // namespace sparkle::cli
