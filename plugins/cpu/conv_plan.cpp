// The CPU plan: operand layouts, the kernel kinds and the measured choice
// between them (see conv_plan.hpp).
#include "conv_plan.hpp"

#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "conv2d_gemm.hpp"
#include "cpu_buffer.hpp"
#include "direct_conv.hpp"
#include "jit_conv.hpp"
#include "layout.hpp"
#include "scratch.hpp"
#include "winograd.hpp"

namespace sparkle::cpu {

namespace {

using plugin::Error;
using Clock = std::chrono::steady_clock;

// Calls below this many FLOPs are too short to time reliably against each
// other (tens of microseconds); they take the rule instead (JIT where it
// applies, else the GEMM).
constexpr double kMeasureFlops = 20e6;

// SPARKLE_CPU_VECTORIZE: auto (unset; pixels, see Orientation), pixels or
// channels (forced, for tests and comparisons).
Orientation selected_orientation() {
  const char* env = std::getenv("SPARKLE_CPU_VECTORIZE");
  const std::string v = env != nullptr ? env : "";
  if (v.empty() || v == "auto") return Orientation::pixels;
  if (v == "pixels") return Orientation::pixels;
  if (v == "channels") return Orientation::channels;
  throw Error(SPARKLE_INVALID_ARGUMENT,
              "SPARKLE_CPU_VECTORIZE=" + v + " is unknown; use auto, pixels or channels");
}

const char* kind_name(KernelKind k) {
  switch (k) {
    case KernelKind::gemm:
      return "gemm";
    case KernelKind::jit:
      return "jit";
    case KernelKind::winograd4:
      return "winograd4";
    case KernelKind::winograd2:
      return "winograd2";
    case KernelKind::automatic:
      break;
  }
  return "auto";
}

HostBuffer* host(plugin::Buffer* b, const char* name, size_t need_bytes) {
  auto* h = dynamic_cast<HostBuffer*>(b);
  if (h == nullptr) throw Error(SPARKLE_INVALID_ARGUMENT, std::string(name) + " buffer is missing");
  if (h->bytes() < need_bytes)
    throw Error(SPARKLE_INVALID_ARGUMENT, std::string(name) + " buffer has " +
                                              std::to_string(h->bytes()) + " bytes, needs " +
                                              std::to_string(need_bytes));
  return h;
}

// A transformed copy of a weight tensor for one kernel layout (tag), for
// plans whose caller promised constant weights. Keyed by the buffer's
// storage address; 64 samples of the storage are compared on every call so
// that a buffer reused for other weights is noticed and re-packed.
struct PackedWeights {
  static constexpr int kSamples = 64;
  const float* source = nullptr;
  size_t count = 0;
  int tag = 0;
  // The packing's blocking (channel blocks per group): it follows the
  // thread count of the arena a call runs in, so one plan can need two.
  int blocking = 0;
  std::vector<float> data;
  float sample[kSamples] = {};

  static size_t sample_index(size_t count, int i) {
    return count <= 1 ? 0 : static_cast<size_t>(i) * (count - 1) / (kSamples - 1);
  }
  bool matches(const float* w, size_t n, int t, int b) const {
    if (w != source || n != count || t != tag || b != blocking) return false;
    // Bit patterns, not values: a NaN must match itself and -0 must not
    // match +0, or changed weights could pass for the packed ones.
    for (int i = 0; i < kSamples; ++i)
      if (std::memcmp(&sample[i], &w[sample_index(n, i)], sizeof(float)) != 0) return false;
    return true;
  }
};

// Tags of PackedWeights: one per kernel layout.
enum PackTag { kGemmPixels = 1, kGemmChannels, kJitBlocked, kJitDense, kWino4, kWino2 };

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

class CpuPlan final : public plugin::Plan {
 public:
  // Packed copies kept per plan and layout: one per weight tensor of this
  // shape in a model (ResNet-50 has at most 6 of a shape), LRU.
  static constexpr std::ptrdiff_t kMaxPacked = 16;

