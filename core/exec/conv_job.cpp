// ConvJob's dispatch and completion (see conv_job.hpp).
#include "exec/conv_job.hpp"

#include "exec/parallel_copy.hpp"

namespace sparkle::exec {

namespace {

double ms_of(const FenceRef& f) {
  const int64_t ns = f ? f->elapsed_ns() : -1;
  return ns >= 0 ? static_cast<double>(ns) * 1e-6 : -1;
}

double since_ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

std::vector<FenceRef> ConvJob::dispatch(Executor& ex) {
  std::vector<FenceRef> conv_waits;
  auto bring = [&](ConvInput& in) {
    if (in.tensor) in.tensor->read_dependencies(conv_waits);
    FenceRef f;
    if (in.from == ConvInput::From::staging)
      f = ex.copy(QueueRole::upload, in.source, in.source_offset, in.buffer, 0, in.bytes, {});
    else if (in.from == ConvInput::From::host)
      f = ex.write(QueueRole::upload, in.buffer, 0, in.host, in.bytes, {});
    if (f) {
      uploads_.push_back(f);
      conv_waits.push_back(f);
    }
  };
  bring(w_.x);
  bring(w_.w);
  if (w_.has_bias) bring(w_.bias);
  if (w_.y.tensor) w_.y.tensor->write_dependencies(conv_waits);

  conv_ = ex.conv2d(w_.plan->handle, w_.x.buffer, w_.w.buffer,
                    w_.has_bias ? w_.bias.buffer : nullptr, w_.y.buffer, conv_waits);
  for (ConvInput* in : {&w_.x, &w_.w, &w_.bias})
    if (in->tensor) in->tensor->record_read(conv_);
  if (w_.y.tensor) w_.y.tensor->record_write(conv_);

  const FenceRef after_conv[] = {conv_};
  if (w_.y.to == ConvOutput::To::staging)
    download_ = ex.copy(QueueRole::download, w_.y.buffer, 0, w_.y.target, w_.y.target_offset,
                        w_.y.bytes, after_conv);
  else if (w_.y.to == ConvOutput::To::host)
    download_ = ex.read(QueueRole::download, w_.y.buffer, 0, w_.y.host, w_.y.bytes, after_conv);

  std::vector<FenceRef> all = uploads_;
  all.push_back(conv_);
  if (download_) all.push_back(download_);
  return all;
}

void ConvJob::finish(const Status& status) noexcept {
  Status st = status;
  RunResult r;
  ConvTimes t;
  try {
    // A resident operand whose writer failed holds garbage.
    const std::pair<const char*, ConvInput*> inputs[] = {
        {"x", &w_.x}, {"w", &w_.w}, {"bias", &w_.bias}};
    for (const auto& [name, in] : inputs) {
      if (!in->tensor || !st.ok()) continue;
      const Status ws = in->tensor->writer_status();
      if (!ws.ok())
        st = {std::string(name) + " was written by a call that failed: " + ws.message, ws.code};
    }
    double copy_back_ms = 0;
    if (st.ok() && w_.y.copy_back_to != nullptr) {
      const auto start = std::chrono::steady_clock::now();
      parallel_copy(w_.y.copy_back_to, w_.y.copy_back_from, w_.y.bytes);
      copy_back_ms = since_ms(start);
    }
    if (w_.y.tensor) w_.y.tensor->set_writer_status(st);

    r.device = w_.device->name();
    r.kernel = w_.plan->kernel;
    r.wall_ms = since_ms(w_.submitted);
    t.compute_ms = ms_of(conv_);
    r.device_ms = t.compute_ms;
    if (!uploads_.empty()) {
      double up = w_.staging_ms;
      for (const auto& f : uploads_) up += std::max(ms_of(f), 0.0);
      t.upload_ms = r.upload_ms = up;
      for (ConvInput* in : {&w_.x, &w_.w, &w_.bias})
        if (in->from != ConvInput::From::none) t.upload_bytes += in->bytes;
    }
    if (download_) {
      t.download_ms = r.download_ms = std::max(ms_of(download_), 0.0) + copy_back_ms;
      t.download_bytes = w_.y.bytes;
    }
    if (t.compute_ms < 0) {
      // No device timer: the call's wall time less its transfers.
      t.compute_ms =
          r.wall_ms - std::max(t.upload_ms, 0.0) - std::max(t.download_ms, 0.0) - w_.staging_ms;
    }
    if (w_.on_finish) w_.on_finish(st, t);
  } catch (const std::exception& e) {
    if (st.ok()) st = {e.what(), SPARKLE_INTERNAL};
  } catch (...) {
    if (st.ok()) st = {"unknown failure finishing a convolution", SPARKLE_INTERNAL};
  }
  // A dispatch that failed half-way may have left copies running: the
  // buffers they use go back to the pools only once those are done.
  for (const auto& f : uploads_) f->wait();
  if (conv_) conv_->wait();
  if (download_) download_->wait();
  // Buffers go back to their pools before the caller hears of it, so that
  // its next call finds them.
  w_.leases.clear();
  if (w_.future) {
    if (st.ok())
      w_.future->complete(std::move(r));
    else
      w_.future->fail(st);
  }
}

}  // namespace sparkle::exec
