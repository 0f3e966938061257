// sparkle-bench-onednn: sparkle's CPU backend (through sparkle::Engine)
// against oneDNN, side by side in one process, on the same inputs and with
// the same thread count. oneDNN runs twice per layer, as
// convolution_direct and as convolution_auto (which may pick Winograd), and
// sparkle is compared with the faster of the two.
//  --mode host: both libraries as an NCHW caller uses them: oneDNN's timed
//    region reorders x from NCHW into its chosen layout, runs and reorders y
//    back; sparkle gets host spans.
//  --mode resident: activations stay in each library's own layout between
//    calls: oneDNN's memories in the layouts its primitive chose, sparkle's
//    CPU tensors (Engine::tensor; blocked on the CPU backend). Nothing but
//    the convolution is timed.
// Weights are reordered once, outside the timed region. sparkle gets the
// same treatment by default (--weights constant: RunOptions::
// constant_weights, so its backend packs the weights on the first call and
// reuses them); --weights per-call makes sparkle read them anew on every
// call while oneDNN keeps its reorder.
#include <tbb/info.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <dnnl.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sparkle/engine.hpp>
#include <sparkle/shapes.hpp>
#include <sparkle/text.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fma_peak.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string shapes;
  int64_t batch = 1;
  int repeat = 10;
  int rounds = 3;
  bool constant_weights = true;
  bool resident = false;
  bool cpu_timer = false;  // process CPU time instead of wall time
  std::string json;
};

// The ResNet-50 shapes: installed next to the program
// (<exe>/../share/sparkle/shapes), else those of the source tree this was
// built from (running from the build tree).
std::string default_shapes() {
  std::error_code ec;
  const auto exe = std::filesystem::canonical("/proc/self/exe", ec);
  if (!ec) {
    const auto installed =
        exe.parent_path().parent_path() / "share" / "sparkle" / "shapes" / "resnet50_v1_5.shapes";
    if (std::filesystem::is_regular_file(installed, ec)) return installed.string();
  }
  return SPARKLE_BENCH_DEFAULT_SHAPES;
}

// The one integer grammar (sparkle/text.hpp), like sparkle-run.
int64_t integer(const std::string& flag, const std::string& text) {
  const sparkle::ParsedInteger v = sparkle::parse_integer(text);
  if (v.problem != sparkle::IntegerProblem::none) {
    std::fprintf(stderr, "%s='%s' is not an integer\n", flag.c_str(),
                 sparkle::printable(text).c_str());
    std::exit(2);
  }
  return v.value;
}

[[noreturn]] void usage(const char* argv0, int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: %s [--shapes FILE] [--batch N] [--repeat N] [--rounds N]\n"
               "          [--weights constant|per-call] [--mode host|resident] [--timer wall|cpu]\n"
               "          [--json FILE]\n"
               "  sparkle's cpu device against oneDNN (convolution_direct and\n"
               "  convolution_auto), per layer: medians of --rounds x --repeat runs, the\n"
               "  libraries taking turns each round. host: NCHW in and out, reorders\n"
               "  timed; resident: each library's own layouts kept between calls.\n"
               "  Default shapes: %s\n",
               argv0, default_shapes().c_str());
  std::exit(code);
}

Options parse(int argc, char** argv) {
  Options o;
  o.shapes = default_shapes();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        usage(argv[0], 2);
      }
      return argv[++i];
    };
    try {
      if (a == "--shapes") {
        o.shapes = value();
      } else if (a == "--batch") {
        o.batch = integer(a, value());
      } else if (a == "--repeat") {
        o.repeat = static_cast<int>(std::clamp<int64_t>(integer(a, value()), 0, 1 << 30));
      } else if (a == "--rounds") {
        o.rounds = static_cast<int>(std::clamp<int64_t>(integer(a, value()), 0, 1 << 30));
      } else if (a == "--weights") {
        const std::string v = value();
        if (v != "constant" && v != "per-call") {
          std::fprintf(stderr, "--weights must be constant or per-call, not '%s'\n", v.c_str());
          usage(argv[0], 2);
        }
        o.constant_weights = v == "constant";
      } else if (a == "--mode") {
        const std::string v = value();
        if (v != "host" && v != "resident") {
          std::fprintf(stderr, "--mode must be host or resident, not '%s'\n", v.c_str());
          usage(argv[0], 2);
        }
        o.resident = v == "resident";
      } else if (a == "--timer") {
        const std::string v = value();
        if (v != "wall" && v != "cpu") {
          std::fprintf(stderr, "--timer must be wall or cpu, not '%s'\n", v.c_str());
          usage(argv[0], 2);
        }
        o.cpu_timer = v == "cpu";
      } else if (a == "--json") {
        o.json = value();
      } else if (a == "-h" || a == "--help") {
        usage(argv[0], 0);
      } else {
        std::fprintf(stderr, "unknown argument %s\n", a.c_str());
        usage(argv[0], 2);
      }
    } catch (const std::logic_error&) {
      std::fprintf(stderr, "%s: not a number\n", a.c_str());
      usage(argv[0], 2);
    }
  }
  if (o.batch < 1 || o.repeat < 1 || o.rounds < 1) {
    std::fprintf(stderr, "--batch, --repeat and --rounds must be >= 1\n");
    std::exit(2);
  }
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// CPU time of the whole process (every thread) in ms. With one thread (the
// bench pinned to one core) it counts only the time this process ran, so
// other processes on a shared machine do not inflate it; with more threads
// it also counts idle workers spinning, and means little.
double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
}