  CpuPlan(const sparkle_conv2d_desc& d, Isa isa)
      : d_(d),
        isa_(isa),
        v_(jit_vector_lanes(isa)),
        gemm_kernels_(kernels_for(isa)),
        constant_weights_((d.flags & SPARKLE_CONV2D_CONSTANT_WEIGHTS) != 0),
        orientation_(selected_orientation()),
        forced_(selected_kernel_kind()),
        tiling_(
            choose_tiling(d, gemm_kernels_, tbb::this_task_arena::max_concurrency(), orientation_)),
        flops_(2.0 * static_cast<double>(d.n * d.k * d.out_h * d.out_w) *
               static_cast<double>(d.c / d.groups * d.r * d.s)) {
    candidates_.push_back(KernelKind::gemm);
    if (direct_applicable(d, isa)) candidates_.push_back(KernelKind::jit);
    if (winograd_applicable(d, isa)) {
      candidates_.push_back(KernelKind::winograd4);
      candidates_.push_back(KernelKind::winograd2);
    }
    const std::string suffix = std::string("_") + isa_name(isa) +
                               (tiling_.kvec ? "_channels" : "") +
                               (constant_weights_ ? "_packedw" : "");
    if (forced_ == KernelKind::automatic) {
      name_ = "cpu_auto" + suffix;
    } else {
      name_ = std::string("cpu_") + kind_name(fallback(forced_)) + suffix;
    }
  }
  const char* kernel_name() const override { return name_.c_str(); }

  std::unique_ptr<plugin::Fence> enqueue(plugin::Buffer* x, plugin::Buffer* w, plugin::Buffer* bias,
                                         plugin::Buffer* y) override {
    const size_t f = sizeof(float);
    const size_t w_count = static_cast<size_t>(d_.k * (d_.c / d_.groups) * d_.r * d_.s);
    Operands o;
    o.x = host(x, "x", static_cast<size_t>(d_.n * d_.c * d_.h * d_.w) * f);
    o.w = host(w, "w", w_count * f);
    o.y = host(y, "y", static_cast<size_t>(d_.n * d_.k * d_.out_h * d_.out_w) * f);
    o.b = d_.has_bias ? host(bias, "bias", static_cast<size_t>(d_.k) * f) : nullptr;
    auto start = Clock::now();
    // A call that measures the kinds first reports only its last run (the
    // one whose output it returns), as the selector learns from this time.
    auto run = [&] { start = execute(o); };
#if defined(__SANITIZE_THREAD__)
    // Debian's oneTBB is not instrumented, so ThreadSanitizer cannot see the
    // synchronisation of its worker threads and reports every parallel_for
    // body. Under TSan each call runs on the caller's thread alone (an arena
    // of one), which keeps the checks meaningful for the engine's own
    // threads calling into this plugin concurrently.
    tbb::task_arena(1).execute(run);
#else
    // Isolated: a caller that is itself a TBB task (a user's parallel_for
    // calling conv2d, which the executor may run on that thread) must not
    // pick up the user's other tasks while it waits inside this call's
    // loops; one of those could block on this very device and never let
    // this call finish.
    tbb::this_task_arena::isolate(run);
#endif
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
    return std::make_unique<plugin::CompletedFence>(static_cast<int64_t>(ns));
  }

 private:
  struct Operands {
    HostBuffer *x = nullptr, *w = nullptr, *y = nullptr, *b = nullptr;
  };

  // The kind that runs when k is forced: k where it applies, else JIT, else
  // the GEMM.
  KernelKind fallback(KernelKind k) const {
    if (std::find(candidates_.begin(), candidates_.end(), k) != candidates_.end()) return k;
    if (std::find(candidates_.begin(), candidates_.end(), KernelKind::jit) != candidates_.end())
      return KernelKind::jit;
    return KernelKind::gemm;
  }

  // Blocked with this ISA's lanes and the dims the descriptor gives it.
  bool blocked_as(const HostBuffer* b, int64_t n, int64_t c, int64_t h, int64_t w) const {
    const Layout& l = b->layout();
    return v_ > 0 && l.block == v_ && l.n == n && l.c == c && l.h == h && l.w == w;
  }

