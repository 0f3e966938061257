// The measured tuner (include/sparkle/tune.hpp): ranks a device's variants
// with the occupancy model, plans the survivors in parallel (compiles run
// concurrently where the driver allows), times each over back-to-back runs
// after a busy warm-up, checks its output against a float64 reference, and
// records the fastest.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <sparkle/tune.hpp>
#include <thread>

#include "../plugins/common/occupancy_model.hpp"
#include "log/log.hpp"
#include "registry/plugin_registry.hpp"
#include "tune/tuned_plan.hpp"
#include "tune/tuning_store.hpp"

namespace sparkle {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double ms_since(Clock::time_point t0) { return seconds_since(t0) * 1000.0; }

double median_of(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Owns a plugin object and destroys it through the plugin's own function.
template <class H>
class Owned {
 public:
  Owned() = default;
  Owned(H h, void (*destroy)(H)) : h_(h), destroy_(destroy) {}
  Owned(Owned&& o) noexcept : h_(o.h_), destroy_(o.destroy_) { o.h_ = nullptr; }
  Owned& operator=(Owned&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = o.h_;
      destroy_ = o.destroy_;
      o.h_ = nullptr;
    }
    return *this;
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() { reset(); }
  void reset() {
    if (h_ != nullptr && destroy_ != nullptr) destroy_(h_);
    h_ = nullptr;
  }
  H get() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }

 private:
  H h_ = nullptr;
  void (*destroy_)(H) = nullptr;
};

int64_t property_int(const DeviceProperties& p, const char* key) {
  for (const auto& [k, v] : p.properties) {
    if (k == key) {
      char* end = nullptr;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      return end != v.c_str() && n > 0 ? n : 0;
    }
  }
  return 0;
}

// What the device says about its compute units (device properties; the
// OpenGL backend reads them from the driver).
gpu::ComputeUnits units_of(const DeviceProperties& p) {
  gpu::ComputeUnits u;
  u.count = property_int(p, "compute_units");
  u.threads_per_cu = property_int(p, "threads_per_compute_unit");
  u.registers_per_cu = property_int(p, "registers_per_compute_unit");
  u.groups_per_cu = property_int(p, "groups_per_compute_unit");
  return u;
}

// Device buffers with fresh random data for one op, and the float64
// reference of a sample of its outputs.
struct Bench {
  const sparkle_plugin* api = nullptr;
  sparkle_conv2d_desc d{};
  std::vector<float> x, w, b, poison, y;
  Owned<sparkle_buffer> bx, bw, bb, by;
  std::vector<int64_t> sample_index;
  std::vector<double> sample_want, sample_magnitude;
};

void check_status(sparkle_status st, const std::string& what) {
  registry::throw_if_error(st, what);
}

Owned<sparkle_buffer> device_buffer(const sparkle_plugin* api, sparkle_device dev,
                                    const std::vector<float>& data, const char* what) {
  sparkle_buffer b = nullptr;
  check_status(api->buffer_create(dev, std::max<size_t>(data.size(), 1) * 4, &b),
               std::string("tune: buffer for ") + what);
  Owned<sparkle_buffer> owned(b, api->buffer_destroy);
  if (!data.empty())
    check_status(api->buffer_upload(b, 0, data.data(), data.size() * 4),
                 std::string("tune: upload ") + what);
  return owned;
}

// One output of the convolution in float64, and |bias| + sum |x * w|.
void reference_at(const Bench& bench, int64_t index, double* want, double* magnitude) {
  const auto& d = bench.d;
  const int64_t ow = index % d.out_w;
  int64_t t = index / d.out_w;
  const int64_t oh = t % d.out_h;
  t /= d.out_h;
  const int64_t k = t % d.k;
  const int64_t n = t / d.k;
  const int64_t cpg = d.c / d.groups, kpg = d.k / d.groups, g = k / kpg;
  double sum = d.has_bias ? bench.b[static_cast<size_t>(k)] : 0.0;
  double mag = std::fabs(sum);
  for (int64_t c = 0; c < cpg; ++c) {
    for (int64_t r = 0; r < d.r; ++r) {
      const int64_t iy = oh * d.stride_h - d.pad_top + r * d.dilation_h;
      if (iy < 0 || iy >= d.h) continue;
      for (int64_t s = 0; s < d.s; ++s) {
        const int64_t ix = ow * d.stride_w - d.pad_left + s * d.dilation_w;
        if (ix < 0 || ix >= d.w) continue;
        const double xv =
            bench.x[static_cast<size_t>(((n * d.c + g * cpg + c) * d.h + iy) * d.w + ix)];
        const double wv = bench.w[static_cast<size_t>(((k * cpg + c) * d.r + r) * d.s + s)];
        sum += xv * wv;
        mag += std::fabs(xv * wv);
      }
    }
  }
  if (d.relu && sum < 0) sum = 0;
  *want = sum;
  *magnitude = mag;
}

std::unique_ptr<Bench> make_bench(const sparkle_plugin* api, sparkle_device dev,
                                  const sparkle_conv2d_desc& d, const TuneOptions& o) {
  auto bench = std::make_unique<Bench>();
  bench->api = api;
  bench->d = d;
  std::mt19937_64 rng(o.seed * 0x9e3779b97f4a7c15ull +
                      std::hash<std::string>{}(tune::op_signature(d)));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  auto fill = [&](std::vector<float>& v, int64_t n) {
    v.resize(static_cast<size_t>(n));
    for (auto& e : v) e = dist(rng);
  };
  const int64_t y_elems = d.n * d.k * d.out_h * d.out_w;
  fill(bench->x, d.n * d.c * d.h * d.w);
  fill(bench->w, d.k * (d.c / d.groups) * d.r * d.s);
  fill(bench->b, d.has_bias ? d.k : 0);
  bench->poison.assign(static_cast<size_t>(y_elems), std::numeric_limits<float>::quiet_NaN());
  bench->y.resize(static_cast<size_t>(y_elems));
  bench->bx = device_buffer(api, dev, bench->x, "x");
  bench->bw = device_buffer(api, dev, bench->w, "w");
  if (d.has_bias) bench->bb = device_buffer(api, dev, bench->b, "bias");
  bench->by = device_buffer(api, dev, bench->poison, "y");
  // The first and last outputs (tile edges) plus a uniform sample.
  std::uniform_int_distribution<int64_t> pick(0, y_elems - 1);
  const int samples = std::max(o.check_samples, 2);
  bench->sample_index.push_back(0);
  bench->sample_index.push_back(y_elems - 1);
  for (int i = 2; i < samples && i < y_elems; ++i) bench->sample_index.push_back(pick(rng));
  for (int64_t idx : bench->sample_index) {
    double want = 0, mag = 0;
    reference_at(*bench, idx, &want, &mag);
    bench->sample_want.push_back(want);
    bench->sample_magnitude.push_back(mag);
  }
  return bench;
}

struct RunStats {
  std::vector<double> ms;
  bool device_timer = false;
  double max_rel_error = -1;
  bool correct = false;
};

sparkle_fence enqueue(Bench& b, sparkle_plan plan) {
  sparkle_fence f = nullptr;
  check_status(b.api->enqueue_conv2d(plan, b.bx.get(), b.bw.get(), b.bb.get(), b.by.get(), &f),
               "tune: enqueue");
  return f;
}

// One checked run: y poisoned, the plan run once, the sampled outputs
// compared with the reference. Returns that run's time (device or wall).
double checked_run(Bench& b, sparkle_plan plan, double max_rel_error, RunStats* stats) {
  const auto* api = b.api;
  check_status(api->buffer_upload(b.by.get(), 0, b.poison.data(), b.poison.size() * 4),
               "tune: poison y");
  const auto t0 = Clock::now();
  Owned<sparkle_fence> f(enqueue(b, plan), api->fence_destroy);
  check_status(api->fence_wait(f.get()), "tune: run");
  const double wall = ms_since(t0);
  const int64_t ns = api->fence_elapsed_ns != nullptr ? api->fence_elapsed_ns(f.get()) : -1;
  check_status(api->buffer_download(b.by.get(), 0, b.y.data(), b.y.size() * 4), "tune: read y");
  double worst = 0;
  bool finite = true;
  for (size_t i = 0; i < b.sample_index.size(); ++i) {
    const double got = b.y[static_cast<size_t>(b.sample_index[i])];
    if (!std::isfinite(got)) {
      finite = false;
      continue;
    }
    const double err = std::fabs(got - b.sample_want[i]) / std::max(b.sample_magnitude[i], 1e-30);
    worst = std::max(worst, err);
  }
  stats->max_rel_error = finite ? worst : std::numeric_limits<double>::infinity();
  stats->correct = finite && worst <= max_rel_error;
  stats->device_timer = ns > 0;
  return ns > 0 ? static_cast<double>(ns) * 1e-6 : wall;
}

// Untimed back-to-back runs until busy_ms of device time has passed (the
// GPU's clocks rise under load and fall within moments of idling; a run
// timed right after an idle gap would count the slow clock), then `repeat`
// timed runs enqueued back to back, each with its own fence and device
// timer. Warm-up goes in chunks of about a quarter of busy_ms, so the
// device never waits for the host in between. Without a device timer each
// timed run is waited for and wall-timed.
void timed_runs(Bench& b, sparkle_plan plan, double first_ms, bool device_timer, int repeat,
                double busy_ms, RunStats* stats) {
  const auto* api = b.api;
  double busy = 0;
  for (int chunks = 0; busy_ms > 0 && busy < busy_ms && chunks < 64; ++chunks) {
    const int n = static_cast<int>(
        std::clamp(std::ceil(0.25 * busy_ms / std::max(first_ms, 1e-3)), 1.0, 1000.0));
    const auto t0 = Clock::now();
    std::vector<Owned<sparkle_fence>> fences;
    fences.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) fences.emplace_back(enqueue(b, plan), api->fence_destroy);
    double chunk = 0;
    for (auto& f : fences) {
      check_status(api->fence_wait(f.get()), "tune: warm-up");
      const int64_t ns = device_timer ? api->fence_elapsed_ns(f.get()) : -1;
      chunk += ns > 0 ? static_cast<double>(ns) * 1e-6 : 0;
    }
    busy += device_timer ? chunk : ms_since(t0);
  }
  if (device_timer) {
    std::vector<Owned<sparkle_fence>> fences;
    for (int i = 0; i < repeat; ++i) fences.emplace_back(enqueue(b, plan), api->fence_destroy);
    for (auto& f : fences) {
      check_status(api->fence_wait(f.get()), "tune: timed run");
      const int64_t ns = api->fence_elapsed_ns(f.get());
      if (ns > 0) stats->ms.push_back(static_cast<double>(ns) * 1e-6);
    }
  } else {
    for (int i = 0; i < repeat; ++i) {
      const auto t0 = Clock::now();
      Owned<sparkle_fence> f(enqueue(b, plan), api->fence_destroy);
      check_status(api->fence_wait(f.get()), "tune: timed run");
      stats->ms.push_back(ms_since(t0));
    }
  }
}

