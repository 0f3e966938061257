// Selection policy:
//  - estimate = cost-model prediction x learned correction (EMA, alpha 0.3);
//  - drift: three measurements in a row more than 2x away from the estimate
//    replace the correction outright (driver change, thermal state...), and
//    so does one explored measurement that far away;
//  - exploration: a device whose estimate is rho times the best one is
//    re-measured once kExplorePeriod * rho calls in that bucket have passed
//    since it was last measured. Each exploration costs at most
//    (rho - 1) x best, once per kExplorePeriod * rho calls: under
//    1 / kExplorePeriod (4%) of the total however slow the device is;
//  - first look: a device with no measurement in a bucket, estimated within
//    3x of the best, is tried once from the bucket's second call on;
//  - split: a batch is divided across devices in proportion to their
//    estimated throughput when that is predicted at least 15% faster.
#include "select/selector.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "cache/cache_dir.hpp"
#include "log/log.hpp"

namespace sparkle::select {
namespace {

constexpr double kAlpha = 0.3;
constexpr double kDriftFactor = 2.0;
constexpr int kDriftCount = 3;
constexpr double kExplorePeriod = 25;
constexpr double kFirstLookFactor = 3;
constexpr double kSplitGain = 0.85;
// JSON (nlohmann). Version 3: models of resident operands, with the call
// overhead and learned host-device transfer rates beside them.
constexpr const char* kProfileFormat = "sparkle-selector-profile 3";

std::string fmt_ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g ms", ms);
  return buf;
}

std::string ratio_text(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", r);
  return buf;
}

}  // namespace

Selector::Selector(std::string profile_path) : path_(std::move(profile_path)) { load(); }

void Selector::load() {
  if (path_.empty()) return;
  std::string text;
  if (!cache::read_file(path_, &text)) return;  // first run
  std::map<std::string, DeviceModel> models;
  std::map<std::string, TransferModel> transfers;
  std::map<std::pair<std::string, std::string>, Learned> learned;
  // Every value is checked: a profile is data from disk, and a bad number
  // must not steer the selector (a corrupt file is rebuilt, never trusted).
  auto finite = [](const nlohmann::json& v, double min) {
    if (!v.is_number()) throw std::runtime_error("not a number");
    const double d = v.get<double>();
    if (!std::isfinite(d) || d < min) throw std::runtime_error("out of range");
    return d;
  };
  try {
    const auto j = nlohmann::json::parse(text);
    if (j.at("format").get<std::string>() != kProfileFormat)
      throw std::runtime_error("another format");
    for (const auto& [fp, m] : j.at("models").items()) {
      DeviceModel d;
      d.latency_ms = finite(m.at("latency_ms"), 0);
      d.gflops = finite(m.at("gflops"), 1e-12);
      d.gbps = finite(m.at("gbps"), 1e-12);
      d.overhead_ms = finite(m.at("overhead_ms"), 0);
      models[fp] = d;
    }
    for (const auto& [fp, t] : j.at("transfers").items()) {
      TransferModel m;
      m.upload_gbps = finite(t.at("upload_gbps"), 0);
      m.download_gbps = finite(t.at("download_gbps"), 0);
      transfers[fp] = m;
    }
    for (const auto& e : j.at("learned")) {
      Learned l;
      l.correction = finite(e.at("correction"), 1e-12);
      l.samples = static_cast<int>(finite(e.at("samples"), 0));
      learned[{e.at("device").get<std::string>(), e.at("bucket").get<std::string>()}] = l;
    }
  } catch (const std::exception&) {
    log::warn("select", "ignoring corrupt selector profile " + path_ + "; it will be rebuilt");
    return;
  }
  models_ = std::move(models);
  transfers_ = std::move(transfers);
  learned_ = std::move(learned);
}

bool Selector::save() {
  std::lock_guard lock(mutex_);
  if (path_.empty() || !dirty_) return true;
  nlohmann::json j;
  j["format"] = kProfileFormat;
  j["models"] = nlohmann::json::object();
  j["transfers"] = nlohmann::json::object();
  j["learned"] = nlohmann::json::array();
  for (const auto& [fp, m] : models_)
    j["models"][fp] = {{"latency_ms", m.latency_ms},
                       {"gflops", m.gflops},
                       {"gbps", m.gbps},
                       {"overhead_ms", m.overhead_ms}};
  for (const auto& [fp, t] : transfers_)
    j["transfers"][fp] = {{"upload_gbps", t.upload_gbps}, {"download_gbps", t.download_gbps}};
  for (const auto& [key, l] : learned_)
    j["learned"].push_back({{"device", key.first},
                            {"bucket", key.second},
                            {"correction", l.correction},
                            {"samples", l.samples}});
  std::string why;
  // Fingerprints come from plugins: invalid UTF-8 is replaced, not thrown.
  const std::string text = j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (!cache::write_file_atomically(path_, text, &why)) {
    log::warn("select", "cannot save selector profile: " + why);
    return false;
  }
  dirty_ = false;
  return true;
}

