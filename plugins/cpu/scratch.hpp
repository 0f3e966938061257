// Per-thread scratch memory reused across calls, so that a call does not
// page-fault fresh allocations every time.
#pragma once

#include <vector>

namespace sparkle::cpu {

// A per-thread buffer reused across calls (no page faults on every call).
// If the thread re-enters conv2d_gemm while the buffer is lent (it waits in
// a parallel loop and TBB hands it an outer task that calls us again), the
// nested call gets a buffer of its own.
template <class T, int kSlot>  // kSlot: independent buffers of the same type
class ScratchBuffer {
 public:
  ScratchBuffer() {
    auto& slot = lent();
    if (!slot) {
      slot = true;
      owner_ = &slot;
      buf_ = &cached();
    } else {
      buf_ = &own_;
    }
  }
  ~ScratchBuffer() {
    if (owner_ != nullptr) *owner_ = false;
  }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  std::vector<T>& get() { return *buf_; }

 private:
  static bool& lent() {
    thread_local bool b = false;
    return b;
  }
  static std::vector<T>& cached() {
    thread_local std::vector<T> v;
    return v;
  }
  std::vector<T> own_;
  std::vector<T>* buf_ = nullptr;
  bool* owner_ = nullptr;
};

}  // namespace sparkle::cpu