void fill_stats(VariantTiming* v) {
  if (v->samples_ms.empty()) return;
  v->median_ms = median_of(v->samples_ms);
  v->min_ms = *std::min_element(v->samples_ms.begin(), v->samples_ms.end());
  v->max_ms = *std::max_element(v->samples_ms.begin(), v->samples_ms.end());
}

}  // namespace

struct Tuner::Impl {
  explicit Impl(const EngineOptions& options) : registry(options) {
    for (const auto& plugin : registry.plugins()) {
      const size_t count = plugin.api->device_count();
      for (size_t i = 0; i < count; ++i) {
        auto props = registry::describe_device(plugin.api, i, nullptr);
        if (!props) continue;  // the Engine warns about it; tuning skips it
        auto d = std::make_unique<Device>();
        d->api = plugin.api;
        d->props = std::move(*props);
        devices.push_back(std::move(d));
      }
    }
  }
  ~Impl() {
    for (auto& d : devices)
      if (d->handle != nullptr) d->api->close_device(d->handle);
    devices.clear();
  }

  struct Device {
    const sparkle_plugin* api = nullptr;
    DeviceProperties props;
    sparkle_device handle = nullptr;
    std::mutex mutex;  // one tuning run at a time per device: timings must not overlap
  };

  Device& resolve(const std::string& want_in) {
    std::string want = want_in;
    if (want.empty()) {
      for (auto& d : devices)
        if (tune::has_variants(d->api)) return open(*d);
      if (!devices.empty()) return open(*devices.front());
      throw Error(ErrorCode::not_found, "no devices to tune");
    }
    std::string backend = want;
    size_t index = 0;
    if (auto colon = want.find(':'); colon != std::string::npos) {
      backend = want.substr(0, colon);
      const std::string idx = want.substr(colon + 1);
      if (idx.empty() || idx.size() > 6 || !std::all_of(idx.begin(), idx.end(), ::isdigit))
        throw Error(ErrorCode::not_found,
                    "device '" + want + "': index '" + idx + "' is not a number");
      index = std::stoul(idx);
    }
    if (backend == "auto")
      throw Error(ErrorCode::invalid_argument,
                  "tuning measures one device: name it (e.g. opengl), not auto");
    std::string names;
    for (auto& d : devices) {
      if (d->props.backend == backend && d->props.index == index) return open(*d);
      names += (names.empty() ? "" : ", ") + d->props.name;
    }
    throw Error(ErrorCode::not_found,
                "unknown device '" + want + "'; available: " + (names.empty() ? "none" : names));
  }