bool Selector::has_model(const std::string& fp) const {
  std::lock_guard lock(mutex_);
  return models_.count(fp) != 0;
}

void Selector::set_model(const std::string& fp, const DeviceModel& model,
                         const TransferModel& transfers) {
  std::lock_guard lock(mutex_);
  models_[fp] = model;
  transfers_[fp] = transfers;
  dirty_ = true;
}

void Selector::record_transfer(const std::string& fp, double upload_bytes, double upload_ms,
                               double download_bytes, double download_ms) {
  std::lock_guard lock(mutex_);
  auto t = transfers_.find(fp);
  if (t == transfers_.end()) return;
  // Small transfers are dominated by fixed costs already in the overhead.
  constexpr double kMinBytes = 1 << 20;
  auto learn = [](double& rate, double bytes, double ms) {
    if (bytes < kMinBytes || !(ms > 0) || !std::isfinite(ms) || rate <= 0) return;
    const double measured = bytes / (ms * 1e6);
    rate = std::exp((1 - kAlpha) * std::log(rate) + kAlpha * std::log(measured));
  };
  learn(t->second.upload_gbps, upload_bytes, upload_ms);
  learn(t->second.download_gbps, download_bytes, download_ms);
  dirty_ = true;
}

double Selector::transfer_estimate_ms(const std::string& fp, double upload_bytes,
                                      double download_bytes) const {
  std::lock_guard lock(mutex_);
  auto t = transfers_.find(fp);
  return t == transfers_.end() ? 0 : transfer_ms(t->second, upload_bytes, download_bytes);
}

double Selector::estimate_locked(const std::string& fp, const OpSignature& op, int* samples) const {
  auto m = models_.find(fp);
  if (m == models_.end()) {
    if (samples) *samples = 0;
    return 1e9;
  }
  const double predicted = predict_ms(m->second, op);
  auto l = learned_.find({fp, op.bucket});
  if (samples) *samples = l != learned_.end() ? l->second.samples : 0;
  return m->second.overhead_ms +
         (l != learned_.end() ? predicted * l->second.correction : predicted);
}

double Selector::estimate_ms(const std::string& fp, const Conv2dDesc& d, int* samples) const {
  std::lock_guard lock(mutex_);
  return estimate_locked(fp, signature_of(d), samples);
}

void Selector::record(const std::string& fp, const Conv2dDesc& d, double measured_ms,
                      bool explored) {
  if (!(measured_ms > 0) || !std::isfinite(measured_ms)) return;
  const OpSignature op = signature_of(d);
  std::lock_guard lock(mutex_);
  auto m = models_.find(fp);
  if (m == models_.end()) return;
  const double ratio = measured_ms / predict_ms(m->second, op);
  Learned& l = learned_[{fp, op.bucket}];
  const double estimate = l.samples > 0 ? l.correction : 1.0;
  const bool outlier = ratio > estimate * kDriftFactor || ratio < estimate / kDriftFactor;
  l.outliers = outlier ? l.outliers + 1 : 0;
  if (l.samples == 0 || l.outliers >= kDriftCount || (explored && outlier)) {
    l.correction = ratio;  // first sample, or the device changed: re-learn
    l.outliers = 0;
  } else {
    // EMA in log space, so that a single wild sample moves it by a bounded
    // factor rather than by its (possibly huge) absolute size.
    l.correction = std::exp((1 - kAlpha) * std::log(l.correction) + kAlpha * std::log(ratio));
  }
  ++l.samples;
  l.last_measured_at = bucket_calls_[op.bucket];
  dirty_ = true;
}