  // Runs the call; returns when the run that produced y started.
  Clock::time_point execute(const Operands& o) {
    const auto start = Clock::now();
    const int threads = tbb::this_task_arena::max_concurrency();
    const bool xb = blocked_as(o.x, d_.n, d_.c, d_.h, d_.w);
    const bool yb = blocked_as(o.y, d_.n, d_.k, d_.out_h, d_.out_w);
    if (forced_ != KernelKind::automatic) {
      run(fallback(forced_), o, xb, yb, threads);
      return start;
    }
    if (flops_ < kMeasureFlops) {
      run(fallback(KernelKind::jit), o, xb, yb, threads);
      return start;
    }
    const int mode = (xb ? 1 : 0) | (yb ? 2 : 0);
    const int64_t key = static_cast<int64_t>(threads) * 4 + mode;
    KernelKind chosen = KernelKind::automatic;
    {
      std::lock_guard lock(mutex_);
      auto it = choice_.find(key);
      if (it != choice_.end()) chosen = it->second;
    }
    if (chosen != KernelKind::automatic) {
      run(chosen, o, xb, yb, threads);  // outside the lock: calls run concurrently
      return start;
    }
    // First call with these layouts: each candidate once to warm up (JIT
    // code, packed weights, pages), then three timed rounds (the minimum of
    // each: a shared machine's slow spells only ever add time); the fastest
    // wins and runs last, so y holds its result.
    // A kind that fails here (scratch it cannot get) drops out of the
    // race; only the last one standing reports its error.
    std::vector<KernelKind> race;
    for (size_t i = 0; i < candidates_.size(); ++i) {
      try {
        run(candidates_[i], o, xb, yb, threads);
        race.push_back(candidates_[i]);
      } catch (const std::exception& e) {
        if (race.empty() && i + 1 == candidates_.size()) throw;
        plugin::log(SPARKLE_LOG_WARN, "conv " + describe() + ": " + kind_name(candidates_[i]) +
                                          " left out: " + e.what());
      }
    }
    std::vector<double> best(race.size(), 1e300);
    for (int round = 0; round < 3; ++round)
      for (size_t i = 0; i < race.size(); ++i) {
        const auto t0 = Clock::now();
        run(race[i], o, xb, yb, threads);
        best[i] = std::min(best[i], ms_since(t0));
      }
    // The rule's kind (what small layers get) keeps the layer unless
    // another is at least 5% faster: on a shared machine a slow spell can
    // still hit all three runs of one candidate, and a near-tie is not
    // worth a flip between layouts.
    const auto rule_it = std::find(race.begin(), race.end(), fallback(KernelKind::jit));
    const size_t rule = rule_it != race.end() ? static_cast<size_t>(rule_it - race.begin()) : 0;
    size_t win = rule;
    for (size_t i = 0; i < race.size(); ++i)
      if (best[i] < best[win] && (win != rule || best[i] < 0.95 * best[rule])) win = i;
    std::string why;
    for (size_t i = 0; i < race.size(); ++i)
      why +=
          std::string(i ? ", " : "") + kind_name(race[i]) + " " + std::to_string(best[i]) + " ms";
    plugin::log(SPARKLE_LOG_INFO, "conv " + describe() + " (x " + (xb ? "blocked" : "nchw") +
                                      ", y " + (yb ? "blocked" : "nchw") + ", " +
                                      std::to_string(threads) + " threads): chose " +
                                      kind_name(race[win]) + " (" + why + ")");
    {
      std::lock_guard lock(mutex_);
      choice_[key] = race[win];
    }
    drop_unused_packs();
    const auto last = Clock::now();
    run(race[win], o, xb, yb, threads);
    return last;
  }

  std::string describe() const {
    return std::to_string(d_.n) + "x" + std::to_string(d_.c) + "x" + std::to_string(d_.h) + "x" +
           std::to_string(d_.w) + " k" + std::to_string(d_.k) + " " + std::to_string(d_.r) + "x" +
           std::to_string(d_.s) + " s" + std::to_string(d_.stride_h);
  }