  Device& open(Device& d) {
    std::lock_guard<std::mutex> lock(open_mutex);
    if (d.handle == nullptr)
      check_status(d.api->open_device(d.props.index, &d.handle), d.props.name + ": open");
    return d;
  }

  registry::PluginRegistry registry;
  std::vector<std::unique_ptr<Device>> devices;
  std::mutex open_mutex;
};

Tuner::Tuner() : Tuner(EngineOptions{}) {}
Tuner::Tuner(const EngineOptions& options) : impl_(std::make_unique<Impl>(options)) {}
Tuner::~Tuner() = default;

std::vector<DeviceProperties> Tuner::devices() const {
  std::vector<DeviceProperties> out;
  for (const auto& d : impl_->devices) out.push_back(d->props);
  return out;
}

namespace {

// The variants as the plugin describes them, ranked by the model.
std::vector<VariantTiming> list_and_rank(const sparkle_plugin* api, sparkle_device dev,
                                         const sparkle_conv2d_desc& d,
                                         const gpu::ComputeUnits& units) {
  std::vector<VariantTiming> out;
  if (!tune::has_variants(api)) return out;
  const size_t count = api->conv2d_variant_count(dev, &d);
  std::vector<double> cost;
  for (size_t i = 0; i < count; ++i) {
    sparkle_variant_info info{};
    info.struct_size = sizeof info;
    check_status(api->conv2d_variant_info(dev, &d, i, &info), "tune: variant info");
    VariantTiming v;
    v.name = info.name != nullptr ? info.name : ("variant " + std::to_string(i));
    v.family = info.family != nullptr ? info.family : "";
    v.is_default = (info.flags & SPARKLE_VARIANT_DEFAULT) != 0;
    cost.push_back(gpu::predict(info, units).cost);
    out.push_back(std::move(v));
  }
  const double best = cost.empty() ? 1 : *std::min_element(cost.begin(), cost.end());
  for (size_t i = 0; i < out.size(); ++i) out[i].predicted = best > 0 ? cost[i] / best : 1;
  return out;
}

// The order in which variants are measured: the default first (the
// baseline the tuner has to beat), then the families taking turns, each in
// the model's order, so that an algorithm the model misjudges (Winograd's
// memory traffic, say) is still measured early. Variants predicted more
// than prune_factor slower than the best are dropped, except each family's
// best, which goes only when the whole family is predicted more than twice
// that slower (the naive kernel next to tiled ones).
std::vector<size_t> measurement_order(const std::vector<VariantTiming>& v, double prune_factor) {
  std::map<std::string, std::vector<size_t>> by_family;
  for (size_t i = 0; i < v.size(); ++i) by_family[v[i].family].push_back(i);
  std::vector<std::vector<size_t>> queues;
  for (auto& [family, idx] : by_family) {
    std::stable_sort(idx.begin(), idx.end(),
                     [&](size_t a, size_t b) { return v[a].predicted < v[b].predicted; });
    std::vector<size_t> kept;
    for (size_t k = 0; k < idx.size(); ++k) {
      const double p = v[idx[k]].predicted;
      if (prune_factor <= 0 || p <= prune_factor || (k == 0 && p <= 2 * prune_factor))
        kept.push_back(idx[k]);
    }
    if (!kept.empty()) queues.push_back(std::move(kept));
  }
  std::stable_sort(queues.begin(), queues.end(), [&](const auto& a, const auto& b) {
    return v[a.front()].predicted < v[b.front()].predicted;
  });
  std::vector<size_t> order;
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i].is_default) order.push_back(i);
  for (size_t round = 0;; ++round) {
    bool any = false;
    for (const auto& q : queues) {
      if (round >= q.size()) continue;
      any = true;
      if (std::find(order.begin(), order.end(), q[round]) == order.end()) order.push_back(q[round]);
    }
    if (!any) break;
  }
  return order;
}

}  // namespace