Choice Selector::choose(const std::vector<Candidate>& candidates, const Conv2dDesc& d,
                        bool allow_split) {
  const OpSignature op = signature_of(d);
  std::lock_guard lock(mutex_);
  const int64_t call = ++bucket_calls_[op.bucket];
  Choice choice;
  struct Scored {
    size_t index;
    double ms;
    int samples;
  };
  std::vector<Scored> scored;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!candidates[i].unsupported.empty()) continue;
    int samples = 0;
    scored.push_back(
        {i, estimate_locked(candidates[i].fingerprint, op, &samples) + candidates[i].transfer_ms,
         samples});
  }
  if (scored.empty()) return choice;
  std::sort(scored.begin(), scored.end(), [](auto& a, auto& b) { return a.ms < b.ms; });
  const Scored best = scored.front();
  size_t pick = best.index;

  // First look: from the second call in a bucket on, a device never measured
  // there is tried once if the model puts it within kFirstLookFactor of the
  // best, so that a pessimistic prior cannot hide a faster device for long.
  // Bounded: once per (device, bucket), at most kFirstLookFactor x one call.
  if (call >= 2) {
    for (size_t i = 1; i < scored.size() && !choice.explored; ++i) {
      if (scored[i].samples == 0 && scored[i].ms <= kFirstLookFactor * best.ms) {
        pick = scored[i].index;
        choice.explored = true;
      }
    }
  }

  // Exploration: the most overdue device, if any is due.
  const bool first_look = choice.explored;
  double most_overdue = 1.0;
  for (size_t i = 1; i < scored.size(); ++i) {
    const auto& s = scored[i];
    const double rho = s.ms / std::max(best.ms, 1e-9);
    auto l = learned_.find({candidates[s.index].fingerprint, op.bucket});
    const int64_t since = call - (l != learned_.end() ? l->second.last_measured_at : 0);
    const double overdue = static_cast<double>(since) / (kExplorePeriod * rho);
    if (!first_look && overdue >= most_overdue) {
      most_overdue = overdue;
      pick = s.index;
      choice.explored = true;
    }
  }

  // Split the batch when the estimates say it pays.
  if (allow_split && !choice.explored && d.n >= 2 && scored.size() >= 2) {
    double rate_sum = 0;
    std::vector<double> rates;
    for (const auto& s : scored) {
      rates.push_back(static_cast<double>(d.n) / s.ms);
      rate_sum += rates.back();
    }
    std::vector<std::pair<size_t, int64_t>> parts;
    int64_t given = 0;
    for (size_t i = 0; i < scored.size(); ++i) {
      const int64_t share = std::llround(static_cast<double>(d.n) * rates[i] / rate_sum);
      const int64_t images = std::min(share, d.n - given);
      if (images > 0) parts.emplace_back(scored[i].index, images);
      given += images;
    }
    if (given < d.n && !parts.empty()) parts.front().second += d.n - given;
    std::sort(parts.begin(), parts.end());  // device order: stable names and slices
    if (parts.size() >= 2) {
      double split_ms = 0;
      for (const auto& [index, images] : parts) {
        Conv2dDesc piece = d;
        piece.n = images;
        // Transfers scale with the images a device takes.
        const double share = static_cast<double>(images) / static_cast<double>(d.n);
        split_ms = std::max(
            split_ms, estimate_locked(candidates[index].fingerprint, signature_of(piece), nullptr) +
                          share * candidates[index].transfer_ms);
      }
      if (split_ms < kSplitGain * best.ms) {
        choice.parts = parts;
        std::string what = "split:";
        for (const auto& [index, images] : parts)
          what += " " + candidates[index].name + " x" + std::to_string(images);
        choice.explanation.push_back(what + ", predicted " + fmt_ms(split_ms) + " vs " +
                                     fmt_ms(best.ms) + " on " + candidates[best.index].name);
      }
    }
  }
  if (choice.parts.empty()) choice.parts.emplace_back(pick, d.n);

  for (size_t i = 0; i < candidates.size(); ++i) {
    const auto& c = candidates[i];
    std::string line = "  " + c.name + ": ";
    if (!c.unsupported.empty()) {
      choice.explanation.push_back(line + "unsupported (" + c.unsupported + ")");
      continue;
    }
    const auto s =
        std::find_if(scored.begin(), scored.end(), [&](auto& x) { return x.index == i; });
    line += (s->samples > 0 ? "learned " : "predicted ") + fmt_ms(s->ms) +
            (s->samples > 0 ? " (" + std::to_string(s->samples) + " samples" : " (cost model");
    line += c.transfer_ms > 0 ? ", transfers " + fmt_ms(c.transfer_ms) + ")" : ")";
    const bool chosen = std::any_of(choice.parts.begin(), choice.parts.end(),
                                    [&](auto& p) { return p.first == i; });
    if (chosen && choice.explored)
      line += " - explored: re-measuring a device not measured for a while";
    else if (chosen && choice.parts.size() > 1)
      line += " - part of the split";
    else if (chosen)
      line += " - won: lowest estimate";
    else if (i == best.index)
      line += " - lowest estimate, but this call explores another device";
    else
      line += " - lost: " + ratio_text(s->ms / std::max(best.ms, 1e-9)) + " the best estimate";
    choice.explanation.push_back(line);
  }
  std::string selected = "selected: ";
  for (size_t p = 0; p < choice.parts.size(); ++p)
    selected += (p ? "+" : "") + candidates[choice.parts[p].first].name;
  choice.explanation.push_back(selected);
  return choice;
}

}  // namespace sparkle::select