  void run(KernelKind k, const Operands& o, bool xb, bool yb, int threads) {
    switch (k) {
      case KernelKind::jit:
        return run_direct(o, xb, yb, threads);
      case KernelKind::winograd4:
        return run_winograd(4, o, xb, yb, threads);
      case KernelKind::winograd2:
        return run_winograd(2, o, xb, yb, threads);
      case KernelKind::gemm:
      case KernelKind::automatic:
        break;
    }
    run_gemm(o, threads);
  }

  // ---- operands in the layouts a kernel needs ------------------------------

  // x (or any operand) as dense NCHW: the buffer itself, or a converted copy.
  template <int kSlot>
  static const float* dense_view(HostBuffer* b, ScratchBuffer<float, kSlot>& s) {
    if (!b->layout().blocked()) return b->data();
    auto& v = s.get();
    v.resize(static_cast<size_t>(b->layout().elements()));
    to_dense(b->layout(), b->data(), v.data());
    return v.data();
  }

  // Where a kernel writing nChwVc output puts it: y itself, or scratch that
  // finish_blocked_output converts into y's layout.
  float* blocked_output(HostBuffer* y, bool yb, ScratchBuffer<float, 13>& s) const {
    if (yb) return y->data();
    auto& v = s.get();
    v.resize(static_cast<size_t>(out_layout().storage()));
    return v.data();
  }
  void finish_blocked_output(HostBuffer* y, bool yb, const float* out) const {
    if (yb) return;
    if (!y->layout().blocked()) {
      to_dense(out_layout(), out, y->data());
      return;
    }
    ScratchBuffer<float, 14> dense;
    auto& v = dense.get();
    v.resize(static_cast<size_t>(out_layout().elements()));
    to_dense(out_layout(), out, v.data());
    y->upload(0, v.data(), v.size() * sizeof(float));
  }
  Layout out_layout() const { return Layout{v_, d_.n, d_.k, d_.out_h, d_.out_w}; }

  std::vector<float> bias_dense(const Operands& o) const {
    std::vector<float> b(static_cast<size_t>(d_.k));
    o.b->download(0, b.data(), b.size() * sizeof(float));
    return b;
  }

  // ---- packed weights ------------------------------------------------------

  std::shared_ptr<const PackedWeights> packed(HostBuffer* w, int tag, int blocking, size_t floats,
                                              const std::function<void(float*)>& pack) {
    const float* src = w->data();
    const auto count = static_cast<size_t>(w->layout().storage());
    auto make = [&] {
      auto fresh = std::make_shared<PackedWeights>();
      fresh->source = src;
      fresh->count = count;
      fresh->tag = tag;
      fresh->blocking = blocking;
      for (int i = 0; i < PackedWeights::kSamples; ++i)
        fresh->sample[i] = src[PackedWeights::sample_index(count, i)];
      fresh->data.resize(floats);
      pack(fresh->data.data());
      return fresh;
    };
    if (!constant_weights_) return make();
    {
      std::lock_guard lock(packed_mutex_);
      for (auto it = packed_.begin(); it != packed_.end(); ++it)
        if ((*it)->matches(src, count, tag, blocking)) {
          auto hit = *it;
          packed_.erase(it);
          packed_.push_back(hit);  // most recently used last
          return hit;
        }
    }
    // Packing runs outside the lock: it is a parallel loop, and this thread
    // may be handed another call meanwhile.
    auto fresh = make();
    std::lock_guard lock(packed_mutex_);
    std::erase_if(packed_, [&](const auto& p) {
      return p->source == src && p->tag == tag && p->blocking == blocking;
    });
    if (std::count_if(packed_.begin(), packed_.end(),
                      [&](const auto& p) { return p->tag == tag; }) >= kMaxPacked) {
      for (auto it = packed_.begin(); it != packed_.end(); ++it)
        if ((*it)->tag == tag) {
          packed_.erase(it);
          break;
        }
    }
    packed_.push_back(fresh);
    return fresh;
  }

