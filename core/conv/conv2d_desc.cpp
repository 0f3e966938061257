// Validation and shape math of Conv2dDesc. Every message names the field.
#include <limits>
#include <sparkle/conv2d.hpp>
#include <sparkle/error.hpp>
#include <sstream>

namespace sparkle {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw Error(ErrorCode::invalid_argument, message);
}

void require_positive(const char* field, int64_t value) {
  if (value <= 0) fail(std::string(field) + "=" + std::to_string(value) + " must be > 0");
}

void require_non_negative(const char* field, int64_t value) {
  if (value < 0) fail(std::string(field) + "=" + std::to_string(value) + " must be >= 0");
}

// a * b, or an error naming `what` when it leaves int64.
int64_t checked_mul(int64_t a, int64_t b, const std::string& what) {
  int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) fail(what + " overflows int64");
  return out;
}

int64_t checked_add(int64_t a, int64_t b, const std::string& what) {
  int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) fail(what + " overflows int64");
  return out;
}

// Elements of a tensor, checked so that its byte size also fits.
int64_t checked_elements(std::initializer_list<int64_t> dims, const std::string& tensor) {
  int64_t count = 1;
  for (int64_t d : dims) count = checked_mul(count, d, tensor + " element count");
  checked_mul(count, static_cast<int64_t>(sizeof(float)), tensor + " byte size");
  return count;
}

// Effective extent of a dilated filter: d * (r - 1) + 1.
int64_t dilated_extent(int64_t r, int64_t d, const char* field) {
  return checked_add(checked_mul(d, r - 1, field), 1, field);
}

}  // namespace

void Conv2dDesc::validate() const {
  require_positive("n", n);
  require_positive("c", c);
  require_positive("h", h);
  require_positive("w", w);
  require_positive("k", k);
  require_positive("r", r);
  require_positive("s", s);
  require_positive("stride_h", stride_h);
  require_positive("stride_w", stride_w);
  require_non_negative("pad_top", pad_top);
  require_non_negative("pad_left", pad_left);
  require_non_negative("pad_bottom", pad_bottom);
  require_non_negative("pad_right", pad_right);
  require_positive("dilation_h", dilation_h);
  require_positive("dilation_w", dilation_w);
  require_positive("groups", groups);
  if (c % groups != 0)
    fail("groups=" + std::to_string(groups) + " does not divide C=" + std::to_string(c));
  if (k % groups != 0)
    fail("groups=" + std::to_string(groups) + " does not divide K=" + std::to_string(k));

  const int64_t padded_h =
      checked_add(checked_add(h, pad_top, "h + padding"), pad_bottom, "h + padding");
  const int64_t padded_w =
      checked_add(checked_add(w, pad_left, "w + padding"), pad_right, "w + padding");
  const int64_t extent_h = dilated_extent(r, dilation_h, "dilation_h * (r - 1)");
  const int64_t extent_w = dilated_extent(s, dilation_w, "dilation_w * (s - 1)");
  if (padded_h < extent_h)
    fail("output height would be <= 0: padded height " + std::to_string(padded_h) +
         " < dilated filter height " + std::to_string(extent_h));
  if (padded_w < extent_w)
    fail("output width would be <= 0: padded width " + std::to_string(padded_w) +
         " < dilated filter width " + std::to_string(extent_w));

  checked_elements({n, c, h, w}, "input");
  checked_elements({k, c / groups, r, s}, "weights");
  checked_elements({n, k, out_h(), out_w()}, "output");
  // The work itself (FLOPs as an integer) must be countable too.
  checked_mul(checked_elements({n, k, out_h(), out_w()}, "output"),
              checked_elements({c / groups, r, s}, "filter window"), "n*k*p*q*(c/g)*r*s");
}

int64_t Conv2dDesc::out_h() const {
  return (h + pad_top + pad_bottom - dilation_h * (r - 1) - 1) / stride_h + 1;
}

int64_t Conv2dDesc::out_w() const {
  return (w + pad_left + pad_right - dilation_w * (s - 1) - 1) / stride_w + 1;
}

double Conv2dDesc::flops() const {
  return 2.0 * static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(out_h()) *
         static_cast<double>(out_w()) * static_cast<double>(c / groups) * static_cast<double>(r) *
         static_cast<double>(s);
}

std::string Conv2dDesc::to_string() const {
  std::ostringstream o;
  o << "n" << n << "c" << c << "h" << h << "w" << w << "_k" << k << "r" << r << "s" << s << "_st"
    << stride_h << "x" << stride_w << "_p" << pad_top << "." << pad_left << "." << pad_bottom << "."
    << pad_right << "_d" << dilation_h << "x" << dilation_w << "_g" << groups << "_b"
    << (has_bias ? 1 : 0) << "_r" << (relu ? 1 : 0);
  return o.str();
}

sparkle_conv2d_desc Conv2dDesc::to_c() const {
  sparkle_conv2d_desc d{};
  d.struct_size = sizeof(d);
  d.n = n;
  d.c = c;
  d.h = h;
  d.w = w;
  d.k = k;
  d.r = r;
  d.s = s;
  d.stride_h = stride_h;
  d.stride_w = stride_w;
  d.pad_top = pad_top;
  d.pad_left = pad_left;
  d.pad_bottom = pad_bottom;
  d.pad_right = pad_right;
  d.dilation_h = dilation_h;
  d.dilation_w = dilation_w;
  d.groups = groups;
  d.has_bias = has_bias ? 1 : 0;
  d.relu = relu ? 1 : 0;
  d.out_h = out_h();
  d.out_w = out_w();
  return d;
}

const char* to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::invalid_argument:
      return "invalid argument";
    case ErrorCode::unsupported:
      return "unsupported";
    case ErrorCode::out_of_memory:
      return "out of memory";
    case ErrorCode::device_error:
      return "device error";
    case ErrorCode::not_found:
      return "not found";
    case ErrorCode::io_error:
      return "I/O error";
    case ErrorCode::internal:
      return "internal error";
  }
  return "unknown error";
}

}  // namespace sparkle
