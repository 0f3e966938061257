// Engine-owned staging memory and its address index (see host_memory.hpp).
#include "exec/host_memory.hpp"

#include <cstdlib>
#include <map>
#include <shared_mutex>
#include <sparkle/error.hpp>
#include <sparkle/memory.hpp>

namespace sparkle::exec {

namespace {

struct Index {
  std::shared_mutex mutex;
  std::map<uintptr_t, std::weak_ptr<HostMemoryState>> by_start;
};

Index& index() {
  static Index i;
  return i;
}

}  // namespace

HostMemoryState::HostMemoryState(std::shared_ptr<DeviceRuntime> dev, size_t n, HostUse u)
    : device(std::move(dev)), use(u), elements(n) {
  if (n == 0) throw Error(ErrorCode::invalid_argument, "host memory elements=0 must be >= 1");
  if (n > (size_t{1} << 60) / sizeof(float))
    throw Error(ErrorCode::invalid_argument,
                "host memory elements=" + std::to_string(n) + " is too large");
  if (!device->has_staging()) {
    // Nothing faster to offer: ordinary memory, aligned for vector loads.
    const size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    check_host_budget(device->name() + " host memory", bytes);
    data = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (data == nullptr)
      throw Error(ErrorCode::out_of_memory,
                  "host memory of " + std::to_string(bytes) + " bytes: out of memory");
    return;
  }
  sparkle_buffer_desc desc{};
  desc.struct_size = sizeof desc;
  desc.kind = u == HostUse::upload ? SPARKLE_MEMORY_UPLOAD : SPARKLE_MEMORY_READBACK;
  desc.bytes = n * sizeof(float);
  buffer = device->create(desc, "host memory of " + std::to_string(desc.bytes) + " bytes");
  try {
    data = static_cast<float*>(device->map(buffer, "host memory"));
  } catch (...) {
    device->destroy(buffer);
    throw;
  }
}

HostMemoryState::~HostMemoryState() {
  {
    auto& i = index();
    std::unique_lock lock(i.mutex);
    auto it = i.by_start.find(reinterpret_cast<uintptr_t>(data));
    if (it != i.by_start.end() && it->second.expired()) i.by_start.erase(it);
  }
  if (buffer != nullptr)
    device->destroy(buffer);
  else
    std::free(data);
}

void register_host_memory(const std::shared_ptr<HostMemoryState>& m) {
  auto& i = index();
  std::unique_lock lock(i.mutex);
  i.by_start[reinterpret_cast<uintptr_t>(m->data)] = m;
}

std::shared_ptr<HostMemoryState> find_host_memory(const void* data, size_t bytes) {
  if (data == nullptr) return nullptr;
  const auto p = reinterpret_cast<uintptr_t>(data);
  auto& i = index();
  std::shared_lock lock(i.mutex);
  auto it = i.by_start.upper_bound(p);
  if (it == i.by_start.begin()) return nullptr;
  --it;
  auto m = it->second.lock();
  if (!m) return nullptr;
  const uintptr_t end = it->first + m->elements * sizeof(float);
  if (p + bytes > end || p + bytes < p) return nullptr;
  return m;
}

}  // namespace sparkle::exec