// One convolution through oneDNN: as an NCHW caller runs it (run), or on
// memories kept in the primitive's own layouts (run_resident).
class OnednnConv {
 public:
  OnednnConv(dnnl::engine& eng, const sparkle::Conv2dDesc& d, const std::vector<float>& w,
             const std::vector<float>& bias, dnnl::algorithm alg)
      : eng_(eng), stream_(eng) {
    using namespace dnnl;
    using tag = memory::format_tag;
    using dt = memory::data_type;
    const memory::dims src = {d.n, d.c, d.h, d.w};
    const memory::dims dst = {d.n, d.k, d.out_h(), d.out_w()};
    const memory::dims wei = d.groups == 1
                                 ? memory::dims{d.k, d.c, d.r, d.s}
                                 : memory::dims{d.groups, d.k / d.groups, d.c / d.groups, d.r, d.s};
    const memory::dims strides = {d.stride_h, d.stride_w};
    const memory::dims dil = {d.dilation_h - 1, d.dilation_w - 1};  // oneDNN counts gaps
    const memory::dims pad_l = {d.pad_top, d.pad_left}, pad_r = {d.pad_bottom, d.pad_right};
    user_src_md_ = memory::desc(src, dt::f32, tag::nchw);
    user_dst_md_ = memory::desc(dst, dt::f32, tag::nchw);
    const auto user_wei_md = memory::desc(wei, dt::f32, d.groups == 1 ? tag::oihw : tag::goihw);
    const auto any_src = memory::desc(src, dt::f32, tag::any);
    const auto any_dst = memory::desc(dst, dt::f32, tag::any);
    const auto any_wei = memory::desc(wei, dt::f32, tag::any);
    primitive_attr attr;
    if (d.relu) {
      post_ops ops;
      ops.append_eltwise(1.0f, algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    auto cd = d.has_bias ? convolution_forward::desc(prop_kind::forward_inference, alg, any_src,
                                                     any_wei, memory::desc({d.k}, dt::f32, tag::x),
                                                     any_dst, strides, dil, pad_l, pad_r)
                         : convolution_forward::desc(prop_kind::forward_inference, alg, any_src,
                                                     any_wei, any_dst, strides, dil, pad_l, pad_r);
    pd_ = convolution_forward::primitive_desc(cd, attr, eng_);
    conv_ = convolution_forward(pd_);
    impl_ = pd_.impl_info_str();

    // Weights: reordered once, outside the timed region.
    memory user_w(user_wei_md, eng_, const_cast<float*>(w.data()));
    weights_ = memory(pd_.weights_desc(), eng_);
    if (pd_.weights_desc() != user_wei_md) {
      reorder(user_w, weights_).execute(stream_, user_w, weights_);
    } else {
      weights_ = user_w;
    }
    if (d.has_bias) bias_ = memory(pd_.bias_desc(), eng_, const_cast<float*>(bias.data()));
    src_reorder_ = pd_.src_desc() != user_src_md_;
    dst_reorder_ = pd_.dst_desc() != user_dst_md_;
    src_ = memory(pd_.src_desc(), eng_);
    dst_ = memory(pd_.dst_desc(), eng_);
    if (src_reorder_) to_blocked_ = reorder(memory(user_src_md_, eng_, nullptr), src_);
    if (dst_reorder_) to_nchw_ = reorder(dst_, memory(user_dst_md_, eng_, nullptr));
    stream_.wait();
  }

  // Resident mode: x goes into the primitive's source memory once (untimed).
  void set_resident_input(const float* x) {
    dnnl::memory ux(user_src_md_, eng_, const_cast<float*>(x));
    dnnl::reorder(ux, src_).execute(stream_, ux, src_);
    stream_.wait();
  }
  // The convolution alone, between memories in its own layouts.
  void run_resident() {
    std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, dst_}};
    if (bias_) args.insert({DNNL_ARG_BIAS, bias_});
    conv_.execute(stream_, args);
    stream_.wait();
  }
  // The resident output as NCHW (untimed, for the comparison).
  void resident_output(float* y) {
    dnnl::memory uy(user_dst_md_, eng_, y);
    dnnl::reorder(dst_, uy).execute(stream_, dst_, uy);
    stream_.wait();
  }

