// The reference convolution: direct loops with float64 accumulation. It is
// deliberately simple and shares no code with any backend, so that tests and
// `sparkle-run conv2d --check` can judge the backends against it.
#pragma once

#include <sparkle/conv2d.hpp>
#include <vector>

namespace sparkle {

// y has desc.output_elements() entries. bias may be null when !desc.has_bias.
// magnitude, when not null, receives |bias| + sum |x * w| per output: the
// scale against which fp32 rounding error is judged (see compare()).
void reference_conv2d(const Conv2dDesc& desc, const float* x, const float* w, const float* bias,
                      double* y, double* magnitude = nullptr);

struct Comparison {
  double max_abs_error = 0;
  double max_rel_error = 0;  // see compare()
  int64_t worst_index = -1;
  int64_t non_finite = 0;  // NaN/Inf in got: unwritten (poisoned) elements land here
};

// Compares a result with the reference. The relative error of an element is
// |got - want| / magnitude, where magnitude = |bias| + sum |x * w| is the
// bound that any order of fp32 summation is proportional to. Dividing by
// |want| instead would flag correct results wherever the sum cancels to ~0.
Comparison compare(const float* got, const double* want, const double* magnitude, int64_t count);

}  // namespace sparkle
