// Helpers shared by the sparkle-run subcommands.
#include "cli.hpp"

#include <tbb/global_control.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>

namespace sparkle::cli {

namespace po = boost::program_options;

po::variables_map parse_options(int argc, char** argv, const po::options_description& options,
                                const std::vector<std::string>& positional) {
  // Every positional token goes somewhere: the named positional options
  // first, then "unexpected", which is refused below. Without this, Boost
  // drops tokens that no option claims.
  po::options_description all;
  all.add(options);
  po::options_description hidden;
  hidden.add_options()("unexpected", po::value<std::vector<std::string>>(), "");
  all.add(hidden);
  po::positional_options_description pos;
  for (const auto& name : positional) pos.add(name.c_str(), 1);
  pos.add("unexpected", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
  po::notify(vm);
  if (vm.count("unexpected")) {
    const std::string& extra = vm["unexpected"].as<std::vector<std::string>>().front();
    // A number after an option's value is most likely a list written with
    // spaces ("--pad 0 1").
    const bool number =
        !extra.empty() && extra.find_first_not_of("0123456789,") == std::string::npos;
    throw UsageError("unexpected argument '" + printable(extra) + "'" +
                     (number ? " (an option takes one value; lists are comma-separated, e.g. "
                               "--pad 0,1)"
                             : ""));
  }
  return vm;
}

int64_t int_option(const po::variables_map& vm, const std::string& name) {
  return parse_int_list(vm[name].as<std::string>(), name, {1})[0];
}

Json json_text(const std::string& s) { return valid_utf8(s); }

std::string json_string(const std::string& s) {
  return json_text(s).dump(-1, ' ', false, Json::error_handler_t::strict);
}

std::string json_number(double v) { return std::isfinite(v) ? Json(v).dump() : "null"; }

void print_json(const Json& j) {
  // strict: every string went through json_text, so a throw here is a bug.
  std::cout << j.dump(-1, ' ', false, Json::error_handler_t::strict) << "\n";
}

std::vector<float> random_tensor(int64_t count, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(count));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto& x : v) x = dist(rng);
  return v;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t m = values.size() / 2;
  return values.size() % 2 ? values[m] : 0.5 * (values[m - 1] + values[m]);
}

Timing time_conv2d(Engine& engine, const Conv2dDesc& d, const std::vector<float>& x,
                   const std::vector<float>& w, const std::vector<float>& bias,
                   std::vector<float>& y, const RunOptions& run, int64_t warmup, int64_t repeat,
                   bool wall_only) {
  Timing t;
  for (int64_t i = 0; i < warmup; ++i) t.last = engine.conv2d(d, x, w, bias, y, run);
  std::vector<double> device_ms, wall_ms;
  for (int64_t i = 0; i < repeat; ++i) {
    t.last = engine.conv2d(d, x, w, bias, y, run);
    if (t.last.device_ms > 0) device_ms.push_back(t.last.device_ms);
    wall_ms.push_back(t.last.wall_ms);
  }
  const bool every_run_timed = !device_ms.empty() && device_ms.size() == wall_ms.size();
  t.device_timed = !wall_only && every_run_timed;
  t.wall_ms = median(wall_ms);
  if (every_run_timed) t.kernel_ms = median(device_ms);
  t.ms = t.device_timed ? t.kernel_ms : t.wall_ms;
  const auto& used = t.device_timed ? device_ms : wall_ms;
  t.min_ms = *std::min_element(used.begin(), used.end());
  t.max_ms = *std::max_element(used.begin(), used.end());
  return t;
}

void check_fits_in_memory(const std::string& name, int64_t elements) {
  check_host_budget(name, float_bytes(elements));
}

std::shared_ptr<void> limit_threads(const po::variables_map& vm) {
  if (!vm.count("threads")) return nullptr;
  const int64_t n = int_option(vm, "threads");
  if (n < 1 || n > 65536) throw UsageError("threads=" + std::to_string(n) + " must be 1 to 65536");
  return std::make_shared<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                               static_cast<size_t>(n));
}

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

Progress::Progress(size_t total, double total_work, bool quiet)
    : total_(total),
      total_work_(total_work),
      quiet_(quiet),
      terminal_(::isatty(STDERR_FILENO) != 0),
      start_s_(now_s()) {}

Progress::~Progress() {
  if (open_line_) std::fputs("\n", stderr);
}

void Progress::done(size_t index, double work, const std::string& line) {
  if (quiet_) return;
  work_ += work;
  const std::string text =
      "[" + std::to_string(index + 1) + "/" + std::to_string(total_) + "] " + printable(line);
  if (!terminal_) {
    std::fprintf(stderr, "%s\n", text.c_str());
    return;
  }
  // Time left: the rate so far applied to the work left.
  const double elapsed = now_s() - start_s_;
  char eta[48] = "";
  if (index + 1 < total_ && work_ > 0 && total_work_ > work_)
    std::snprintf(eta, sizeof eta, "  (about %.0f s left)",
                  elapsed * (total_work_ - work_) / work_);
  // \r and erase-to-end-of-line: one line, rewritten in place.
  std::fprintf(stderr, "\r\033[K%s%s", text.c_str(), eta);
  std::fflush(stderr);
  open_line_ = true;
}

}  // namespace sparkle::cli
