// Planning through the tuner's records (see tuned_plan.hpp).
#include "tune/tuned_plan.hpp"

#include <cstdlib>
#include <mutex>
#include <set>
#include <sparkle/tune.hpp>

#include "log/log.hpp"
#include "registry/plugin_registry.hpp"
#include "tune/tuning_store.hpp"

namespace sparkle {
namespace tune {

namespace {

bool records_disabled() {
  const char* v = std::getenv("SPARKLE_TUNING_DISABLE");
  return v != nullptr && std::string(v) == "1";
}

void warn_once(const std::string& what) {
  static std::mutex m;
  static std::set<std::string> seen;
  std::lock_guard<std::mutex> lock(m);
  if (seen.insert(what).second) log::warn("tune", what);
}

}  // namespace

std::string op_signature(const sparkle_conv2d_desc& d) {
  auto i = [](int64_t v) { return std::to_string(v); };
  return "n" + i(d.n) + "c" + i(d.c) + "h" + i(d.h) + "w" + i(d.w) + "_k" + i(d.k) + "r" + i(d.r) +
         "s" + i(d.s) + "_st" + i(d.stride_h) + "x" + i(d.stride_w) + "_p" + i(d.pad_top) + "." +
         i(d.pad_left) + "." + i(d.pad_bottom) + "." + i(d.pad_right) + "_d" + i(d.dilation_h) +
         "x" + i(d.dilation_w) + "_g" + i(d.groups) + "_b" + i(d.has_bias ? 1 : 0) + "_r" +
         i(d.relu ? 1 : 0) + "_f" + i(d.flags);
}

bool has_variants(const sparkle_plugin* api) {
  return api != nullptr && api->conv2d_variant_count != nullptr &&
         api->conv2d_variant_info != nullptr && api->plan_conv2d_variant != nullptr;
}

long find_variant(const sparkle_plugin* api, sparkle_device device, const sparkle_conv2d_desc& d,
                  const std::string& name) {
  if (!has_variants(api)) return -1;
  const size_t count = api->conv2d_variant_count(device, &d);
  for (size_t i = 0; i < count; ++i) {
    sparkle_variant_info info{};
    info.struct_size = sizeof info;
    sparkle_status st = api->conv2d_variant_info(device, &d, i, &info);
    if (st != nullptr) {
      registry::take_message(st);
      continue;
    }
    if (info.name != nullptr && name == info.name) return static_cast<long>(i);
  }
  return -1;
}

sparkle_status plan_conv2d(const sparkle_plugin* api, sparkle_device device,
                           const std::string& fingerprint, const sparkle_conv2d_desc& d,
                           sparkle_plan* out, bool* tuned) {
  if (tuned != nullptr) *tuned = false;
  if (has_variants(api) && !records_disabled()) {
    const std::string op = op_signature(d);
    const auto record = TuningStore::instance().find(
        api->name, api->build_id != nullptr ? api->build_id : "", fingerprint, op);
    if (record) {
      const long index = find_variant(api, device, d, record->winner);
      if (index < 0) {
        warn_once(std::string(api->name) + ": tuned variant " + record->winner + " for " + op +
                  " is not offered any more (SPARKLE_GL_* restrictions?); using the default");
      } else {
        sparkle_status st = api->plan_conv2d_variant(device, &d, static_cast<size_t>(index), out);
        if (st == nullptr) {
          if (tuned != nullptr) *tuned = true;
          return nullptr;
        }
        warn_once(std::string(api->name) + ": tuned variant " + record->winner + " for " + op +
                  " failed to plan (" + registry::take_message(st) + "); using the default");
      }
    }
  }
  return api->plan_conv2d(device, &d, out);
}

}  // namespace tune

std::optional<double> tuned_median_ms(const std::string& fingerprint, const Conv2dDesc& desc,
                                      uint32_t flags) {
  sparkle_conv2d_desc c = desc.to_c();
  c.flags = flags;
  const auto r = tune::TuningStore::instance().find_any_build(fingerprint, tune::op_signature(c));
  if (!r || r->winner_ms <= 0) return std::nullopt;
  return r->winner_ms;
}

}  // namespace sparkle
