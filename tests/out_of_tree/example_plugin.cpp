// An out-of-tree backend, built only against the installed SDK
// (pkg-config sparkle-plugin): a direct-loop convolution on host memory.
// The install test compiles it the way a third party would.
#include <cstring>
#include <sparkle/plugin.hpp>
#include <vector>

namespace {

class Memory final : public sparkle::plugin::Buffer {
 public:
  explicit Memory(size_t bytes) : bytes_(bytes) {}
  void upload(size_t offset, const void* src, size_t n) override {
    check(offset, n);
    std::memcpy(bytes_.data() + offset, src, n);
  }
  void download(size_t offset, void* dst, size_t n) override {
    check(offset, n);
    std::memcpy(dst, bytes_.data() + offset, n);
  }
  float* data() { return reinterpret_cast<float*>(bytes_.data()); }

 private:
  void check(size_t offset, size_t n) const {
    if (offset > bytes_.size() || n > bytes_.size() - offset)
      throw sparkle::plugin::Error(SPARKLE_INVALID_ARGUMENT, "copy outside the buffer");
  }
  std::vector<unsigned char> bytes_;
};

class DirectPlan final : public sparkle::plugin::Plan {
 public:
  explicit DirectPlan(const sparkle_conv2d_desc& d) : d_(d) {}
  const char* kernel_name() const override { return "example_direct"; }
  std::unique_ptr<sparkle::plugin::Fence> enqueue(sparkle::plugin::Buffer* xb,
                                                  sparkle::plugin::Buffer* wb,
                                                  sparkle::plugin::Buffer* bb,
                                                  sparkle::plugin::Buffer* yb) override {
    const float* x = static_cast<Memory*>(xb)->data();
    const float* w = static_cast<Memory*>(wb)->data();
    const float* b = bb ? static_cast<Memory*>(bb)->data() : nullptr;
    float* y = static_cast<Memory*>(yb)->data();
    const auto& d = d_;
    const int64_t cg = d.c / d.groups, kg = d.k / d.groups;
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t k = 0; k < d.k; ++k)
        for (int64_t p = 0; p < d.out_h; ++p)
          for (int64_t q = 0; q < d.out_w; ++q) {
            float acc = b ? b[k] : 0.0f;
            for (int64_t ci = 0; ci < cg; ++ci)
              for (int64_t r = 0; r < d.r; ++r)
                for (int64_t s = 0; s < d.s; ++s) {
                  const int64_t ih = p * d.stride_h - d.pad_top + r * d.dilation_h;
                  const int64_t iw = q * d.stride_w - d.pad_left + s * d.dilation_w;
                  if (ih < 0 || ih >= d.h || iw < 0 || iw >= d.w) continue;
                  acc += x[((n * d.c + (k / kg) * cg + ci) * d.h + ih) * d.w + iw] *
                         w[((k * cg + ci) * d.r + r) * d.s + s];
                }
            if (d.relu && acc < 0) acc = 0;
            y[((n * d.k + k) * d.out_h + p) * d.out_w + q] = acc;
          }
    return std::make_unique<sparkle::plugin::CompletedFence>();
  }

 private:
  sparkle_conv2d_desc d_;
};

class ExampleDevice final : public sparkle::plugin::Device {
 public:
  void check_supported(const sparkle_conv2d_desc&) override {}
  std::unique_ptr<sparkle::plugin::Buffer> create_buffer(size_t bytes) override {
    return std::make_unique<Memory>(bytes);
  }
  std::unique_ptr<sparkle::plugin::Plan> plan_conv2d(const sparkle_conv2d_desc& d) override {
    return std::make_unique<DirectPlan>(d);
  }
};

class ExampleBackend final : public sparkle::plugin::Backend {
 public:
  std::vector<sparkle::plugin::DeviceEntry> devices() override {
    sparkle::plugin::DeviceEntry e;
    e.kind = SPARKLE_DEVICE_SIMULATED;
    e.description = "out-of-tree example backend";
    e.fingerprint = "example-1";
    e.properties = {{"author", "install test"}};
    return {e};
  }
  std::unique_ptr<sparkle::plugin::Device> open_device(size_t) override {
    return std::make_unique<ExampleDevice>();
  }
};

}  // namespace

SPARKLE_DEFINE_PLUGIN(ExampleBackend, "example", "1.0", "example-1")
