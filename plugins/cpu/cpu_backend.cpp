// The oneTBB CPU backend: one device (the host), host-memory buffers that can
// alias the caller's arrays, and execution on TBB's arena: synchronous for
// v1.0 callers, or in order on ABI 1.3 queues (a worker thread each).
#include <tbb/task_arena.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <sparkle/plugin.hpp>
#include <sparkle/plugin_host_queue.hpp>
#include <string>
#include <vector>

#include "conv2d_gemm.hpp"
#include "cpu_info.hpp"
#include "isa.hpp"

#ifndef SPARKLE_CPU_BUILD_ID
#define SPARKLE_CPU_BUILD_ID "dev"
#endif

namespace sparkle::cpu {
namespace {

using plugin::Error;

class HostBuffer final : public plugin::Buffer {
 public:
  explicit HostBuffer(size_t bytes)
      : owned_(new float[(bytes + 3) / 4]), data_(owned_.get()), bytes_(bytes) {}
  HostBuffer(void* host, size_t bytes) : data_(static_cast<float*>(host)), bytes_(bytes) {}

  void upload(size_t offset, const void* src, size_t bytes) override {
    check(offset, bytes, "upload");
    std::memcpy(reinterpret_cast<char*>(data_) + offset, src, bytes);
  }
  void download(size_t offset, void* dst, size_t bytes) override {
    check(offset, bytes, "download");
    std::memcpy(dst, reinterpret_cast<const char*>(data_) + offset, bytes);
  }
  float* data() { return data_; }
  size_t bytes() const { return bytes_; }
  void* map() override { return data_; }
  size_t size() const override { return bytes_; }

 private:
  void check(size_t offset, size_t bytes, const char* what) const {
    if (offset > bytes_ || bytes > bytes_ - offset)
      throw Error(SPARKLE_INVALID_ARGUMENT, std::string(what) + " of " + std::to_string(bytes) +
                                                " bytes at offset " + std::to_string(offset) +
                                                " exceeds buffer of " + std::to_string(bytes_));
  }
  std::unique_ptr<float[]> owned_;
  float* data_;
  size_t bytes_;
};

HostBuffer* host(plugin::Buffer* b, const char* name, size_t need_bytes) {
  auto* h = dynamic_cast<HostBuffer*>(b);
  if (h == nullptr) throw Error(SPARKLE_INVALID_ARGUMENT, std::string(name) + " buffer is missing");
  if (h->bytes() < need_bytes)
    throw Error(SPARKLE_INVALID_ARGUMENT, std::string(name) + " buffer has " +
                                              std::to_string(h->bytes()) + " bytes, needs " +
                                              std::to_string(need_bytes));
  return h;
}

// Weights packed for the micro-kernels, for plans whose caller promised
// constant weights (SPARKLE_CONV2D_CONSTANT_WEIGHTS). Keyed by the weight
// buffer's address; a sample of the source values is kept so that a buffer
// reused for other weights is noticed and re-packed.
struct PackedWeights {
  static constexpr int kSamples = 64;
  const float* source = nullptr;
  bool kvec = false;  // the layout (Tiling::kvec) it was packed for
  std::vector<float> data;
  float sample[kSamples] = {};

  static size_t sample_index(size_t count, int i) {
    return count <= 1 ? 0 : static_cast<size_t>(i) * (count - 1) / (kSamples - 1);
  }
  bool matches(const float* w, size_t count, bool layout) const {
    if (w != source || layout != kvec) return false;
    // Bit patterns, not values: a NaN must match itself and -0 must not
    // match +0, or changed weights could pass for the packed ones.
    for (int i = 0; i < kSamples; ++i)
      if (std::memcmp(&sample[i], &w[sample_index(count, i)], sizeof(float)) != 0)  // NOLINT
        return false;
    return true;
  }
};

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

class GemmPlan final : public plugin::Plan {
 public:
  // Packed copies kept per plan: one per weight tensor of this shape in the
  // model (ResNet-50 has at most 6 of a shape), least recently used dropped.
  static constexpr size_t kMaxPacked = 16;

  GemmPlan(const sparkle_conv2d_desc& d, Isa isa, Orientation orientation)
      : d_(d),
        kernels_(kernels_for(isa)),
        constant_weights_((d.flags & SPARKLE_CONV2D_CONSTANT_WEIGHTS) != 0),
        orientation_(orientation),
        tiling_(choose_tiling(d, kernels_, tbb::this_task_arena::max_concurrency(), orientation)),
        name_(std::string("cpu_gemm_") + kernels_.name + (tiling_.kvec ? "_channels" : "") +
              (constant_weights_ ? "_packedw" : "")) {}
  const char* kernel_name() const override { return name_.c_str(); }