  // x (NCHW) in, y (NCHW) out; every reorder of activations included.
  void run(const float* x, float* y) {
    using namespace dnnl;
    memory ux(user_src_md_, eng_, const_cast<float*>(x));
    memory uy(user_dst_md_, eng_, y);
    const memory& s = src_reorder_ ? src_ : ux;
    const memory& o = dst_reorder_ ? dst_ : uy;
    if (src_reorder_) to_blocked_.execute(stream_, ux, src_);
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, o}};
    if (bias_) args.insert({DNNL_ARG_BIAS, bias_});
    conv_.execute(stream_, args);
    if (dst_reorder_) to_nchw_.execute(stream_, dst_, uy);
    stream_.wait();
  }

  const std::string& impl() const { return impl_; }
  std::string layouts() const {
    return std::string(src_reorder_ ? "x reordered" : "x nchw") + ", " +
           (dst_reorder_ ? "y reordered" : "y nchw");
  }

 private:
  dnnl::engine& eng_;
  dnnl::stream stream_;
  dnnl::convolution_forward::primitive_desc pd_;
  dnnl::convolution_forward conv_;
  dnnl::memory::desc user_src_md_, user_dst_md_;
  dnnl::memory weights_, bias_, src_, dst_;
  dnnl::reorder to_blocked_, to_nchw_;
  bool src_reorder_ = false, dst_reorder_ = false;
  std::string impl_;
};

