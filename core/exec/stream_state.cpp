// The stream ring (see stream_state.hpp) and sparkle::Stream over it.
#include "exec/stream_state.hpp"

#include <chrono>
#include <sparkle/error.hpp>
#include <sparkle/stream.hpp>

#include "exec/host_memory.hpp"
#include "exec/parallel_copy.hpp"

namespace sparkle {
namespace exec {

namespace {
struct Wrapped {
  Wrapped(std::shared_ptr<DeviceRuntime> d, sparkle_buffer b) : device(std::move(d)), buffer(b) {}
  Wrapped(const Wrapped&) = delete;
  Wrapped& operator=(const Wrapped&) = delete;
  ~Wrapped() { device->destroy(buffer); }
  std::shared_ptr<DeviceRuntime> device;
  sparkle_buffer buffer;
};
sparkle_buffer_desc desc_of(sparkle_memory_kind kind, size_t bytes) {
  sparkle_buffer_desc d{};
  d.struct_size = sizeof d;
  d.kind = kind;
  d.bytes = bytes;
  return d;
}
}  // namespace

DeviceStream::Slot::Slot(const std::shared_ptr<DeviceRuntime>& dev, size_t x_bytes, size_t y_bytes,
                         bool staged)
    : device(dev) {
  if (x_bytes == 0) return;  // host-memory device: batches are aliased, not copied
  try {
    dx = device->create(desc_of(SPARKLE_MEMORY_DEVICE, x_bytes), "stream input");
    dy = device->create(desc_of(SPARKLE_MEMORY_DEVICE, y_bytes), "stream output");
    if (staged) {
      up = device->create(desc_of(SPARKLE_MEMORY_UPLOAD, x_bytes), "stream upload staging");
      down = device->create(desc_of(SPARKLE_MEMORY_READBACK, y_bytes), "stream readback staging");
      up_ptr = device->map(up, "stream upload staging");
      down_ptr = device->map(down, "stream readback staging");
    }
  } catch (...) {
    for (sparkle_buffer b : {dx, dy, up, down})
      if (b != nullptr) device->destroy(b);
    throw;
  }
}

DeviceStream::Slot::~Slot() {
  for (sparkle_buffer b : {dx, dy, up, down})
    if (b != nullptr) device->destroy(b);
}

DeviceStream::DeviceStream(std::shared_ptr<DeviceRuntime> device, PlanRef plan,
                           const Conv2dDesc& desc, std::shared_ptr<TensorState> w,
                           std::shared_ptr<TensorState> bias, int slots, StreamTransfer transfer,
                           Recorder recorder)
    : device_(std::move(device)),
      plan_(std::move(plan)),
      desc_(desc),
      w_(std::move(w)),
      bias_(std::move(bias)),
      recorder_(std::move(recorder)),
      x_bytes_(static_cast<size_t>(desc.input_elements()) * sizeof(float)),
      y_bytes_(static_cast<size_t>(desc.output_elements()) * sizeof(float)),
      staged_(device_->executor().asynchronous() && device_->has_staging()),
      direct_(staged_ && transfer == StreamTransfer::direct && !device_->host_memory()) {
  // Host-memory devices alias each batch's arrays: their slots hold nothing.
  const bool aliased = device_->host_memory();
  for (int i = 0; i < slots; ++i)
    slots_.push_back(
        std::make_shared<Slot>(device_, aliased ? 0 : x_bytes_, aliased ? 0 : y_bytes_, staged_));
}

DeviceStream::~DeviceStream() { drain(); }

void DeviceStream::wait_done(const std::shared_ptr<FutureState>& f) {
  if (!f) return;
  std::unique_lock lock(f->mutex);
  f->cv.wait(lock, [&] { return f->done; });
}

void DeviceStream::drain() {
  std::lock_guard lock(mutex_);
  for (auto& s : slots_) wait_done(s->last);
}

Future DeviceStream::submit(std::span<const float> x, std::span<float> y) {
  if (x.size() * sizeof(float) != x_bytes_)
    throw Error(ErrorCode::invalid_argument, "x has " + std::to_string(x.size()) +
                                                 " elements, desc needs " +
                                                 std::to_string(desc_.input_elements()));
  if (y.size() * sizeof(float) != y_bytes_)
    throw Error(ErrorCode::invalid_argument, "y has " + std::to_string(y.size()) +
                                                 " elements, desc needs " +
                                                 std::to_string(desc_.output_elements()));
  std::lock_guard lock(mutex_);
  std::shared_ptr<Slot> slot = slots_[next_++ % slots_.size()];
  wait_done(slot->last);  // the slot's buffers are free once its last batch finished

  ConvWork work;
  work.device = device_;
  work.plan = plan_;
  work.has_bias = desc_.has_bias;
  work.future = std::make_shared<FutureState>();
  work.keep.push_back(slot);
  work.on_finish = recorder_;
  work.w.tensor = w_;
  work.w.buffer = w_->buffer;
  work.w.bytes = w_->bytes;
  if (bias_) {
    work.bias.tensor = bias_;
    work.bias.buffer = bias_->buffer;
    work.bias.bytes = bias_->bytes;
  }
  ConvInput& in = work.x;
  ConvOutput& out = work.y;
  in.bytes = x_bytes_;
  out.bytes = y_bytes_;
  if (device_->host_memory()) {
    in.buffer = device_->wrap(x.data(), x_bytes_);
    out.buffer = device_->wrap(y.data(), y_bytes_);
    if (in.buffer == nullptr || out.buffer == nullptr)
      throw Error(ErrorCode::device_error, device_->name() + ": cannot alias the batch's memory");
    work.keep.push_back(std::make_shared<Wrapped>(device_, in.buffer));
    work.keep.push_back(std::make_shared<Wrapped>(device_, out.buffer));
  } else {
    in.buffer = slot->dx;
    out.buffer = slot->dy;
    if (!staged_) {
      in.from = ConvInput::From::host;
      in.host = x.data();
      out.to = ConvOutput::To::host;
      out.host = y.data();
    } else if (direct_) {
      // The convolution itself reads staging and writes staging: bound as
      // whole buffers, so engine-owned memory is used in place only where a
      // span starts at its buffer's start.
      auto hx = find_host_memory(x.data(), x_bytes_);
      if (hx && hx->buffer && hx->device == device_ && hx->use == HostUse::upload &&
          hx->data == x.data()) {
        in.buffer = hx->buffer;
        work.keep.push_back(hx);
      } else {
        in.buffer = slot->up;
        const auto start = std::chrono::steady_clock::now();
        parallel_copy(slot->up_ptr, x.data(), x_bytes_);
        work.staging_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count();
      }
      auto hy = find_host_memory(y.data(), y_bytes_);
      if (hy && hy->buffer && hy->device == device_ && hy->use == HostUse::readback &&
          hy->data == y.data()) {
        out.buffer = hy->buffer;
        work.keep.push_back(hy);
      } else {
        out.buffer = slot->down;
        out.copy_back_from = slot->down_ptr;
        out.copy_back_to = y.data();
      }
    } else {
      in.from = ConvInput::From::staging;
      if (auto hm = find_host_memory(x.data(), x_bytes_);
          hm && hm->buffer && hm->device == device_ && hm->use == HostUse::upload) {
        in.source = hm->buffer;
        in.source_offset = static_cast<size_t>(reinterpret_cast<const char*>(x.data()) -
                                               reinterpret_cast<const char*>(hm->data));
        work.keep.push_back(hm);
      } else {
        in.source = slot->up;
        const auto start = std::chrono::steady_clock::now();
        parallel_copy(slot->up_ptr, x.data(), x_bytes_);
        work.staging_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count();
      }
      out.to = ConvOutput::To::staging;
      if (auto hm = find_host_memory(y.data(), y_bytes_);
          hm && hm->buffer && hm->device == device_ && hm->use == HostUse::readback) {
        out.target = hm->buffer;
        out.target_offset = static_cast<size_t>(reinterpret_cast<const char*>(y.data()) -
                                                reinterpret_cast<const char*>(hm->data));
        work.keep.push_back(hm);
      } else {
        out.target = slot->down;
        out.copy_back_from = slot->down_ptr;
        out.copy_back_to = y.data();
      }
    }
  }
  slot->last = work.future;
  Future f(work.future);
  device_->executor().submit(std::make_unique<ConvJob>(std::move(work)));
  return f;
}

// ---- JuggledStream ----------------------------------------------------------

JuggledStream::JuggledStream(std::vector<std::unique_ptr<DeviceStream>> parts,
                             std::vector<double> ms_per_batch)
    : parts_(std::move(parts)),
      in_flight_(parts_.size(), 0),
      ms_(std::move(ms_per_batch)),
      last_done_(parts_.size()) {
  for (size_t i = 0; i < parts_.size(); ++i) name_ += (i ? "+" : "") + parts_[i]->device();
  ms_.resize(parts_.size(), 1.0);
  for (auto& m : ms_)
    if (!(m > 0)) m = 1.0;
}

JuggledStream::~JuggledStream() { drain(); }

int JuggledStream::slots() const {
  int n = 0;
  for (const auto& p : parts_) n += p->slots();
  return n;
}

Future JuggledStream::submit(std::span<const float> x, std::span<float> y) {
  std::lock_guard turn(submit_mutex_);
  size_t best = 0;
  {
    std::lock_guard lock(mutex_);
    // Expected finish of a new batch on each part: its queue plus this one.
    double best_ms = 0;
    for (size_t i = 0; i < parts_.size(); ++i) {
      const double finish = (in_flight_[i] + 1) * ms_[i];
      if (i == 0 || finish < best_ms) best = i, best_ms = finish;
    }
    ++in_flight_[best];
  }
  auto p = std::make_shared<Pending>();
  p->part = best;
  p->outer = std::make_shared<FutureState>();
  Future inner;
  try {
    inner = parts_[best]->submit(x, y);  // may wait for one of its slots
  } catch (...) {
    std::lock_guard lock(mutex_);
    --in_flight_[best];
    throw;
  }
  {
    std::lock_guard lock(mutex_);
    order_.push_back(p);
  }
  p->inner = inner.state();
  p->inner->on_done([this, p] { finished(p); });
  return Future(p->outer);
}

void JuggledStream::finished(const std::shared_ptr<Pending>& p) {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  const size_t i = p->part;
  --in_flight_[i];
  // Time per batch: the gap between completions while the part stays busy,
  // else the batch's own wall time.
  double ms = p->inner->result.wall_ms;
  if (last_done_[i].time_since_epoch().count() != 0 && in_flight_[i] > 0)
    ms = std::chrono::duration<double, std::milli>(now - last_done_[i]).count();
  last_done_[i] = now;
  if (ms > 0) ms_[i] = 0.7 * ms_[i] + 0.3 * ms;
  p->ready = true;
  // Release in submission order.
  while (!order_.empty() && order_.front()->ready) {
    auto head = order_.front();
    order_.pop_front();
    if (head->inner->status.ok())
      head->outer->complete(head->inner->result);
    else
      head->outer->fail(head->inner->status);
  }
}

void JuggledStream::drain() {
  std::lock_guard turn(submit_mutex_);
  for (auto& part : parts_) part->drain();
  std::vector<std::shared_ptr<FutureState>> outer;
  {
    std::lock_guard lock(mutex_);
    for (auto& p : order_) outer.push_back(p->outer);
  }
  for (auto& f : outer) {
    std::unique_lock lock(f->mutex);
    f->cv.wait(lock, [&] { return f->done; });
  }
  // The last finished() may still be returning after completing them.
  std::lock_guard lock(mutex_);
}

}  // namespace exec

Stream::Stream(std::unique_ptr<exec::StreamState> state) : state_(std::move(state)) {}
Stream::Stream() = default;
Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;
Stream::~Stream() = default;

namespace {
exec::StreamState& require(const std::unique_ptr<exec::StreamState>& s) {
  if (!s)
    throw Error(ErrorCode::invalid_argument, "stream is empty (default-constructed or moved)");
  return *s;
}
}  // namespace

Future Stream::submit(std::span<const float> x, std::span<float> y) {
  return require(state_).submit(x, y);
}
void Stream::drain() { require(state_).drain(); }
const std::string& Stream::device() const { return require(state_).device(); }
int Stream::slots() const { return require(state_).slots(); }

}  // namespace sparkle