  // Once every layout has chosen, the other kinds' copies are dead weight.
  void drop_unused_packs() {
    std::vector<int> keep;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [key, kind] : choice_) {
        (void)key;
        switch (kind) {
          case KernelKind::gemm:
            keep.push_back(kGemmPixels), keep.push_back(kGemmChannels);
            break;
          case KernelKind::jit:
            keep.push_back(kJitBlocked), keep.push_back(kJitDense);
            break;
          case KernelKind::winograd4:
            keep.push_back(kWino4);
            break;
          case KernelKind::winograd2:
            keep.push_back(kWino2);
            break;
          case KernelKind::automatic:
            break;
        }
      }
    }
    std::lock_guard lock(packed_mutex_);
    std::erase_if(packed_, [&](const auto& p) {
      return std::find(keep.begin(), keep.end(), p->tag) == keep.end();
    });
  }

  // w(k, c, r, s) in whatever layout the weight buffer holds.
  static std::function<float(int64_t, int64_t, int64_t, int64_t)> weight_reader(
      HostBuffer* w, const sparkle_conv2d_desc& d) {
    const Layout l = w->layout();
    const float* data = w->data();
    const int64_t cg = d.c / d.groups;
    if (!l.blocked())
      return [=](int64_t k, int64_t c, int64_t r, int64_t s) {
        return data[((k * cg + c) * d.r + r) * d.s + s];
      };
    return [=](int64_t k, int64_t c, int64_t r, int64_t s) {
      return data[l.index(((k * cg + c) * d.r + r) * d.s + s)];
    };
  }

  // ---- the kinds -----------------------------------------------------------

  void run_gemm(const Operands& o, int threads) {
    ScratchBuffer<float, 10> xs;
    ScratchBuffer<float, 11> ws;
    ScratchBuffer<float, 12> ys;
    const float* x = dense_view(o.x, xs);
    const float* w = dense_view(o.w, ws);
    std::vector<float> bias_copy;
    const float* bias = nullptr;
    if (o.b != nullptr) {
      bias_copy = bias_dense(o);
      bias = bias_copy.data();
    }
    float* y = o.y->data();
    if (o.y->layout().blocked()) {
      ys.get().resize(static_cast<size_t>(d_.n * d_.k * d_.out_h * d_.out_w));
      y = ys.get().data();
    }
    const Tiling tiling = threads == tiling_.threads
                              ? tiling_
                              : choose_tiling(d_, gemm_kernels_, threads, orientation_);
    std::shared_ptr<const PackedWeights> p;
    if (constant_weights_ || tiling.kvec) {
      // Packed from the dense weights; keyed by the buffer's own storage.
      p = packed(o.w, tiling.kvec ? kGemmChannels : kGemmPixels, 0,  // whatever the threads
                 packed_weight_floats(d_, gemm_kernels_, tiling.kvec),
                 [&](float* out) { pack_weights(d_, gemm_kernels_, tiling.kvec, w, out); });
    }
    conv2d_gemm(d_, gemm_kernels_, tiling, x, w, p ? p->data.data() : nullptr, bias, y);
    if (o.y->layout().blocked()) o.y->upload(0, y, ys.get().size() * sizeof(float));
  }

  DirectConv& direct(bool dense_input, int threads) {
    std::lock_guard lock(kernels_mutex_);
    auto& slot = direct_[{dense_input, threads}];
    if (!slot) slot = std::make_unique<DirectConv>(d_, isa_, dense_input, threads);
    return *slot;
  }
  WinogradConv& winograd(int m, int threads) {
    std::lock_guard lock(kernels_mutex_);
    auto& slot = winograd_[{m, threads}];
    if (!slot) slot = std::make_unique<WinogradConv>(d_, isa_, m, threads);
    return *slot;
  }

