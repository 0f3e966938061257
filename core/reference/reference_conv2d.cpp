// Direct-loop float64 convolution: the independent judge of every backend.
// Keep it obviously correct rather than fast.
#include <algorithm>
#include <cmath>
#include <sparkle/reference.hpp>

namespace sparkle {

void reference_conv2d(const Conv2dDesc& d, const float* x, const float* w, const float* bias,
                      double* y, double* magnitude) {
  const int64_t P = d.out_h(), Q = d.out_w();
  const int64_t cg = d.c / d.groups, kg = d.k / d.groups;
  for (int64_t n = 0; n < d.n; ++n) {
    for (int64_t k = 0; k < d.k; ++k) {
      const int64_t g = k / kg;
      for (int64_t p = 0; p < P; ++p) {
        for (int64_t q = 0; q < Q; ++q) {
          double acc = d.has_bias ? static_cast<double>(bias[k]) : 0.0;
          double mag = std::fabs(acc);
          for (int64_t ci = 0; ci < cg; ++ci) {
            const int64_t c = g * cg + ci;
            for (int64_t r = 0; r < d.r; ++r) {
              const int64_t ih = p * d.stride_h - d.pad_top + r * d.dilation_h;
              if (ih < 0 || ih >= d.h) continue;
              for (int64_t s = 0; s < d.s; ++s) {
                const int64_t iw = q * d.stride_w - d.pad_left + s * d.dilation_w;
                if (iw < 0 || iw >= d.w) continue;
                const double term = static_cast<double>(x[((n * d.c + c) * d.h + ih) * d.w + iw]) *
                                    static_cast<double>(w[((k * cg + ci) * d.r + r) * d.s + s]);
                acc += term;
                mag += std::fabs(term);
              }
            }
          }
          if (d.relu) acc = std::max(acc, 0.0);
          const int64_t at = ((n * d.k + k) * P + p) * Q + q;
          y[at] = acc;
          if (magnitude != nullptr) magnitude[at] = mag;
        }
      }
    }
  }
}

Comparison compare(const float* got, const double* want, const double* magnitude, int64_t count) {
  Comparison c;
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(got[i])) {
      if (c.non_finite++ == 0) c.worst_index = i;
      continue;
    }
    const double abs_err = std::fabs(static_cast<double>(got[i]) - want[i]);
    // An all-zero window (magnitude 0) must give exactly 0.
    const double rel_err = magnitude[i] > 0 ? abs_err / magnitude[i] : (abs_err > 0 ? 1.0 : 0.0);
    c.max_abs_error = std::max(c.max_abs_error, abs_err);
    if (rel_err > c.max_rel_error) {
      c.max_rel_error = rel_err;
      if (c.non_finite == 0) c.worst_index = i;
    }
  }
  return c;
}

}  // namespace sparkle
