// `sparkle-run stream`: one convolution over a stream of batches, run
// synchronously (a submit and a wait per batch) and pipelined through
// Engine::stream (several batches in flight), with inputs and outputs in
// engine-owned host memory and in ordinary memory. Reports the time per
// batch, the per-stage times (upload, compute, download) and their bound
// max(upload, compute, download), and checks every pipelined output bit for
// bit against the synchronous one. The stages of the bound are measured one
// batch at a time (a one-slot copy stream, engine-owned memory where it is
// used), so that no stage overlaps another, as PyTorch's CUDA events do.
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>

#include "cli.hpp"

namespace po = boost::program_options;

namespace sparkle::cli {
namespace {

double since_ms(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

struct Stages {
  double upload = -1, compute = -1, download = -1;
  double bound() const { return std::max({upload, compute, download}); }
};

// Medians of the stage times the results report (-1: stage absent).
Stages stages_of(const std::vector<RunResult>& results) {
  std::vector<double> up, comp, down;
  for (const auto& r : results) {
    if (r.upload_ms >= 0) up.push_back(r.upload_ms);
    comp.push_back(r.device_ms >= 0 ? r.device_ms : r.wall_ms);
    if (r.download_ms >= 0) down.push_back(r.download_ms);
  }
  Stages s;
  if (!up.empty()) s.upload = median(up);
  s.compute = median(comp);
  if (!down.empty()) s.download = median(down);
  return s;
}

struct Run {
  std::string name;
  std::vector<double> per_batch_ms;  // one per round
  Stages stages;
  bool identical = true;
};

std::string stages_json(const Stages& s) {
  auto ms = [](double v) { return v < 0 ? std::string("null") : json_number(v); };
  return "{\"upload_ms\":" + ms(s.upload) + ",\"compute_ms\":" + ms(s.compute) +
         ",\"download_ms\":" + ms(s.download) + ",\"bound_ms\":" + ms(s.bound()) + "}";
}

// `--device all` or a list: each device's own stream, then one stream
// juggled across them, every output checked bit for bit against a
// synchronous run on the device that produced it.
int run_juggled(Engine& engine, const Conv2dDesc& d, const std::string& devices, int64_t batches,
                int64_t slots, int64_t rounds, int64_t seed, StreamTransfer transfer, bool json,
                bool quiet) {
  const auto x_count = static_cast<size_t>(d.input_elements());
  const auto y_count = static_cast<size_t>(d.output_elements());
  check_fits_in_memory(
      "the stream's inputs and outputs",
      static_cast<int64_t>((x_count + 4 * y_count) * static_cast<size_t>(batches)));
  const auto w = random_tensor(d.weight_elements(), static_cast<uint64_t>(seed) * 7 + 1);
  const auto b = random_tensor(d.bias_elements(), static_cast<uint64_t>(seed) * 7 + 2);
  std::vector<float> xs(x_count * static_cast<size_t>(batches));
  for (int64_t i = 0; i < batches; ++i) {
    const auto x = random_tensor(d.input_elements(), static_cast<uint64_t>(seed) * 7919 + i);
    std::memcpy(xs.data() + static_cast<size_t>(i) * x_count, x.data(), x_count * sizeof(float));
  }
  auto x_of = [&](int64_t i) {
    return std::span<const float>(xs).subspan(static_cast<size_t>(i) * x_count, x_count);
  };
  StreamOptions so;
  so.run.device = devices;
  so.slots = static_cast<int>(slots);
  so.transfer = transfer;
  Stream juggled = engine.stream(d, w, b, so);
  std::vector<std::string> names;
  for (size_t start = 0; start <= juggled.device().size();) {
    const size_t plus = std::min(juggled.device().find('+', start), juggled.device().size());
    names.push_back(juggled.device().substr(start, plus - start));
    start = plus + 1;
  }
  // Each device's synchronous outputs (the check) and its own stream.
  std::map<std::string, std::vector<float>> sync;
  std::vector<Stream> own;
  for (const auto& n : names) {
    auto& y = sync[n];
    y.resize(y_count * static_cast<size_t>(batches));
    RunOptions on;
    on.device = n;
    for (int64_t i = 0; i < batches; ++i)
      engine.conv2d(d, x_of(i), w, b, std::span<float>(y).subspan(i * y_count, y_count), on);
    StreamOptions one = so;
    one.run.device = n;
    own.push_back(engine.stream(d, w, b, one));
  }
  std::vector<float> out(y_count * static_cast<size_t>(batches));
  auto run_stream_once = [&](Stream& s, std::vector<std::string>* ran_on) {
    std::vector<Future> futures;
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < batches; ++i)
      futures.push_back(s.submit(x_of(i), std::span<float>(out).subspan(i * y_count, y_count)));
    bool identical = true;
    for (int64_t i = 0; i < batches; ++i) {
      const RunResult r = futures[static_cast<size_t>(i)].wait();
      if (ran_on != nullptr) ran_on->push_back(r.device);
      const float* want = sync[r.device].data() + static_cast<size_t>(i) * y_count;
      identical = identical && std::memcmp(want, out.data() + static_cast<size_t>(i) * y_count,
                                           y_count * sizeof(float)) == 0;
    }
    return std::pair{since_ms(start) / static_cast<double>(batches), identical};
  };
  spin_up([&] { return juggled.submit(x_of(0), std::span<float>(out).subspan(0, y_count)); }, 1000);
  std::vector<std::vector<double>> own_ms(names.size());
  std::vector<double> juggled_ms;
  std::vector<std::string> ran_on;
  bool identical = true;
  for (int64_t r = 0; r < rounds; ++r) {
    for (size_t k = 0; k < names.size(); ++k) {
      auto [ms, ok] = run_stream_once(own[k], nullptr);
      own_ms[k].push_back(ms);
      identical = identical && ok;
    }
    ran_on.clear();
    auto [ms, ok] = run_stream_once(juggled, &ran_on);
    juggled_ms.push_back(ms);
    identical = identical && ok;
    if (!quiet)
      std::fprintf(stderr, "[round %lld/%lld] juggled %.3f ms/batch\n", (long long)(r + 1),
                   (long long)rounds, ms);
  }
  double sum_rate = 0;  // batches per ms, each device alone
  for (auto& m : own_ms) sum_rate += 1.0 / median(m);
  const double juggled_rate = 1.0 / median(juggled_ms);
  double best_rate = 0;
  for (auto& m : own_ms) best_rate = std::max(best_rate, 1.0 / median(m));
  std::map<std::string, int64_t> count;
  for (const auto& n : ran_on) ++count[n];
  if (json) {
    std::string o = "{\"devices\":" + json_string(juggled.device()) +
                    ",\"desc\":" + json_string(d.to_string()) +
                    ",\"batches\":" + std::to_string(batches) +
                    ",\"slots\":" + std::to_string(slots) + ",\"own\":[";
    for (size_t k = 0; k < names.size(); ++k)
      o += (k ? "," : "") + std::string("{\"device\":") + json_string(names[k]) +
           ",\"ms_per_batch\":" + json_number(median(own_ms[k])) + "}";
    o += "],\"juggled_ms_per_batch\":" + json_number(median(juggled_ms)) + ",\"batches_on\":{";
    bool first = true;
    for (const auto& [n, c] : count) {
      o += (first ? "" : ",") + json_string(n) + ":" + std::to_string(c);
      first = false;
    }
    o += "},\"vs_best_device\":" + json_number(juggled_rate / best_rate) +
         ",\"vs_sum_of_devices\":" + json_number(juggled_rate / sum_rate) +
         ",\"outputs_identical\":" + (identical ? "true" : "false") + "}";
    std::cout << o << "\n";
  } else {
    std::printf("stream of %lld batches of %s juggled across %s, %lld slots each\n",
                (long long)batches, d.to_string().c_str(), juggled.device().c_str(),
                (long long)slots);
    for (size_t k = 0; k < names.size(); ++k)
      std::printf("  %-12s alone %9.3f ms/batch\n", names[k].c_str(), median(own_ms[k]));
    std::printf(
        "  juggled      %9.3f ms/batch: %.2fx the fastest device, %.2f of the devices' sum\n",
        median(juggled_ms), juggled_rate / best_rate, juggled_rate / sum_rate);
    for (const auto& [n, c] : count)
      std::printf("  %-12s took %lld batches\n", n.c_str(), (long long)c);
    std::printf("outputs: %s\n", identical ? "each bit-identical to its device's synchronous run"
                                           : "MISMATCH against a device's synchronous run");
  }
  return identical ? 0 : 1;
}

}  // namespace

int run_stream(int argc, char** argv) {
  po::options_description opts(
      "sparkle-run stream --shape N,C,H,W --filter K,R,S [conv flags] [--batches 64] [--slots 3]\n"
      "                   [--device D] [--memory both|engine|ordinary] [--transfer "
      "copy|direct|both]\n"
      "                   [--rounds 3] [--json]");
  opts.add_options()("help,h", "show this help")("shape", po::value<std::string>(),
                                                 "input of one batch, N,C,H,W")(
      "filter", po::value<std::string>(), "K,R,S filters")("bias-random", "random bias")(
      "stride", po::value<std::string>()->default_value("1"), "S or SH,SW")(
      "pad", po::value<std::string>()->default_value("0"), "P, PH,PW or PT,PL,PB,PR")(
      "dilation", po::value<std::string>()->default_value("1"), "D or DH,DW")(
      "groups", po::value<std::string>()->default_value("1"), "channel groups")(
      "relu", "fuse max(0, y)")("batches", po::value<std::string>()->default_value("64"),
                                "batches in the stream")(
      "slots", po::value<std::string>()->default_value("3"), "batches in flight (1 to 64)")(
      "device", po::value<std::string>()->default_value(""),
      "auto, a backend or NAME:INDEX; default SPARKLE_DEVICE or auto")(
      "memory", po::value<std::string>()->default_value("both"),
      "where pipelined batches live: engine (Engine::host_memory, no staging copy), ordinary "
      "(std::vector), or both")(
      "transfer", po::value<std::string>()->default_value("copy"),
      "copy: staging <-> device memory around the convolution; direct: the convolution reads "
      "and writes staging itself; both")("rounds", po::value<std::string>()->default_value("3"),
                                         "rounds of (synchronous, pipelined...), medians reported")(
      "seed", po::value<std::string>()->default_value("1"), "seed of the random data")(
      "spinup", po::value<std::string>()->default_value("1000"),
      "milliseconds of back-to-back batches before timing, so a GPU's clocks are up (0: none)")(
      "json", "print one JSON object")("quiet", "no progress lines on stderr");
  const po::variables_map vm = parse_options(argc, argv, opts);
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  if (!vm.count("shape") || !vm.count("filter"))
    throw UsageError("give --shape N,C,H,W and --filter K,R,S");
  auto one = [&](const char* name) {
    return parse_int_list(vm[name].as<std::string>(), name, {1})[0];
  };
  Conv2dDesc d;
  const auto s = parse_int_list(vm["shape"].as<std::string>(), "shape", {4});
  d.n = s[0], d.c = s[1], d.h = s[2], d.w = s[3];
  const auto f = parse_int_list(vm["filter"].as<std::string>(), "filter", {3});
  d.k = f[0], d.r = f[1], d.s = f[2];
  const auto stride = parse_int_list(vm["stride"].as<std::string>(), "stride", {1, 2});
  d.stride_h = stride[0], d.stride_w = stride.back();
  auto pad = parse_int_list(vm["pad"].as<std::string>(), "pad", {1, 2, 4});
  if (pad.size() == 1) pad = {pad[0], pad[0], pad[0], pad[0]};
  if (pad.size() == 2) pad = {pad[0], pad[1], pad[0], pad[1]};
  d.pad_top = pad[0], d.pad_left = pad[1], d.pad_bottom = pad[2], d.pad_right = pad[3];
  const auto dil = parse_int_list(vm["dilation"].as<std::string>(), "dilation", {1, 2});
  d.dilation_h = dil[0], d.dilation_w = dil.back();
  d.groups = one("groups");
  d.relu = vm.count("relu") > 0;
  d.has_bias = vm.count("bias-random") > 0;
  d.validate();
  const int64_t batches = one("batches"), slots = one("slots"), rounds = one("rounds"),
                seed = one("seed");
  if (batches < 1 || batches > 100000)
    throw UsageError("batches=" + std::to_string(batches) + " must be from 1 to 100000");
  if (slots < 1 || slots > 64)
    throw UsageError("slots=" + std::to_string(slots) + " must be from 1 to 64");
  if (rounds < 1 || rounds > 100)
    throw UsageError("rounds=" + std::to_string(rounds) + " must be from 1 to 100");
  const std::string memory = vm["memory"].as<std::string>();
  if (memory != "both" && memory != "engine" && memory != "ordinary")
    throw UsageError("memory='" + memory + "' must be both, engine or ordinary");
  const std::string transfer = vm["transfer"].as<std::string>();
  if (transfer != "both" && transfer != "copy" && transfer != "direct")
    throw UsageError("transfer='" + transfer + "' must be copy, direct or both");
  const bool json = vm.count("json") > 0, quiet = vm.count("quiet") > 0;

  const auto x_count = static_cast<size_t>(d.input_elements());
  const auto y_count = static_cast<size_t>(d.output_elements());
  check_fits_in_memory(
      "the stream's inputs and outputs",
      static_cast<int64_t>((x_count + 3 * y_count) * static_cast<size_t>(batches)));

  Engine engine;
  RunOptions run;
  run.device = vm["device"].as<std::string>();
  if (run.device == "all" || run.device.find(',') != std::string::npos) {
    if (memory == "engine")
      throw UsageError("memory=engine needs one device (host memory belongs to a device)");
    return run_juggled(engine, d, run.device, batches, slots, rounds, seed,
                       transfer == "direct" ? StreamTransfer::direct : StreamTransfer::copy, json,
                       quiet);
  }
  const std::string device = engine.resolve_device(d, run);
  run.device = device;

  // All data before any timing: inputs, weights, and the synchronous
  // outputs every pipelined one is checked against.
  const auto w = random_tensor(d.weight_elements(), static_cast<uint64_t>(seed) * 7 + 1);
  const auto b = random_tensor(d.bias_elements(), static_cast<uint64_t>(seed) * 7 + 2);
  std::vector<float> xs(x_count * static_cast<size_t>(batches));
  for (int64_t i = 0; i < batches; ++i) {
    const auto x = random_tensor(d.input_elements(), static_cast<uint64_t>(seed) * 7919 + i);
    std::memcpy(xs.data() + static_cast<size_t>(i) * x_count, x.data(), x_count * sizeof(float));
  }
  auto x_of = [&](std::span<const float> all, int64_t i) {
    return all.subspan(static_cast<size_t>(i) * x_count, x_count);
  };
  auto y_of = [&](std::span<float> all, int64_t i) {
    return all.subspan(static_cast<size_t>(i) * y_count, y_count);
  };
  std::vector<float> y_sync(y_count * static_cast<size_t>(batches));
  std::vector<float> y_ordinary(memory != "engine" ? y_sync.size() : 0);
  // Engine-owned memory, one HostMemory per batch (a direct stream binds
  // each whole).
  std::vector<HostMemory> x_engine, y_engine;
  if (memory != "ordinary") {
    for (int64_t i = 0; i < batches; ++i) {
      x_engine.push_back(engine.host_memory(x_count, device, HostUse::upload));
      y_engine.push_back(engine.host_memory(y_count, device, HostUse::readback));
      std::memcpy(x_engine.back().data(), x_of(xs, i).data(), x_count * sizeof(float));
    }
  }
  struct Mode {
    StreamTransfer transfer;
    bool owned;
  };
  std::vector<Mode> modes;
  for (auto t : {StreamTransfer::copy, StreamTransfer::direct}) {
    if (transfer != "both" && (t == StreamTransfer::copy) != (transfer == "copy")) continue;
    if (memory != "ordinary") modes.push_back({t, true});
    if (memory != "engine") modes.push_back({t, false});
  }
  std::vector<Stream> streams;
  Run sync{"synchronous", {}, {}, true};
  Run staged{"stages, one batch at a time", {}, {}, true};
  StreamOptions one_slot;
  one_slot.run = run;
  one_slot.slots = 1;
  Stream stage_probe = engine.stream(d, w, b, one_slot);
  const bool probe_owned = memory != "ordinary";
  std::vector<double> bounds;
  std::vector<Run> piped;
  for (const auto& m : modes) {
    StreamOptions so;
    so.run = run;
    so.slots = static_cast<int>(slots);
    so.transfer = m.transfer;
    streams.push_back(engine.stream(d, w, b, so));
    piped.push_back({std::string(m.transfer == StreamTransfer::copy ? "copy" : "direct") +
                         (m.owned ? ", engine-owned memory" : ", ordinary memory"),
                     {},
                     {},
                     true});
  }

  // Warm-up: compiles, pools, then the clocks (the first stream back to back).
  for (int64_t i = 0; i < std::min<int64_t>(batches, 4); ++i)
    engine.conv2d(d, x_of(xs, i), w, b, y_of(y_sync, i), run);
  const int64_t spinup_ms = one("spinup");
  if (spinup_ms < 0) throw UsageError("spinup=" + std::to_string(spinup_ms) + " must be >= 0");
  if (spinup_ms > 0 && !streams.empty()) {
    int64_t next = 0;
    spin_up(
        [&] {
          const int64_t i = next++ % batches;
          return streams.front().submit(x_of(xs, i),
                                        y_of(y_ordinary.empty() ? y_sync : y_ordinary, i));
        },
        static_cast<double>(spinup_ms));
    // (the synchronous outputs are rewritten by the timed runs)
  }

  std::vector<RunResult> results(static_cast<size_t>(batches));
  for (int64_t round = 0; round < rounds; ++round) {
    auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < batches; ++i)
      results[static_cast<size_t>(i)] = engine.conv2d(d, x_of(xs, i), w, b, y_of(y_sync, i), run);
    sync.per_batch_ms.push_back(since_ms(start) / static_cast<double>(batches));
    sync.stages = stages_of(results);
    {
      std::vector<Future> futures;
      for (int64_t i = 0; i < batches; ++i)
        futures.push_back(stage_probe.submit(
            probe_owned ? std::span<const float>(x_engine[static_cast<size_t>(i)].span())
                        : x_of(xs, i),
            probe_owned ? y_engine[static_cast<size_t>(i)].span() : y_of(y_ordinary, i)));
      for (int64_t i = 0; i < batches; ++i) results[static_cast<size_t>(i)] = futures[i].wait();
      staged.stages = stages_of(results);
      bounds.push_back(staged.stages.bound());
    }
    for (size_t k = 0; k < piped.size(); ++k) {
      Run& p = piped[k];
      const bool owned = modes[k].owned;
      auto in = [&](int64_t i) {
        return owned ? std::span<const float>(x_engine[static_cast<size_t>(i)].span())
                     : x_of(xs, i);
      };
      auto out = [&](int64_t i) {
        return owned ? y_engine[static_cast<size_t>(i)].span() : y_of(y_ordinary, i);
      };
      for (int64_t i = 0; i < batches; ++i) {
        auto o = out(i);
        std::fill(o.begin(), o.end(), std::numeric_limits<float>::quiet_NaN());
      }
      std::vector<Future> futures;
      futures.reserve(static_cast<size_t>(batches));
      start = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < batches; ++i) futures.push_back(streams[k].submit(in(i), out(i)));
      for (int64_t i = 0; i < batches; ++i) results[static_cast<size_t>(i)] = futures[i].wait();
      p.per_batch_ms.push_back(since_ms(start) / static_cast<double>(batches));
      p.stages = stages_of(results);
      for (int64_t i = 0; i < batches; ++i)
        p.identical = p.identical && std::memcmp(out(i).data(), y_of(y_sync, i).data(),
                                                 y_count * sizeof(float)) == 0;
    }
    if (!quiet) {
      std::fprintf(stderr, "[round %lld/%lld] synchronous %.3f ms/batch", (long long)(round + 1),
                   (long long)rounds, sync.per_batch_ms.back());
      for (const auto& p : piped)
        std::fprintf(stderr, ", %s %.3f ms/batch", p.name.c_str(), p.per_batch_ms.back());
      std::fprintf(stderr, "\n");
    }
  }
  const double bound = median(bounds);
  bool all_identical = true;
  for (const auto& p : piped) all_identical = all_identical && p.identical;

  const double flops = d.flops();
  if (json) {
    std::string out =
        "{\"device\":" + json_string(device) + ",\"desc\":" + json_string(d.to_string()) +
        ",\"batches\":" + std::to_string(batches) + ",\"slots\":" + std::to_string(slots) +
        ",\"rounds\":" + std::to_string(rounds) +
        ",\"gflop_per_batch\":" + json_number(flops / 1e9) +
        ",\"synchronous\":{\"ms_per_batch\":" + json_number(median(sync.per_batch_ms)) +
        ",\"rounds_ms\":[";
    for (size_t i = 0; i < sync.per_batch_ms.size(); ++i)
      out += (i ? "," : "") + json_number(sync.per_batch_ms[i]);
    out += "],\"stages\":" + stages_json(sync.stages) +
           "},\"stage_probe\":{\"memory\":" + json_string(probe_owned ? "engine" : "ordinary") +
           ",\"stages\":" + stages_json(staged.stages) + "},\"pipelined\":[";
    for (size_t k = 0; k < piped.size(); ++k) {
      const auto& p = piped[k];
      out += (k ? "," : "") + std::string("{\"memory\":") +
             json_string(modes[k].owned ? "engine" : "ordinary") + ",\"transfer\":" +
             json_string(modes[k].transfer == StreamTransfer::copy ? "copy" : "direct") +
             ",\"ms_per_batch\":" + json_number(median(p.per_batch_ms)) + ",\"rounds_ms\":[";
      for (size_t i = 0; i < p.per_batch_ms.size(); ++i)
        out += (i ? "," : "") + json_number(p.per_batch_ms[i]);
      out += "],\"over_bound\":" + json_number(median(p.per_batch_ms) / bound) +
             ",\"stages\":" + stages_json(p.stages) +
             ",\"identical\":" + (p.identical ? "true" : "false") + "}";
    }
    out += "],\"bound_ms\":" + json_number(bound) +
           ",\"outputs_identical\":" + (all_identical ? "true" : "false") + "}";
    std::cout << out << "\n";
  } else {
    std::printf("stream of %lld batches of %s on %s, %lld slots, %lld rounds (medians)\n",
                (long long)batches, d.to_string().c_str(), device.c_str(), (long long)slots,
                (long long)rounds);
    auto stage = [](double v) {
      char buf[32];
      if (v < 0)
        std::snprintf(buf, sizeof buf, "%9s", "-");
      else
        std::snprintf(buf, sizeof buf, "%9.3f", v);
      return std::string(buf);
    };
    std::printf("%-32s %12s %9s %9s %9s %8s\n", "", "ms/batch", "upload", "compute", "download",
                "/bound");
    std::printf("%-32s %12.3f %s %s %s %8.2f\n", "synchronous", median(sync.per_batch_ms),
                stage(sync.stages.upload).c_str(), stage(sync.stages.compute).c_str(),
                stage(sync.stages.download).c_str(), median(sync.per_batch_ms) / bound);
    for (const auto& p : piped)
      std::printf("%-32s %12.3f %s %s %s %8.2f\n", p.name.c_str(), median(p.per_batch_ms),
                  stage(p.stages.upload).c_str(), stage(p.stages.compute).c_str(),
                  stage(p.stages.download).c_str(), median(p.per_batch_ms) / bound);
    std::printf("%-32s %12s %s %s %s\n", staged.name.c_str(), "",
                stage(staged.stages.upload).c_str(), stage(staged.stages.compute).c_str(),
                stage(staged.stages.download).c_str());
    std::printf(
        "bound max(upload, compute, download), stages one batch at a time (%s memory): %.3f ms\n",
        probe_owned ? "engine-owned" : "ordinary", bound);
    std::printf("outputs: %s\n", all_identical
                                     ? "every pipelined output bit-identical to the synchronous one"
                                     : "MISMATCH between pipelined and synchronous outputs");
  }
  return all_identical ? 0 : 1;
}

}  // namespace sparkle::cli