  void run_direct(const Operands& o, bool xb, bool yb, int threads) {
    ScratchBuffer<float, 10> xs;
    ScratchBuffer<float, 13> ys;
    const float* x = xb ? o.x->data() : dense_view(o.x, xs);
    DirectConv& dc = direct(!xb, threads);
    const auto reader = weight_reader(o.w, d_);
    auto p = packed(o.w, xb ? kJitBlocked : kJitDense, dc.nb_oc(), dc.packed_floats(),
                    [&](float* out) { dc.pack(reader, out); });
    std::vector<float> bias;
    if (o.b != nullptr) bias = dc.padded_bias(bias_dense(o).data());
    float* y = blocked_output(o.y, yb, ys);
    dc.run(x, p->data.data(), bias.empty() ? nullptr : bias.data(), y);
    finish_blocked_output(o.y, yb, y);
  }

  void run_winograd(int m, const Operands& o, bool xb, bool yb, int threads) {
    ScratchBuffer<float, 10> xs;
    ScratchBuffer<float, 15> xblocked;
    ScratchBuffer<float, 13> ys;
    const float* x = o.x->data();
    if (!xb) {
      const float* dense = dense_view(o.x, xs);
      const Layout lx{v_, d_.n, d_.c, d_.h, d_.w};
      auto& v = xblocked.get();
      v.resize(static_cast<size_t>(lx.storage()));
      to_blocked(lx, dense, v.data());
      x = v.data();
    }
    WinogradConv& wc = winograd(m, threads);
    auto p =
        packed(o.w, m == 4 ? kWino4 : kWino2, wc.blocking(), wc.packed_floats(), [&](float* out) {
          ScratchBuffer<float, 11> ws;
          wc.pack(dense_view(o.w, ws), out);
        });
    std::vector<float> bias;
    if (o.b != nullptr) bias = direct_bias(bias_dense(o));
    float* y = blocked_output(o.y, yb, ys);
    wc.run(x, p->data.data(), bias.empty() ? nullptr : bias.data(), y);
    finish_blocked_output(o.y, yb, y);
  }

  std::vector<float> direct_bias(const std::vector<float>& b) const {
    std::vector<float> out(static_cast<size_t>((d_.k + v_ - 1) / v_ * v_), 0.0f);
    std::copy(b.begin(), b.end(), out.begin());
    return out;
  }

  const sparkle_conv2d_desc d_;
  const Isa isa_;
  const int v_;
  const KernelSet& gemm_kernels_;
  const bool constant_weights_;
  const Orientation orientation_;
  const KernelKind forced_;
  const Tiling tiling_;
  const double flops_;
  std::vector<KernelKind> candidates_;
  std::string name_;

  std::mutex mutex_;  // choice_
  std::map<int64_t, KernelKind> choice_;
  std::mutex kernels_mutex_;
  std::map<std::pair<bool, int>, std::unique_ptr<DirectConv>> direct_;
  std::map<std::pair<int, int>, std::unique_ptr<WinogradConv>> winograd_;
  std::mutex packed_mutex_;
  std::vector<std::shared_ptr<const PackedWeights>> packed_;
};

}  // namespace

KernelKind selected_kernel_kind() {
  const char* env = std::getenv("SPARKLE_CPU_KERNEL");
  const std::string v = env != nullptr ? env : "";
  if (v.empty() || v == "auto") return KernelKind::automatic;
  if (v == "gemm") return KernelKind::gemm;
  if (v == "jit") return KernelKind::jit;
  if (v == "winograd4") return KernelKind::winograd4;
  if (v == "winograd2") return KernelKind::winograd2;
  throw Error(SPARKLE_INVALID_ARGUMENT, "SPARKLE_CPU_KERNEL=" + v +
                                            " is unknown; use auto, gemm, jit, winograd4 or "
                                            "winograd2");
}

void check_cpu_environment() {
  (void)selected_isa();
  (void)selected_orientation();
  (void)selected_kernel_kind();
  (void)tensor_block(1);  // SPARKLE_CPU_LAYOUT
  (void)jit_prefetch_enabled();
  int u = 0, b = 0;
  (void)forced_jit_blocking(u, b);
}

std::unique_ptr<plugin::Plan> make_cpu_plan(const sparkle_conv2d_desc& d, Isa isa) {
  return std::make_unique<CpuPlan>(d, isa);
}

}  // namespace sparkle::cpu