namespace {

// The device supports desc, or an error naming both.
void require_support(const sparkle_plugin* api, sparkle_device device, const std::string& name,
                     const Conv2dDesc& desc, const sparkle_conv2d_desc& cd) {
  if (sparkle_status st = api->supports_conv2d(device, &cd); st != nullptr)
    throw Error(ErrorCode::unsupported,
                name + " cannot run " + desc.to_string() + ": " + registry::take_message(st));
}

}  // namespace

TuneResult Tuner::tune(const Conv2dDesc& desc, const TuneOptions& o) {
  desc.validate();
  const auto start = Clock::now();
  Impl::Device& dev = impl_->resolve(o.device);
  std::lock_guard<std::mutex> lock(dev.mutex);
  const sparkle_plugin* api = dev.api;
  const sparkle_conv2d_desc cd = desc.to_c();
  require_support(api, dev.handle, dev.props.name, desc, cd);
  TuneResult result;
  result.device = dev.props.name;
  result.fingerprint = dev.props.fingerprint;
  result.op = tune::op_signature(cd);
  const std::string build = api->build_id != nullptr ? api->build_id : "";
  auto& store = tune::TuningStore::instance();

  std::vector<VariantTiming> variants = list_and_rank(api, dev.handle, cd, units_of(dev.props));
  for (const auto& v : variants)
    if (v.is_default) result.default_variant = v.name;

  if (!o.retune) {
    if (auto r = store.find(api->name, build, dev.props.fingerprint, result.op)) {
      const bool listed = std::any_of(variants.begin(), variants.end(),
                                      [&](const VariantTiming& v) { return v.name == r->winner; });
      if (listed || variants.empty()) {
        result.from_record = true;
        result.winner = r->winner;
        result.winner_ms = r->winner_ms;
        result.default_ms = r->default_ms;
        result.timer = r->timer;
        for (auto& v : variants) {
          for (const auto& t : r->timings) {
            if (t.variant != v.name) continue;
            v.measured = t.median_ms > 0 || !t.error.empty();
            v.samples_ms = t.samples_ms;
            v.median_ms = t.median_ms;
            v.min_ms = t.min_ms;
            v.max_ms = t.max_ms;
            v.plan_ms = t.plan_ms;
            v.max_rel_error = t.max_rel_error;
            v.error = t.error;
          }
        }
        result.variants = std::move(variants);
        result.seconds = seconds_since(start);
        return result;
      }
    }
  }

  auto bench = make_bench(api, dev.handle, cd, o);
  // A plugin without variants: its one plan is measured, so the record (and
  // the selector) still learn its time.
  const bool plain = variants.empty();
  if (plain) {
    VariantTiming v;
    v.is_default = true;
    v.family = "default";
    v.predicted = 1;
    variants.push_back(std::move(v));
  }
  std::vector<size_t> order = measurement_order(variants, o.prune_factor);
  if (o.max_candidates > 0 && order.size() > static_cast<size_t>(o.max_candidates))
    order.resize(static_cast<size_t>(o.max_candidates));

  // Plans are made in parallel batches (compiling dominates on GPUs), then
  // measured one at a time: the device runs nothing else meanwhile.
  const size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 8);
  struct Planned {
    size_t index;
    Owned<sparkle_plan> plan;
  };
  std::vector<Planned> keep;  // the best few, for round 2
  size_t measured = 0;
  bool device_timer = false;
  for (size_t next = 0; next < order.size();) {
    if (measured >= 2 && o.budget_s > 0 && seconds_since(start) > o.budget_s) break;
    // Under a budget the first batch is small: it always runs whole, and a
    // per-layer share of a suite's budget can be a few seconds.
    const size_t width = o.budget_s > 0 && next == 0 ? std::min<size_t>(threads, 4) : threads;
    const size_t batch = std::min(width, order.size() - next);
    std::vector<Owned<sparkle_plan>> plans(batch);
    std::vector<std::string> errors(batch);
    std::vector<double> plan_ms(batch, 0);
    auto make = [&](size_t j) {
      const size_t vi = order[next + j];
      const auto t0 = Clock::now();
      sparkle_plan p = nullptr;
      sparkle_status st = nullptr;
      if (plain) {
        st = api->plan_conv2d(dev.handle, &cd, &p);
      } else {
        // variants[vi] is the plugin's variant vi: the list is a function of
        // the descriptor and device, the same for every call in a process.
        st = api->plan_conv2d_variant(dev.handle, &cd, vi, &p);
      }
      plan_ms[j] = ms_since(t0);
      if (st != nullptr) errors[j] = registry::take_message(st);
      if (p != nullptr) plans[j] = Owned<sparkle_plan>(p, api->plan_destroy);
    };
    std::vector<std::thread> pool;
    for (size_t j = 1; j < batch; ++j) pool.emplace_back(make, j);
    make(0);
    for (auto& t : pool) t.join();

    for (size_t j = 0; j < batch; ++j) {
      const size_t vi = order[next + j];
      VariantTiming& v = variants[vi];
      v.measured = true;
      v.plan_ms = plan_ms[j];
      if (plain && plans[j])
        v.name = api->plan_kernel_name ? api->plan_kernel_name(plans[j].get()) : "default";
      if (!plans[j]) {
        v.error = errors[j].empty() ? "did not plan" : errors[j];
      } else {
        try {
          RunStats stats;
          const double first = checked_run(*bench, plans[j].get(), o.max_rel_error, &stats);
          v.max_rel_error = stats.max_rel_error;
          if (!stats.correct) {
            v.error = "wrong result: relative error " + std::to_string(stats.max_rel_error) +
                      " > " + std::to_string(o.max_rel_error);
          } else {
            device_timer = stats.device_timer;
            timed_runs(*bench, plans[j].get(), first, stats.device_timer, std::max(o.repeat, 1),
                       o.busy_ms, &stats);
            v.samples_ms = stats.ms;
            fill_stats(&v);
            keep.push_back({vi, std::move(plans[j])});
            // Round 2 re-times only the best few: keep their plans alive.
            std::stable_sort(keep.begin(), keep.end(), [&](const Planned& a, const Planned& b) {
              return variants[a.index].median_ms < variants[b.index].median_ms;
            });
            if (keep.size() > 4) keep.resize(4);
          }
        } catch (const Error& e) {
          v.error = e.what();
        }
      }
      ++measured;
      if (o.progress) {
        TuneProgress p;
        p.measured = measured;
        p.candidates = order.size();
        p.variant = v.name;
        p.median_ms = v.error.empty() ? v.median_ms : -1;
        p.elapsed_s = seconds_since(start);
        o.progress(p);
      }
    }
    next += batch;
  }
  // Later rounds: the leaders again, in reverse order, so a clock that
  // drifted during round 1 favours none of them.
  for (int round = 1; round < o.rounds; ++round) {
    for (auto it = keep.rbegin(); it != keep.rend(); ++it) {
      VariantTiming& v = variants[it->index];
      try {
        RunStats stats;
        timed_runs(*bench, it->plan.get(), std::max(v.median_ms, 1e-3), device_timer,
                   std::max(o.repeat, 1), o.busy_ms, &stats);
        v.samples_ms.insert(v.samples_ms.end(), stats.ms.begin(), stats.ms.end());
        fill_stats(&v);
      } catch (const Error& e) {
        v.error = e.what();
      }
    }
  }
  keep.clear();

  const VariantTiming* best = nullptr;
  for (const auto& v : variants) {
    if (!v.measured || !v.error.empty() || v.median_ms <= 0) continue;
    if (best == nullptr || v.median_ms < best->median_ms) best = &v;
    if (v.is_default) result.default_ms = v.median_ms;
  }
  result.variants = variants;
  result.timer = device_timer ? "device" : "wall";
  result.seconds = seconds_since(start);
  if (best == nullptr) {
    std::string why;
    for (const auto& v : variants)
      if (!v.error.empty()) why += "; " + v.name + ": " + v.error;
    throw Error(ErrorCode::device_error,
                dev.props.name + ": no variant of " + desc.to_string() + " ran correctly" + why);
  }
  result.winner = best->name;
  result.winner_ms = best->median_ms;
  if (plain) result.default_variant = best->name;

  tune::OpRecord rec;
  rec.plugin = api->name;
  rec.plugin_build = build;
  rec.fingerprint = dev.props.fingerprint;
  rec.op = result.op;
  rec.winner = result.winner;
  rec.winner_ms = result.winner_ms;
  rec.default_variant = result.default_variant;
  rec.default_ms = result.default_ms;
  rec.timer = result.timer;
  rec.tuned_at = static_cast<int64_t>(std::time(nullptr));
  rec.seconds = result.seconds;
  for (const auto& v : variants) {
    if (!v.measured) continue;
    tune::TimingRecord t;
    t.variant = v.name;
    t.family = v.family;
    t.median_ms = v.median_ms;
    t.min_ms = v.min_ms;
    t.max_ms = v.max_ms;
    t.plan_ms = v.plan_ms;
    t.max_rel_error = v.max_rel_error;
    t.error = v.error;
    t.samples_ms = v.samples_ms;
    rec.timings.push_back(std::move(t));
  }
  store.put(rec);
  return result;
}

