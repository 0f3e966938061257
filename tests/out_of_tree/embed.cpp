// An out-of-tree program embedding sparkle through pkg-config: lists the
// devices, then runs one convolution on every device and checks each
// against the reference. Exit 0 only if the example plugin was found too.
#include <cstdio>
#include <limits>
#include <random>
#include <sparkle/sparkle.hpp>

int main() {
  sparkle::Engine engine;
  bool found_example = false;
  for (const auto& d : engine.devices()) {
    std::printf("device %s: %s\n", d.name.c_str(), d.description.c_str());
    found_example = found_example || d.backend == "example";
  }
  sparkle::Conv2dDesc desc;
  desc.n = 2, desc.c = 6, desc.h = 11, desc.w = 9, desc.k = 4, desc.r = 3, desc.s = 3;
  desc.pad_top = 1, desc.pad_right = 2, desc.groups = 2, desc.has_bias = true;
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(desc.input_elements()), w(desc.weight_elements()), b(desc.bias_elements());
  for (auto* v : {&x, &w, &b})
    for (auto& e : *v) e = u(rng);
  std::vector<double> want(desc.output_elements()), mag(desc.output_elements());
  sparkle::reference_conv2d(desc, x.data(), w.data(), b.data(), want.data(), mag.data());
  int bad = 0;
  for (const auto& d : engine.devices()) {
    std::vector<float> y(want.size(), std::numeric_limits<float>::quiet_NaN());
    sparkle::RunOptions opts;
    opts.device = d.name;
    const auto r = engine.conv2d(desc, x, w, b, y, opts);
    const auto c =
        sparkle::compare(y.data(), want.data(), mag.data(), static_cast<int64_t>(y.size()));
    const bool ok = c.non_finite == 0 && c.max_rel_error <= 1e-5;
    std::printf("%s (%s): max rel error %.3g %s\n", r.device.c_str(), r.kernel.c_str(),
                c.max_rel_error, ok ? "ok" : "WRONG");
    bad += !ok;
  }
  if (!found_example) std::printf("example plugin not found\n");
  return bad == 0 && found_example ? 0 : 1;
}
