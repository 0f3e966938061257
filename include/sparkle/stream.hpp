// sparkle::Stream: one convolution applied to a stream of batches with the
// weights kept on the device and several batches in flight, so that the
// upload of batch i+1 and the readback of batch i-1 overlap the compute of
// batch i (Engine::stream).
#pragma once

#include <memory>
#include <span>
#include <sparkle/future.hpp>
#include <sparkle/run.hpp>
#include <string>

namespace sparkle {

namespace exec {
class StreamState;
}

// How a stream's batches reach a device that has staging memory.
enum class StreamTransfer {
  copy,    // staging -> device memory, convolution, device memory -> staging;
           // the copies may overlap other batches' compute if the device
           // runs its queues concurrently
  direct,  // the convolution reads its input from staging and writes its
           // output there (zero-copy over the bus): nothing to overlap
};

struct StreamOptions {
  // Device choice: auto (the fastest for this op with host data), one
  // device, or several ("all", or a comma-separated list such as
  // "cpu,opengl:0"): each batch then goes to the device expected to finish
  // it first, and futures still complete in submission order.
  RunOptions run;
  int slots = 3;  // batches in flight, each with its own device buffers
  StreamTransfer transfer = StreamTransfer::copy;
};

class Stream {
 public:
  Stream();
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  ~Stream();  // waits for the work in flight

  // Queues y = conv(x) for one batch. x and y must hold the descriptor's
  // input and output elements and stay valid until the future completes;
  // blocks only while every slot is busy. Inputs and outputs in HostMemory
  // of the stream's device move without an extra copy (for
  // StreamTransfer::direct, a span must start at its HostMemory's start).
  Future submit(std::span<const float> x, std::span<float> y);
  // Waits for every batch submitted so far.
  void drain();

  const std::string& device() const;
  int slots() const;

  explicit Stream(std::unique_ptr<exec::StreamState> state);

 private:
  std::unique_ptr<exec::StreamState> state_;
};

}  // namespace sparkle