  std::unique_ptr<plugin::Fence> enqueue(plugin::Buffer* x, plugin::Buffer* w, plugin::Buffer* bias,
                                         plugin::Buffer* y) override {
    const size_t f = sizeof(float);
    const size_t w_count = static_cast<size_t>(d_.k * (d_.c / d_.groups) * d_.r * d_.s);
    auto* hx = host(x, "x", static_cast<size_t>(d_.n * d_.c * d_.h * d_.w) * f);
    auto* hw = host(w, "w", w_count * f);
    auto* hy = host(y, "y", static_cast<size_t>(d_.n * d_.k * d_.out_h * d_.out_w) * f);
    HostBuffer* hb = d_.has_bias ? host(bias, "bias", static_cast<size_t>(d_.k) * f) : nullptr;
    const auto start = std::chrono::steady_clock::now();
    // The arena may have changed size since planning (tbb::global_control).
    const int threads = tbb::this_task_arena::max_concurrency();
    const Tiling tiling =
        threads == tiling_.threads ? tiling_ : choose_tiling(d_, kernels_, threads, orientation_);
    auto run = [&] {
      std::shared_ptr<const PackedWeights> packed;
      if (constant_weights_) {
        packed = packed_weights(hw->data(), w_count, tiling.kvec);
      } else if (tiling.kvec) {
        // Forced by SPARKLE_CPU_VECTORIZE=channels without constant
        // weights: packed for this call only.
        packed = pack(hw->data(), w_count, tiling.kvec);
      }
      conv2d_gemm(d_, kernels_, tiling, hx->data(), hw->data(),
                  packed ? packed->data.data() : nullptr, hb ? hb->data() : nullptr, hy->data());
    };
#if defined(__SANITIZE_THREAD__)
    // Debian's oneTBB is not instrumented, so ThreadSanitizer cannot see the
    // synchronisation of its worker threads and reports every parallel_for
    // body. Under TSan each call runs on the caller's thread alone (an arena
    // of one), which keeps the checks meaningful for the engine's own
    // threads calling into this plugin concurrently.
    tbb::task_arena(1).execute(run);
#else
    run();
#endif
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    return std::make_unique<plugin::CompletedFence>(static_cast<int64_t>(ns));
  }

 private:
  // The packed copy of w for this layout: reused when w's address and its
  // sampled values match, else packed now (outside the lock: packing runs
  // a parallel loop, and this thread may be handed another call meanwhile).
  std::shared_ptr<const PackedWeights> packed_weights(const float* w, size_t count, bool kvec) {
    {
      std::lock_guard lock(packed_mutex_);
      for (auto it = packed_.begin(); it != packed_.end(); ++it)
        if ((*it)->matches(w, count, kvec)) {
          auto hit = *it;
          packed_.erase(it);
          packed_.push_back(hit);  // most recently used last
          return hit;
        }
    }
    auto fresh = pack(w, count, kvec);
    std::lock_guard lock(packed_mutex_);
    std::erase_if(packed_, [&](const auto& p) { return p->source == w; });
    if (packed_.size() >= kMaxPacked) packed_.erase(packed_.begin());
    packed_.push_back(fresh);
    return fresh;
  }

  std::shared_ptr<const PackedWeights> pack(const float* w, size_t count, bool kvec) const {
    auto fresh = std::make_shared<PackedWeights>();
    fresh->source = w;
    fresh->kvec = kvec;
    for (int i = 0; i < PackedWeights::kSamples; ++i)
      fresh->sample[i] = w[PackedWeights::sample_index(count, i)];
    fresh->data.resize(packed_weight_floats(d_, kernels_, kvec));
    pack_weights(d_, kernels_, kvec, w, fresh->data.data());
    return fresh;
  }

  sparkle_conv2d_desc d_;
  const KernelSet& kernels_;
  bool constant_weights_;
  Orientation orientation_;
  Tiling tiling_;
  std::string name_;
  std::mutex packed_mutex_;
  std::vector<std::shared_ptr<const PackedWeights>> packed_;
};

class CpuDevice final : public plugin::Device {
 public:
  // Every valid descriptor, on the ISA SPARKLE_CPU_ISA names (or the best).
  void check_supported(const sparkle_conv2d_desc&) override {
    (void)selected_isa();
    (void)selected_orientation();
  }
  std::unique_ptr<plugin::Buffer> create_buffer(size_t bytes) override {
    return std::make_unique<HostBuffer>(bytes);
  }
  std::unique_ptr<plugin::Buffer> wrap_host(void* host, size_t bytes) override {
    return std::make_unique<HostBuffer>(host, bytes);
  }
  // Every kind is host memory here; staging is just memory with an address.
  std::unique_ptr<plugin::Buffer> create_buffer_ex(const sparkle_buffer_desc& desc) override {
    if (desc.kind > SPARKLE_MEMORY_READBACK)
      throw Error(SPARKLE_INVALID_ARGUMENT, "unknown memory kind " + std::to_string(desc.kind));
    return std::make_unique<HostBuffer>(desc.bytes);
  }
  std::unique_ptr<plugin::Queue> create_queue(uint32_t) override {
    return std::make_unique<plugin::HostQueue>();
  }
  std::unique_ptr<plugin::Plan> plan_conv2d(const sparkle_conv2d_desc& d) override {
    return std::make_unique<GemmPlan>(d, selected_isa(), selected_orientation());
  }
};

class CpuBackend final : public plugin::Backend {
 public:
  std::vector<plugin::DeviceEntry> devices() override { return {describe_host_cpu()}; }
  std::unique_ptr<plugin::Device> open_device(size_t) override {
    return std::make_unique<CpuDevice>();
  }
};

}  // namespace
}  // namespace sparkle::cpu

SPARKLE_DEFINE_PLUGIN(sparkle::cpu::CpuBackend, "cpu", "0.1.0", SPARKLE_CPU_BUILD_ID)
