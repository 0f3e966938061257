// `sparkle-run tune`: measures every layer's kernel variants on one device
// and records the fastest (sparkle::Tuner), with progress and an estimate of
// the time left; `--measure` instead times what the engine would now run,
// the way the tuner times (device-resident data, busy warm-up, back-to-back
// timed runs, outputs checked against float64), for side-by-side races.
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sparkle/tune.hpp>

#include "cli.hpp"

namespace po = boost::program_options;

namespace sparkle::cli {

namespace {

std::string json_numbers(const std::vector<double>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + json_number(v[i]);
  return out + "]";
}

std::string duration(double s) {
  char buf[32];
  if (s >= 90)
    std::snprintf(buf, sizeof buf, "%.1f min", s / 60);
  else
    std::snprintf(buf, sizeof buf, "%.0f s", s);
  return buf;
}

}  // namespace

int run_tune(int argc, char** argv) {
  po::options_description opts(
      "sparkle-run tune [--suite resnet50 | --shapes FILE] [--batch N] --device D "
      "[--budget SECONDS] [--measure] [--json]");
  opts.add_options()("help,h", "show this help")(
      "suite", po::value<std::string>(), "built-in suite: resnet50 (ResNet-50 v1.5, 53 convs)")(
      "shapes", po::value<std::string>(), "shapes file (format in docs/CLI.md)")(
      "batch", po::value<std::string>()->default_value("1"), "batch size N")(
      "device", po::value<std::string>()->default_value(""),
      "a backend or NAME:INDEX (default: the first device with kernel variants)")(
      "budget", po::value<std::string>()->default_value("0"),
      "seconds for the whole suite, shared out over the layers still to tune (0: no limit)")(
      "repeat", po::value<std::string>()->default_value("10"), "timed runs per variant and round")(
      "rounds", po::value<std::string>()->default_value("2"),
      "timing rounds (later rounds re-time the leaders)")(
      "busy-ms", po::value<std::string>()->default_value("25"),
      "device time of untimed back-to-back runs before each timing")(
      "max-variants", po::value<std::string>()->default_value("0"),
      "measure at most this many variants per layer (0: all the model keeps)")(
      "retune", "measure again even where a valid record exists")(
      "measure", "tune nothing: time what plans use now (tuned winner or default)")(
      "seed", po::value<std::string>()->default_value("1"), "seed of the random data")(
      "quiet", "no progress lines on stderr")("verbose", "a progress line per variant")(
      "json", "print one JSON object (every timing) instead of the table");
  // The shared parser: stray tokens are refused by name, not dropped.
  const po::variables_map vm = parse_options(argc, argv, opts);
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  auto one_int = [&](const char* name) { return int_option(vm, name); };
  const int64_t batch = one_int("batch"), repeat = one_int("repeat"), rounds = one_int("rounds"),
                busy = one_int("busy-ms"), max_variants = one_int("max-variants"),
                seed = one_int("seed"), budget = one_int("budget");
  if (batch <= 0) throw UsageError("batch=" + std::to_string(batch) + " must be > 0");
  if (repeat <= 0) throw UsageError("repeat=" + std::to_string(repeat) + " must be > 0");
  if (rounds <= 0) throw UsageError("rounds=" + std::to_string(rounds) + " must be > 0");
  if (busy < 0) throw UsageError("busy-ms=" + std::to_string(busy) + " must be >= 0");
  if (budget < 0) throw UsageError("budget=" + std::to_string(budget) + " must be >= 0");
  if (max_variants < 0)
    throw UsageError("max-variants=" + std::to_string(max_variants) + " must be >= 0");
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
  for (const auto& l : layers) {
    check_fits_in_memory(l.name + " input", l.desc.input_elements());
    check_fits_in_memory(l.name + " output", l.desc.output_elements());
  }
  const bool json = vm.count("json") > 0, quiet = vm.count("quiet") > 0,
             verbose = vm.count("verbose") > 0, measure_only = vm.count("measure") > 0;

  Tuner tuner;
  TuneOptions o;
  o.device = vm["device"].as<std::string>();
  o.repeat = static_cast<int>(repeat);
  o.rounds = static_cast<int>(rounds);
  o.busy_ms = static_cast<double>(busy);
  o.max_candidates = static_cast<int>(max_variants);
  o.retune = vm.count("retune") > 0;
  o.seed = static_cast<uint64_t>(seed);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  int failures = 0;
  double fastest_layer_s = 1e30;
  std::string rows_json;
  double total_ms = 0, total_default_ms = 0, total_flops = 0;
  bool default_complete = true;
  std::string device;
  // Printed before the first row, so that a bad --device prints only its error.
  bool header_printed = json;
  auto header = [&] {
    if (header_printed) return;
    header_printed = true;
    if (measure_only)
      std::printf("%-10s %5s %10s %10s %10s %9s %9s  %s\n", "layer", "count", "median ms", "min ms",
                  "max ms", "TFLOPS", "max err", "kernel");
    else
      std::printf("%-10s %5s %9s %10s %10s %7s %9s %7s  %s\n", "layer", "count", "measured",
                  "best ms", "default ms", "speedup", "TFLOPS", "tune s", "winner");
  };
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    const Conv2dDesc& d = l.desc;
    const double count = static_cast<double>(l.count);
    total_flops += d.flops() * count;
    if (measure_only) {
      MeasureResult r;
      try {
        r = tuner.measure(d, o);
      } catch (const Error& e) {
        if (e.code() == ErrorCode::not_found || e.code() == ErrorCode::invalid_argument) throw;
        ++failures;
        std::fprintf(stderr, "[%zu/%zu] %-10s failed: %s\n", i + 1, layers.size(), l.name.c_str(),
                     e.what());
        continue;
      }
      device = r.device;
      if (!r.correct) ++failures;
      total_ms += r.median_ms * count;
      const double tflops = d.flops() / (r.median_ms * 1e9);
      if (!quiet)
        std::fprintf(stderr, "[%zu/%zu] %-10s %9.4f ms (%.4f-%.4f) %6.2f TFLOPS %s%s%s\n", i + 1,
                     layers.size(), l.name.c_str(), r.median_ms, r.min_ms, r.max_ms, tflops,
                     r.kernel.c_str(), r.tuned ? " (tuned)" : "",
                     r.correct ? "" : "  WRONG RESULT");
      if (json) {
        rows_json +=
            std::string(rows_json.empty() ? "" : ",") + "{\"name\":" + json_string(l.name) +
            ",\"count\":" + std::to_string(l.count) + ",\"kernel\":" + json_string(r.kernel) +
            ",\"tuned\":" + (r.tuned ? "true" : "false") + ",\"timer\":" + json_string(r.timer) +
            ",\"ms\":" + json_number(r.median_ms) + ",\"min_ms\":" + json_number(r.min_ms) +
            ",\"max_ms\":" + json_number(r.max_ms) + ",\"flops\":" + json_number(d.flops()) +
            ",\"max_rel_error\":" + json_number(r.max_rel_error) +
            ",\"correct\":" + (r.correct ? "true" : "false") +
            ",\"samples_ms\":" + json_numbers(r.samples_ms) + "}";
      } else {
        header();
        std::printf("%-10s %5lld %10.4f %10.4f %10.4f %9.2f %9.2g  %s%s%s\n", l.name.c_str(),
                    static_cast<long long>(l.count), r.median_ms, r.min_ms, r.max_ms, tflops,
                    r.max_rel_error, r.kernel.c_str(), r.tuned ? " (tuned)" : "",
                    r.correct ? "" : "  WRONG RESULT");
      }
      continue;
    }
    // The budget left is shared out over the layers still to tune.
    if (budget > 0) {
      const double left = static_cast<double>(budget) - elapsed();
      o.budget_s = std::max(left / static_cast<double>(layers.size() - i), 0.5);
    }
    o.progress = nullptr;
    if (verbose && !quiet) {
      o.progress = [&](const TuneProgress& p) {
        std::fprintf(stderr, "    %zu/%zu %-40s %s\n", p.measured, p.candidates, p.variant.c_str(),
                     p.median_ms > 0 ? (std::to_string(p.median_ms) + " ms").c_str() : "failed");
      };
    }
    TuneResult r;
    try {
      r = tuner.tune(d, o);
    } catch (const Error& e) {
      // A device that does not exist is the caller's error (exit 2); a layer
      // that cannot be tuned there is reported and the others go on.
      if (e.code() == ErrorCode::not_found || e.code() == ErrorCode::invalid_argument) throw;
      ++failures;
      std::fprintf(stderr, "[%zu/%zu] %-10s failed: %s\n", i + 1, layers.size(), l.name.c_str(),
                   e.what());
      continue;
    }
    device = r.device;
    size_t measured = 0;
    for (const auto& v : r.variants) measured += v.measured ? 1 : 0;
    total_ms += r.winner_ms * count;
    if (r.default_ms > 0)
      total_default_ms += r.default_ms * count;
    else
      default_complete = false;
    const double speedup = r.default_ms > 0 ? r.default_ms / r.winner_ms : NAN;
    const double tflops = d.flops() / (r.winner_ms * 1e9);
    if (!quiet) {
      const double done = elapsed();
      const double layers_left = static_cast<double>(layers.size() - i - 1);
      fastest_layer_s = std::min(fastest_layer_s, r.seconds);
      double left = done / static_cast<double>(i + 1) * layers_left;
      // With a budget, what is left of it, but never less than the layers
      // still to do take at their quickest (each measures a first batch).
      if (budget > 0) {
        left = std::min(
            left, std::max(static_cast<double>(budget) - done, layers_left * fastest_layer_s));
      }
      std::fprintf(stderr,
                   "[%zu/%zu] %-10s %zu/%zu variants, best %s %.4f ms (default %.4f ms, "
                   "%.2fx)%s; %s elapsed, about %s left\n",
                   i + 1, layers.size(), l.name.c_str(), measured, r.variants.size(),
                   r.winner.c_str(), r.winner_ms, r.default_ms, speedup,
                   r.from_record ? " from the record" : "", duration(done).c_str(),
                   duration(left).c_str());
    }
    if (json) {
      std::string vs;
      for (const auto& v : r.variants) {
        vs += std::string(vs.empty() ? "" : ",") + "{\"name\":" + json_string(v.name) +
              ",\"family\":" + json_string(v.family) +
              ",\"default\":" + (v.is_default ? "true" : "false") +
              ",\"predicted\":" + json_number(v.predicted) +
              ",\"measured\":" + (v.measured ? "true" : "false") +
              ",\"median_ms\":" + json_number(v.median_ms) +
              ",\"min_ms\":" + json_number(v.min_ms) + ",\"max_ms\":" + json_number(v.max_ms) +
              ",\"plan_ms\":" + json_number(v.plan_ms) +
              ",\"max_rel_error\":" + json_number(v.max_rel_error) +
              ",\"error\":" + json_string(v.error) +
              ",\"samples_ms\":" + json_numbers(v.samples_ms) + "}";
      }
      rows_json += std::string(rows_json.empty() ? "" : ",") + "{\"name\":" + json_string(l.name) +
                   ",\"count\":" + std::to_string(l.count) + ",\"op\":" + json_string(r.op) +
                   ",\"winner\":" + json_string(r.winner) + ",\"ms\":" + json_number(r.winner_ms) +
                   ",\"default\":" + json_string(r.default_variant) +
                   ",\"default_ms\":" + json_number(r.default_ms) +
                   ",\"flops\":" + json_number(d.flops()) + ",\"timer\":" + json_string(r.timer) +
                   ",\"from_record\":" + (r.from_record ? "true" : "false") +
                   ",\"seconds\":" + json_number(r.seconds) + ",\"variants\":[" + vs + "]}";
    } else {
      header();
      std::printf("%-10s %5lld %4zu/%-4zu %10.4f %10.4f %7.2f %9.2f %7.1f  %s%s\n", l.name.c_str(),
                  static_cast<long long>(l.count), measured, r.variants.size(), r.winner_ms,
                  r.default_ms, speedup, tflops, r.seconds, r.winner.c_str(),
                  r.from_record ? " (record)" : "");
    }
  }
  const double seconds = elapsed();
  const double total_tflops = total_flops / (total_ms * 1e9);
  if (json) {
    std::cout << "{\"mode\":" << json_string(measure_only ? "measure" : "tune")
              << ",\"device\":" << json_string(device) << ",\"suite\":" << json_string(suite)
              << ",\"batch\":" << batch << ",\"layers\":[" << rows_json
              << "],\"total_ms\":" << json_number(total_ms)
              << ",\"total_tflops\":" << json_number(total_tflops)
              << ",\"default_total_ms\":" << json_number(default_complete ? total_default_ms : NAN)
              << ",\"seconds\":" << json_number(seconds) << ",\"failures\":" << failures << "}\n";
  } else if (measure_only) {
    std::printf("total (sum of median ms x count): %.3f ms, %.2f TFLOPS, batch %lld, device %s\n",
                total_ms, total_tflops, static_cast<long long>(batch), device.c_str());
  } else {
    std::printf("total (sum of best ms x count): %.3f ms, %.2f TFLOPS", total_ms, total_tflops);
    if (default_complete && total_default_ms > 0)
      std::printf("; defaults %.3f ms (%.2fx)", total_default_ms, total_default_ms / total_ms);
    std::printf("; batch %lld, device %s, tuning took %.1f s\n", static_cast<long long>(batch),
                device.c_str(), seconds);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace sparkle::cli