MeasureResult Tuner::measure(const Conv2dDesc& desc, const TuneOptions& o) {
  desc.validate();
  Impl::Device& dev = impl_->resolve(o.device);
  std::lock_guard<std::mutex> lock(dev.mutex);
  const sparkle_plugin* api = dev.api;
  const sparkle_conv2d_desc cd = desc.to_c();
  require_support(api, dev.handle, dev.props.name, desc, cd);
  MeasureResult r;
  r.device = dev.props.name;
  r.op = tune::op_signature(cd);
  auto bench = make_bench(api, dev.handle, cd, o);
  sparkle_plan p = nullptr;
  check_status(tune::plan_conv2d(api, dev.handle, dev.props.fingerprint, cd, &p, &r.tuned),
               dev.props.name + ": plan");
  Owned<sparkle_plan> plan(p, api->plan_destroy);
  r.kernel = api->plan_kernel_name != nullptr ? api->plan_kernel_name(p) : "";
  RunStats stats;
  const double first = checked_run(*bench, p, o.max_rel_error, &stats);
  r.max_rel_error = stats.max_rel_error;
  r.correct = stats.correct;
  r.timer = stats.device_timer ? "device" : "wall";
  timed_runs(*bench, p, first, stats.device_timer, std::max(o.repeat, 1) * std::max(o.rounds, 1),
             o.busy_ms, &stats);
  r.samples_ms = stats.ms;
  if (!r.samples_ms.empty()) {
    r.median_ms = median_of(r.samples_ms);
    r.min_ms = *std::min_element(r.samples_ms.begin(), r.samples_ms.end());
    r.max_ms = *std::max_element(r.samples_ms.begin(), r.samples_ms.end());
  }
  return r;
}

}  // namespace sparkle
