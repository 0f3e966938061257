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

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t;
  for (auto v : s) t += (t.empty() ? "" : "x") + std::to_string(v);
  return t;
}

// --pad: P, PH,PW, PT,PL,PB,PR, or PyTorch's "valid" (none) and "same"
// (output size = input size at stride 1; total padding dilation * (k - 1)
// per axis, the odd one on the bottom/right, as torch.nn.Conv2d does).
void apply_padding(const std::string& text, Conv2dDesc& d) {
  if (text == "valid") {
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 0;
    return;
  }
  if (text == "same") {
    if (d.stride_h != 1 || d.stride_w != 1)
      throw UsageError("pad=same needs stride 1 (as in PyTorch); stride is " +
                       std::to_string(d.stride_h) + "," + std::to_string(d.stride_w));
    int64_t total_h = 0, total_w = 0;
    if (__builtin_mul_overflow(d.dilation_h, d.r - 1, &total_h) ||
        __builtin_mul_overflow(d.dilation_w, d.s - 1, &total_w))
      throw Error(ErrorCode::invalid_argument, "pad=same: dilation * (filter - 1) overflows int64");
    d.pad_top = total_h / 2, d.pad_bottom = total_h - total_h / 2;
    d.pad_left = total_w / 2, d.pad_right = total_w - total_w / 2;
    return;
  }
  auto pad = parse_int_list(text, "pad", {1, 2, 4});
  if (pad.size() == 1) pad = {pad[0], pad[0], pad[0], pad[0]};
  if (pad.size() == 2) pad = {pad[0], pad[1], pad[0], pad[1]};
  d.pad_top = pad[0];
  d.pad_left = pad[1];
  d.pad_bottom = pad[2];
  d.pad_right = pad[3];
}

}  // namespace