struct Row {
  std::string name;
  int64_t count = 1;
  double flops = 0;
  double sparkle_ms = 0, onednn_ms = 0;  // onednn_ms: the faster of direct and auto
  double direct_ms = 0, auto_ms = 0;
  std::string best_alg;  // "direct" or "auto"
  double max_rel_diff = 0;
  std::string kernel, onednn_impl;
};

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// The 1-minute load average: other processes on the machine skew both
// libraries' timings (OpenMP's much more, when a core is taken away).
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string first;
  in >> first;
  return first.empty() ? "?" : first;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  const int threads = tbb::info::default_concurrency();
  // Debian's oneDNN uses OpenMP, which reads OMP_NUM_THREADS when it loads:
  // re-run this program with it set to TBB's count unless it already is.
  const std::string want = std::to_string(threads);
  const char* omp = std::getenv("OMP_NUM_THREADS");
  if (omp == nullptr || want != omp) {
    setenv("OMP_NUM_THREADS", want.c_str(), 1);
    execv("/proc/self/exe", argv);
    std::perror("re-exec with OMP_NUM_THREADS");
    return 1;
  }

  try {
    const auto layers = sparkle::read_shapes_file(opt.shapes, opt.batch);
    const std::string load_before = load_average();
    sparkle::Engine engine;
    std::string isa = "?";
    for (const auto& dev : engine.devices())
      if (dev.name == "cpu:0")
        for (const auto& [k, v] : dev.properties)
          if (k == "kernel_isa") isa = v.substr(0, v.find(' '));
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    const auto* ver = dnnl::version();

    std::fprintf(stderr, "measuring the FMA peak on %d threads...\n", threads);
    auto peaks = sparkle::bench::measure_fma_peaks(threads, 0.3, opt.cpu_timer);
    for (int trial = 0; trial < 2; ++trial) {  // best of 3: the machine may be shared
      auto again = sparkle::bench::measure_fma_peaks(threads, 0.3, opt.cpu_timer);
      for (size_t i = 0; i < peaks.size(); ++i)
        peaks[i].gflops = std::max(peaks[i].gflops, again[i].gflops);
    }
    double sparkle_peak = 0, best_peak = 0;
    for (const auto& p : peaks) {
      if (p.isa == isa) sparkle_peak = p.gflops;
      best_peak = std::max(best_peak, p.gflops);
    }
    if (sparkle_peak == 0) sparkle_peak = best_peak;

    std::mt19937 rng(12345);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<Row> rows;
    for (size_t li = 0; li < layers.size(); ++li) {
      const auto& L = layers[li];
      const auto& d = L.desc;
      std::fprintf(stderr, "[%zu/%zu] %s %s\n", li + 1, layers.size(), L.name.c_str(),
                   d.to_string().c_str());
      std::vector<float> x(static_cast<size_t>(d.input_elements()));
      std::vector<float> w(static_cast<size_t>(d.weight_elements()));
      std::vector<float> b(static_cast<size_t>(d.bias_elements()));
      for (auto* v : {&x, &w, &b})
        for (auto& e : *v) e = dist(rng);
      std::vector<float> ys(static_cast<size_t>(d.output_elements()), NAN);
      std::vector<float> yd(ys.size(), NAN);

      OnednnConv direct(eng, d, w, b, dnnl::algorithm::convolution_direct);
      OnednnConv autoc(eng, d, w, b, dnnl::algorithm::convolution_auto);
      sparkle::RunOptions ro;
      ro.device = "cpu";
      ro.constant_weights = opt.constant_weights;
      Row row;
      row.name = L.name;
      row.count = L.count;
      row.flops = d.flops();
      // Resident: sparkle's CPU tensors (blocked activations) and oneDNN's
      // memories in its chosen layouts, filled once, untimed.
      sparkle::Tensor tx, tw, tb, ty;
      if (opt.resident) {
        tx = engine.tensor({d.n, d.c, d.h, d.w}, x, "cpu");
        tw = engine.tensor({d.k, d.c / d.groups, d.r, d.s}, w, "cpu");
        if (d.has_bias) tb = engine.tensor({d.k}, b, "cpu");
        ty = engine.tensor({d.n, d.k, d.out_h(), d.out_w()}, "cpu");
        direct.set_resident_input(x.data());
        autoc.set_resident_input(x.data());
      }
      auto sparkle_call = [&] {
        return opt.resident ? engine.conv2d(d, tx, tw, tb, ty, ro)
                            : engine.conv2d(d, x, w, b, ys, ro);
      };
      auto onednn_call = [&](OnednnConv& c) {
        if (opt.resident) {
          c.run_resident();
        } else {
          c.run(x.data(), yd.data());
        }
      };
      // Each library runs its repeats back to back, as an application calling
      // it in a loop would; a pause in between lets the other library's
      // worker threads (TBB, OpenMP) stop spinning first, since on few cores
      // a spinning idle pool steals time from the one that works. The
      // contenders take turns for --rounds rounds (the order rotates), so a
      // slow spell of a shared machine hits all alike. Warm-up runs (plans,
      // packing, sparkle's kernel measurement, page faults, caches, clocks)
      // are not timed.
      std::vector<double> ts, tdirect, tauto;
      auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(10)); };
      // Untimed runs for at least 100 ms (and 2 runs) before each side's
      // first round, 20 ms (and 1 run) before later rounds.
      auto warm_up = [](auto&& fn, double ms, int runs) {
        const auto t0 = Clock::now();
        for (int i = 0; i < runs || ms_since(t0) < ms; ++i) fn();
      };
      auto timed = [&](auto&& fn, std::vector<double>& out, int round) {
        pause();
        warm_up(fn, round == 0 ? 100.0 : 20.0, round == 0 ? 2 : 1);
        for (int r = 0; r < opt.repeat; ++r) {
          const auto t0 = Clock::now();
          const double c0 = opt.cpu_timer ? process_cpu_ms() : 0.0;
          fn();
          out.push_back(opt.cpu_timer ? process_cpu_ms() - c0 : ms_since(t0));
        }
      };
      // oneDNN's auto may resolve to the same implementation as direct; it
      // is timed anyway (its own primitive), so "best" is a fair minimum.
      row.kernel = sparkle_call().kernel;
      for (int round = 0; round < opt.rounds; ++round) {
        auto run_s = [&] { timed(sparkle_call, ts, round); };
        auto run_d = [&] { timed([&] { onednn_call(direct); }, tdirect, round); };
        auto run_a = [&] { timed([&] { onednn_call(autoc); }, tauto, round); };
        switch (round % 3) {
          case 0:
            run_s(), run_d(), run_a();
            break;
          case 1:
            run_d(), run_a(), run_s();
            break;
          default:
            run_a(), run_s(), run_d();
            break;
        }
      }
      row.sparkle_ms = median(ts);
      row.direct_ms = median(tdirect);
      row.auto_ms = median(tauto);
      const bool auto_wins = row.auto_ms < row.direct_ms;
      row.onednn_ms = auto_wins ? row.auto_ms : row.direct_ms;
      row.best_alg = auto_wins ? "auto" : "direct";
      OnednnConv& best = auto_wins ? autoc : direct;
      row.onednn_impl =
          "direct: " + direct.impl() + ", auto: " + autoc.impl() + " (" + best.layouts() + ")";
      if (opt.resident) {
        ty.download(ys);
        best.resident_output(yd.data());
      } else {
        onednn_call(best);
      }
      double max_diff = 0, max_mag = 0;
      for (size_t i = 0; i < ys.size(); ++i) {
        const double diff = std::fabs(static_cast<double>(ys[i]) - yd[i]);
        max_diff = std::isnan(diff) ? INFINITY : std::max(max_diff, diff);
        max_mag = std::max(max_mag, std::fabs(static_cast<double>(yd[i])));
      }
      row.max_rel_diff = max_mag > 0 ? max_diff / max_mag : max_diff;
      rows.push_back(row);
    }

    // Report.
    std::printf(
        "sparkle %s vs oneDNN %d.%d.%d (%s), %s, batch %lld, %d threads "
        "(TBB default; OMP_NUM_THREADS=%d for oneDNN), median of %d rounds x %d runs; "
        "sparkle weights: %s; mode %s; timer %s\n",
        sparkle::version(), ver->major, ver->minor, ver->patch, ver->hash, now_utc().c_str(),
        static_cast<long long>(opt.batch), threads, threads, opt.rounds, opt.repeat,
        opt.constant_weights ? "constant (packed once, as oneDNN's)" : "per call",
        opt.resident ? "resident (each library's layouts kept, no reorders timed)"
                     : "host (NCHW in and out, reorders timed)",
        opt.cpu_timer ? "process CPU time" : "wall");
    std::printf("cpu: %s; load average %s before, %s after\n", cpu_model().c_str(),
                load_before.c_str(), load_average().c_str());
    for (const auto& p : peaks)
      std::printf("measured FP32 FMA peak, %-8s %2d threads: %8.1f GFLOPS\n", p.isa.c_str(),
                  p.threads, p.gflops);
    std::printf(
        "sparkle kernel ISA: %s (peak %.1f GFLOPS); oneDNN figures use the best peak "
        "%.1f GFLOPS\n\n",
        isa.c_str(), sparkle_peak, best_peak);
    std::printf("%-10s %5s %10s %8s %6s %10s %10s %8s %6s %7s %9s  %s | %s\n", "layer", "count",
                "sparkle", "GFLOPS", "%peak", "dnn direct", "dnn auto", "GFLOPS", "%peak", "ratio",
                "max rel", "oneDNN impl", "sparkle kernel");
    double tot_s = 0, tot_d = 0, tot_f = 0, worst_ratio = INFINITY, worst_diff = 0;
    std::string worst_layer;
    for (const auto& r : rows) {
      const double gs = r.flops / r.sparkle_ms * 1e-6, gd = r.flops / r.onednn_ms * 1e-6;
      const double ratio = r.onednn_ms / r.sparkle_ms;
      std::printf(
          "%-10s %5lld %8.3fms %8.1f %5.1f%% %8.3fms%s %8.3fms%s %8.1f %5.1f%% %7.3f %9.2e  %s | "
          "%s\n",
          r.name.c_str(), static_cast<long long>(r.count), r.sparkle_ms, gs,
          100 * gs / sparkle_peak, r.direct_ms, r.best_alg == "direct" ? "*" : " ", r.auto_ms,
          r.best_alg == "auto" ? "*" : " ", gd, 100 * gd / best_peak, ratio, r.max_rel_diff,
          r.onednn_impl.c_str(), r.kernel.c_str());
      tot_s += r.sparkle_ms * static_cast<double>(r.count);
      tot_d += r.onednn_ms * static_cast<double>(r.count);
      tot_f += r.flops * static_cast<double>(r.count);
      if (ratio < worst_ratio) worst_ratio = ratio, worst_layer = r.name;
      worst_diff = std::max(worst_diff, r.max_rel_diff);
    }
    const double gs = tot_f / tot_s * 1e-6, gd = tot_f / tot_d * 1e-6;
    double tot_direct = 0, tot_auto = 0;
    for (const auto& r : rows) {
      tot_direct += r.direct_ms * static_cast<double>(r.count);
      tot_auto += r.auto_ms * static_cast<double>(r.count);
    }
    std::printf("oneDNN totals: convolution_direct %.3f ms, convolution_auto %.3f ms\n", tot_direct,
                tot_auto);
    std::printf(
        "\ntotal (sum of median x count): sparkle %.3f ms (%.1f GFLOPS, %.1f%% of peak), "
        "oneDNN best of direct and auto per layer %.3f ms (%.1f GFLOPS, %.1f%% of peak)\n",
        tot_s, gs, 100 * gs / sparkle_peak, tot_d, gd, 100 * gd / best_peak);
    std::printf("total ratio oneDNN/sparkle: %.3f; worst layer %s at %.3f; max rel diff %.2e\n",
                tot_d / tot_s, worst_layer.c_str(), worst_ratio, worst_diff);
    const bool pass = tot_s <= tot_d && worst_ratio >= 0.8 && worst_diff < 1e-4;
    std::printf("acceptance (total <= oneDNN's best, every layer >= 0.8x, outputs agree): %s\n",
                pass ? "MET" : "NOT MET");

    if (!opt.json.empty()) {
      std::ofstream js(opt.json);
      js << "{\n  \"date\": \"" << now_utc() << "\",\n  \"cpu\": \"" << json_escape(cpu_model())
         << "\",\n  \"load_average_before\": \"" << load_before << "\",\n  \"threads\": " << threads
         << ",\n  \"batch\": " << opt.batch << ",\n  \"repeat\": " << opt.repeat
         << ",\n  \"rounds\": " << opt.rounds << ",\n  \"sparkle_weights\": \""
         << (opt.constant_weights ? "constant" : "per-call") << "\""
         << ",\n  \"mode\": \"" << (opt.resident ? "resident" : "host") << "\""
         << ",\n  \"timer\": \"" << (opt.cpu_timer ? "cpu" : "wall") << "\""
         << ",\n  \"shapes\": \"" << json_escape(opt.shapes) << "\",\n  \"onednn_version\": \""
         << ver->major << "." << ver->minor << "." << ver->patch << "\",\n  \"sparkle_isa\": \""
         << isa << "\",\n  \"peaks_gflops\": {";
      for (size_t i = 0; i < peaks.size(); ++i)
        js << (i ? ", " : "") << "\"" << peaks[i].isa << "\": " << peaks[i].gflops;
      js << "},\n  \"layers\": [\n";
      for (size_t i = 0; i < rows.size(); ++i) {
        const auto& r = rows[i];
        js << "    {\"name\": \"" << r.name << "\", \"count\": " << r.count
           << ", \"gflop\": " << r.flops * 1e-9 << ", \"sparkle_ms\": " << r.sparkle_ms
           << ", \"onednn_ms\": " << r.onednn_ms << ", \"onednn_direct_ms\": " << r.direct_ms
           << ", \"onednn_auto_ms\": " << r.auto_ms << ", \"onednn_best\": \"" << r.best_alg
           << "\", \"ratio\": " << r.onednn_ms / r.sparkle_ms
           << ", \"max_rel_diff\": " << r.max_rel_diff << ", \"sparkle_kernel\": \""
           << json_escape(r.kernel) << "\", \"onednn_impl\": \"" << json_escape(r.onednn_impl)
           << "\"}" << (i + 1 < rows.size() ? "," : "") << "\n";
      }
      js << "  ],\n  \"total\": {\"sparkle_ms\": " << tot_s << ", \"onednn_ms\": " << tot_d
         << ", \"onednn_direct_ms\": " << tot_direct << ", \"onednn_auto_ms\": " << tot_auto
         << ", \"ratio\": " << tot_d / tot_s << ", \"worst_layer\": \"" << worst_layer
         << "\", \"worst_ratio\": " << worst_ratio
         << ", \"acceptance\": " << (pass ? "true" : "false") << "}\n}\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sparkle-bench-onednn: %s\n", e.what());
    return 2;
  }
}