int run_conv2d(int argc, char** argv) {
  po::options_description opts(
      "sparkle-run conv2d [--input X.npy | --shape N,C,H,W] [--weights W.npy | --filter K,R,S]\n"
      "                   [--bias B.npy | --bias-random] [--output Y.npy] [options]");
  opts.add_options()("help,h", "show this help")("input", po::value<std::string>(),
                                                 "input activations, .npy float32 N x C x H x W")(
      "shape", po::value<std::string>(), "random input of shape N,C,H,W")(
      "problem", po::value<std::string>(),
      "a oneDNN benchdnn problem, e.g. mb1ic64ih56oc64kh3ph1 (instead of --shape, --filter, "
      "--stride, --pad, --dilation, --groups)")("weights", po::value<std::string>(),
                                                "weights, .npy float32 K x C/groups x R x S")(
      "filter", po::value<std::string>(), "random weights for K,R,S filters")(
      "bias", po::value<std::string>(), "bias, .npy float32 of K elements")(
      "bias-random", "random bias")("output", po::value<std::string>(), "write the result as .npy")(
      "cast", "convert float64 or big-endian .npy inputs to float32 instead of refusing them")(
      "stride", po::value<std::string>()->default_value("1"), "S or SH,SW")(
      "pad", po::value<std::string>()->default_value("0"),
      "P, PH,PW, PT,PL,PB,PR, valid (0) or same (PyTorch's, stride 1)")(
      "dilation", po::value<std::string>()->default_value("1"), "D or DH,DW")(
      "groups", po::value<std::string>()->default_value("1"), "channel groups")(
      "relu", "fuse max(0, y)")("seed", po::value<std::string>()->default_value("1"),
                                "seed of the random data")(
      "device", po::value<std::string>()->default_value(""),
      "auto, a backend (cpu, opengl) or NAME:INDEX; default SPARKLE_DEVICE or auto")(
      "repeat", po::value<std::string>()->default_value("5"), "timed runs (median reported)")(
      "threads", po::value<std::string>(), "at most N threads for the CPU backend")(
      "warmup", po::value<std::string>()->default_value("1"), "untimed runs first")(
      "check", "compare with the float64 reference; fail above 1e-5 relative error")(
      "explain",
      "why the device was chosen (candidates, estimates, selected: DEVICE); with --json the "
      "\"explanation\" field")("json", "print one JSON object")(
      "stats",
      "this process's program-cache counters: one JSON line at the end; with --json the "
      "\"cache\" field")("constant-weights",
                         "promise the weights do not change between runs: backends may pack "
                         "them once (RunOptions::constant_weights)");
  const po::variables_map vm = parse_options(argc, argv, opts);
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  const bool problem = vm.count("problem") > 0;
  if (problem) {
    for (const char* other : {"input", "shape", "weights", "filter"})
      if (vm.count(other))
        throw UsageError(std::string("give --problem or --") + other + ", not both");
    for (const char* other : {"stride", "pad", "dilation", "groups"})
      if (!vm[other].defaulted())
        throw UsageError(std::string("--problem sets the ") + other + "; leave out --" + other);
  } else {
    if (vm.count("input") == vm.count("shape"))
      throw UsageError("give exactly one of --input X.npy, --shape N,C,H,W or --problem");
    if (vm.count("weights") == vm.count("filter"))
      throw UsageError("give exactly one of --weights W.npy or --filter K,R,S");
  }
  if (vm.count("bias") && vm.count("bias-random"))
    throw UsageError("give at most one of --bias and --bias-random");
  const bool cast = vm.count("cast") > 0;

  Conv2dDesc d;
  auto stride = parse_int_list(vm["stride"].as<std::string>(), "stride", {1, 2});
  d.stride_h = stride[0];
  d.stride_w = stride.back();
  auto dil = parse_int_list(vm["dilation"].as<std::string>(), "dilation", {1, 2});
  d.dilation_h = dil[0];
  d.dilation_w = dil.back();
  d.groups = int_option(vm, "groups");
  d.relu = vm.count("relu") > 0;
  const int64_t seed = int_option(vm, "seed");
  const int64_t repeat = int_option(vm, "repeat");
  const int64_t warmup = int_option(vm, "warmup");
  if (repeat <= 0) throw UsageError("repeat=" + std::to_string(repeat) + " must be > 0");
  if (warmup < 0) throw UsageError("warmup=" + std::to_string(warmup) + " must be >= 0");

  const auto threads = limit_threads(vm);
  std::vector<float> x, w, bias;
  if (problem) {
    const bool relu = d.relu;
    d = parse_benchdnn_conv(vm["problem"].as<std::string>()).desc;
    d.relu = relu;
  } else if (vm.count("input")) {
    auto a = read_npy(vm["input"].as<std::string>(), 4, cast);
    d.n = a.shape[0], d.c = a.shape[1], d.h = a.shape[2], d.w = a.shape[3];
    x = std::move(a.data);
  } else {
    auto s = parse_int_list(vm["shape"].as<std::string>(), "shape", {4});
    d.n = s[0], d.c = s[1], d.h = s[2], d.w = s[3];
  }
  if (problem) {
    // The filter came with the problem.
  } else if (vm.count("weights")) {
    const std::string path = vm["weights"].as<std::string>();
    auto a = read_npy(path, 4, cast);
    d.k = a.shape[0], d.r = a.shape[2], d.s = a.shape[3];
    // The weights' channel dimension must agree with the input and groups
    // (compared by division: shape[1] * groups may overflow).
    if (d.groups > 0 && (d.c % d.groups != 0 || a.shape[1] != d.c / d.groups))
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
  // After the filter is known: "same" depends on it.
  if (!problem) apply_padding(vm["pad"].as<std::string>(), d);
  d.has_bias = vm.count("bias") || vm.count("bias-random");
  d.validate();
  // Everything this command will hold at once, checked before any of it is
  // allocated (files already read have been checked by the reader).
  std::vector<HostAllocation> plan;
  if (x.empty()) plan.push_back({"input", float_bytes(d.input_elements())});
  if (w.empty()) plan.push_back({"weights", float_bytes(d.weight_elements())});
  plan.push_back({"output", float_bytes(d.output_elements())});
  if (vm.count("check")) {
    plan.push_back({"reference output (float64)", 2 * float_bytes(d.output_elements())});
    plan.push_back({"reference magnitudes (float64)", 2 * float_bytes(d.output_elements())});
  }
  check_host_budget(plan);
  if (vm.count("bias")) {
    const std::string path = vm["bias"].as<std::string>();
    auto a = read_npy(path, 1, cast);
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
  const bool json = vm.count("json") > 0;
  // Poisoned, so that an element the backend never writes cannot pass --check.
  std::vector<float> y(static_cast<size_t>(d.output_elements()),
                       std::numeric_limits<float>::quiet_NaN());
  std::vector<std::string> explanation;
  if (vm.count("explain")) {
    // The choice of the first call, before timing runs teach the selector.
    RunOptions first = run;
    first.explain = true;
    explanation = engine.conv2d(d, x, w, bias, y, first).explanation;
    if (!json)
      for (const auto& line : explanation) std::cout << line << "\n";
  }
  const Timing t = time_conv2d(engine, d, x, w, bias, y, run, warmup, repeat);
  const RunResult& last = t.last;
  const double gflops = d.flops() / (t.ms * 1e6);

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

  if (json) {
    // One object, whatever else was asked for (--explain, --stats).
    Json out = {{"device", json_text(last.device)},
                {"kernel", json_text(last.kernel)},
                {"desc", d.to_string()},
                {"output_shape", {d.n, d.k, d.out_h(), d.out_w()}},
                {"repeat", repeat},
                {"warmup", warmup},
                {"timer", t.device_timed ? "device" : "wall"},
                {"ms", t.ms},
                {"min_ms", t.min_ms},
                {"max_ms", t.max_ms},
                {"gflops", gflops}};
    if (vm.count("check"))
      out["check"] = {{"max_abs_error", cmp.max_abs_error},
                      {"max_rel_error", cmp.max_rel_error},
                      {"non_finite", cmp.non_finite},
                      {"tolerance", kCheckTolerance},
                      {"passed", passed}};
    if (vm.count("explain")) {
      out["explanation"] = Json::array();
      for (const auto& line : explanation) out["explanation"].push_back(json_text(line));
    }
    if (vm.count("stats")) out["cache"] = cache_stats_json(cache_stats());
    print_json(out);
  } else {
    std::printf("device: %s (kernel %s)\n", last.device.c_str(), last.kernel.c_str());
    std::printf("conv2d %s -> output %lldx%lldx%lldx%lld\n", d.to_string().c_str(),
                static_cast<long long>(d.n), static_cast<long long>(d.k),
                static_cast<long long>(d.out_h()), static_cast<long long>(d.out_w()));
    std::printf("median %.4f ms over %lld runs (%s time), %.2f GFLOPS\n", t.ms,
                static_cast<long long>(repeat), t.device_timed ? "device" : "wall", gflops);
    if (vm.count("check"))
      std::printf("check: max abs error %.3g, max rel error %.3g, non-finite %lld: %s\n",
                  cmp.max_abs_error, cmp.max_rel_error, static_cast<long long>(cmp.non_finite),
                  passed ? "PASS" : "FAIL");
    if (vm.count("stats")) {
      const CacheStats s = cache_stats();
      print_json({{"cache",
                   {{"compiles", s.compiles},
                    {"disk_hits", s.disk_hits},
                    {"memory_hits", s.memory_hits}}}});
    }
  }
  if (!passed) {
    std::fprintf(stderr, "sparkle-run: error: check failed: max rel error %.3g > %.1g\n",
                 cmp.max_rel_error, kCheckTolerance);
    return 1;
  }
  return 0;
}

}  // namespace sparkle::cli
