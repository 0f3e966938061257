// GL objects behind the sparkle device API: SSBOs, fenced dispatches, plans.
#include "gl_device.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

#include "gl_queue.hpp"

namespace sparkle::opengl {

using plugin::Error;

namespace {

// Tensors are indexed with 32-bit ints in GLSL; keep a margin for the
// out-of-range indices that tile edges compute (and never dereference).
constexpr int64_t kMaxElements = (int64_t{1} << 31) - (int64_t{1} << 20);

std::string field(const char* name, int64_t v) {
  return std::string(name) + "=" + std::to_string(v);
}

void check_desc(const sparkle_conv2d_desc& d) {
  auto bad = [](const std::string& why) { throw Error(SPARKLE_INVALID_ARGUMENT, why); };
  if (d.struct_size < sizeof(sparkle_conv2d_desc)) {
    bad("conv2d desc struct_size=" + std::to_string(d.struct_size) + " is smaller than " +
        std::to_string(sizeof(sparkle_conv2d_desc)));
  }
  const std::pair<const char*, int64_t> positive[] = {{"n", d.n},
                                                      {"c", d.c},
                                                      {"h", d.h},
                                                      {"w", d.w},
                                                      {"k", d.k},
                                                      {"r", d.r},
                                                      {"s", d.s},
                                                      {"stride_h", d.stride_h},
                                                      {"stride_w", d.stride_w},
                                                      {"dilation_h", d.dilation_h},
                                                      {"dilation_w", d.dilation_w},
                                                      {"groups", d.groups},
                                                      {"out_h", d.out_h},
                                                      {"out_w", d.out_w}};
  for (const auto& [name, v] : positive) {
    if (v <= 0) bad(field(name, v) + " must be >= 1");
  }
  const std::pair<const char*, int64_t> pads[] = {{"pad_top", d.pad_top},
                                                  {"pad_left", d.pad_left},
                                                  {"pad_bottom", d.pad_bottom},
                                                  {"pad_right", d.pad_right}};
  for (const auto& [name, v] : pads) {
    if (v < 0) bad(field(name, v) + " must be >= 0");
  }
  if (d.c % d.groups != 0) bad(field("groups", d.groups) + " does not divide " + field("C", d.c));
  if (d.k % d.groups != 0) bad(field("groups", d.groups) + " does not divide " + field("K", d.k));
  const int64_t oh =
      (d.h + d.pad_top + d.pad_bottom - d.dilation_h * (d.r - 1) - 1) / d.stride_h + 1;
  const int64_t ow =
      (d.w + d.pad_left + d.pad_right - d.dilation_w * (d.s - 1) - 1) / d.stride_w + 1;
  if (oh != d.out_h || ow != d.out_w) {
    bad("out_h x out_w=" + std::to_string(d.out_h) + "x" + std::to_string(d.out_w) +
        " does not match the descriptor (" + std::to_string(oh) + "x" + std::to_string(ow) + ")");
  }
}

// a*b*c*d, or -1 on overflow of int64.
int64_t product(std::initializer_list<int64_t> v) {
  int64_t p = 1;
  for (int64_t x : v) {
    if (x != 0 && p > std::numeric_limits<int64_t>::max() / x) return -1;
    p *= x;
  }
  return p;
}

}  // namespace

// ---- GlBuffer ---------------------------------------------------------------

GlBuffer::GlBuffer(std::shared_ptr<GlContext> ctx, size_t bytes, sparkle_memory_kind kind)
    : ctx_(std::move(ctx)), bytes_(bytes) {
  if (kind != SPARKLE_MEMORY_DEVICE && kind != SPARKLE_MEMORY_UPLOAD &&
      kind != SPARKLE_MEMORY_READBACK)
    throw Error(SPARKLE_INVALID_ARGUMENT, "unknown memory kind " + std::to_string(kind));
  // Buffers are bound whole as shader storage blocks, so a larger one could
  // never be used; NVIDIA would also accept a 1 TiB request without error.
  const auto limit = static_cast<uint64_t>(ctx_->info().max_ssbo_block_bytes);
  if (bytes > limit) {
    throw Error(SPARKLE_OUT_OF_MEMORY,
                "buffer of " + std::to_string(bytes) + " bytes exceeds " + ctx_->info().renderer +
                    "'s largest shader storage block (GL_MAX_SHADER_STORAGE_BLOCK_SIZE = " +
                    std::to_string(limit) + ")");
  }
  struct Made {
    GLuint id;
    void* mapped;
  };
  const Made made = ctx_->call([bytes, kind](GlContext& c) {
    const auto& gl = c.gl();
    clear_gl_errors(gl);
    GLuint id = 0;
    gl.CreateBuffers(1, &id);
    const auto size = static_cast<GLsizeiptr>(std::max<size_t>(bytes, 4));
    void* mapped = nullptr;
    if (kind == SPARKLE_MEMORY_DEVICE) {
      // Immutable storage: the driver places it in device memory up front
      // (mutable GL_DYNAMIC_* buffers were seen to migrate, which made
      // kernel times vary threefold on NVIDIA).
      gl.NamedBufferStorage(id, size, nullptr, GL_DYNAMIC_STORAGE_BIT);
    } else {
      // Staging in client memory, mapped once for good (as yuzu and
      // Dolphin do): the copy engines reach PCIe speed from it, and a
      // coherent mapping needs no flushes, only the fences the host waits
      // on anyway.
      const GLbitfield access =
          (kind == SPARKLE_MEMORY_UPLOAD ? GL_MAP_WRITE_BIT : GL_MAP_READ_BIT) |
          GL_MAP_PERSISTENT_BIT | GL_MAP_COHERENT_BIT;
      gl.NamedBufferStorage(id, size, nullptr, access | GL_CLIENT_STORAGE_BIT);
      mapped = gl.MapNamedBufferRange(id, 0, size, access);
    }
    try {
      check_gl(gl, ("allocating a " + std::to_string(bytes) + "-byte buffer").c_str());
      if (kind != SPARKLE_MEMORY_DEVICE && mapped == nullptr)
        throw Error(SPARKLE_DEVICE_ERROR, "mapping a staging buffer failed");
    } catch (...) {
      gl.DeleteBuffers(1, &id);
      clear_gl_errors(gl);
      throw;
    }
    // Other contexts of the share group (transfer queues) may use it next.
    gl.Flush();
    return Made{id, mapped};
  });
  id_ = made.id;
  mapped_ = made.mapped;
}

GlBuffer::~GlBuffer() {
  GLuint id = id_;
  // Queued behind any dispatch that still uses the buffer; no need to wait.
  // Deleting a mapped buffer unmaps it.
  ctx_->submit([id](GlContext& c) { c.gl().DeleteBuffers(1, &id); });
}

void GlBuffer::check_range(size_t offset, size_t bytes, const char* what) const {
  if (offset > bytes_ || bytes > bytes_ - offset) {
    throw Error(SPARKLE_INVALID_ARGUMENT, std::string(what) + " of " + std::to_string(bytes) +
                                              " bytes at offset " + std::to_string(offset) +
                                              " exceeds the buffer's " + std::to_string(bytes_));
  }
}

void GlBuffer::upload(size_t offset, const void* src, size_t bytes) {
  check_range(offset, bytes, "upload");
  if (bytes == 0) return;
  // In order with the dispatches on the main context; a dispatch's timer
  // query starts after the copy, so kernel times stay clean without a
  // glFinish here.
  ctx_->call([&](GlContext& c) {
    c.gl().NamedBufferSubData(id_, static_cast<GLintptr>(offset), static_cast<GLsizeiptr>(bytes),
                              src);
    check_gl(c.gl(), "buffer upload");
  });
}

void GlBuffer::download(size_t offset, void* dst, size_t bytes) {
  check_range(offset, bytes, "download");
  if (bytes == 0) return;
  ctx_->call([&](GlContext& c) {
    c.gl().GetNamedBufferSubData(id_, static_cast<GLintptr>(offset), static_cast<GLsizeiptr>(bytes),
                                 dst);
    check_gl(c.gl(), "buffer download");
  });
}

// ---- GlFence ----------------------------------------------------------------

namespace {

// Owner's GL thread: reads the timer (the work is complete) and frees it.
void read_timer(GlContext& c, FenceState& st) {
  if (st.query == 0) return;
  GLuint64 ns = 0;
  c.gl().GetQueryObjectui64v(st.query, GL_QUERY_RESULT, &ns);
  c.gl().DeleteQueries(1, &st.query);
  st.query = 0;
  st.elapsed_ns = static_cast<int64_t>(ns);
}

// Owner's GL thread, without EGL syncs: waits for the GL sync.
void finish_fence(GlContext& c, FenceState& st) {
  const auto& gl = c.gl();
  if (st.sync != nullptr) {
    GLenum r;
    do {
      r = gl.ClientWaitSync(st.sync, GL_SYNC_FLUSH_COMMANDS_BIT, 1000000000ull);
    } while (r == GL_TIMEOUT_EXPIRED);
    gl.DeleteSync(st.sync);
    st.sync = nullptr;
    if (r == GL_WAIT_FAILED) {
      clear_gl_errors(gl);
      throw Error(SPARKLE_DEVICE_ERROR, "glClientWaitSync failed");
    }
  }
  read_timer(c, st);
  st.complete = true;
}

void free_fence(GlContext& c, FenceState& st) {
  if (st.sync != nullptr) c.gl().DeleteSync(st.sync);
  if (st.query != 0) c.gl().DeleteQueries(1, &st.query);
  st.sync = nullptr;
  st.query = 0;
}

}  // namespace

FenceState::~FenceState() {
  if (egl_sync != EGL_NO_SYNC) eglDestroySync(display, egl_sync);
}

GlFence::GlFence(std::shared_ptr<GlContext> owner, const GlContext* group,
                 std::shared_ptr<FenceState> state)
    : owner_(std::move(owner)), group_(group), state_(std::move(state)) {}

GlFence::~GlFence() {
  // A timer query or GL sync of its own belongs to the owner's thread; freed
  // there, after the issuing closure (the queue is FIFO). With EGL syncs and
  // the timer ring there is neither, and no trip to that thread.
  if (state_->submitted.valid() &&
      state_->submitted.wait_for(std::chrono::seconds(0)) == std::future_status::ready &&
      state_->sync == nullptr && state_->query == 0)
    return;
  owner_->submit([st = state_](GlContext& c) { free_fence(c, *st); });
}

bool GlFence::poll() {
  if (state_->submitted.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
    return false;
  state_->submitted.get();  // a failed op throws: the trampoline reports "ready"
  if (state_->complete) return true;
  if (state_->egl_sync != EGL_NO_SYNC) {
    if (eglClientWaitSync(state_->display, state_->egl_sync, 0, 0) != EGL_CONDITION_SATISFIED)
      return false;
    state_->complete = true;
    return true;
  }
  return owner_->call([st = state_](GlContext& c) {
    if (st->sync != nullptr) {
      GLenum r = c.gl().ClientWaitSync(st->sync, GL_SYNC_FLUSH_COMMANDS_BIT, 0);
      if (r == GL_TIMEOUT_EXPIRED) return false;
    }
    finish_fence(c, *st);
    return true;
  });
}

void GlFence::wait() {
  state_->submitted.get();
  if (state_->complete) return;
  if (state_->egl_sync != EGL_NO_SYNC) {
    // On the caller's thread: the GL threads keep issuing meanwhile.
    const EGLint r = eglClientWaitSync(state_->display, state_->egl_sync, 0, EGL_FOREVER);
    if (r != EGL_CONDITION_SATISFIED)
      throw Error(SPARKLE_DEVICE_ERROR, "eglClientWaitSync failed (" + std::to_string(r) + ")");
    state_->complete = true;
    return;
  }
  owner_->call([st = state_](GlContext& c) { finish_fence(c, *st); });
}

int64_t GlFence::elapsed_ns() {
  if (!state_->complete) return -1;
  if (state_->elapsed_ns < 0 && state_->timer_result != nullptr)
    state_->elapsed_ns = static_cast<int64_t>(*state_->timer_result);
  if (state_->elapsed_ns < 0) owner_->call([st = state_](GlContext& c) { read_timer(c, *st); });
  return state_->elapsed_ns;
}

// ---- GlPlan -----------------------------------------------------------------

GlPlan::GlPlan(std::shared_ptr<GlContext> ctx, const sparkle_conv2d_desc& desc,
               std::shared_ptr<const ConvProgram> program)
    : ctx_(std::move(ctx)), desc_(desc), program_(std::move(program)) {}

std::array<GLuint, 4> GlPlan::buffer_ids(plugin::Buffer* x, plugin::Buffer* w, plugin::Buffer* bias,
                                         plugin::Buffer* y) const {
  const auto& d = desc_;
  struct Arg {
    const char* name;
    plugin::Buffer* buffer;
    int64_t elements;
  };
  const Arg args[] = {{"x", x, d.n * d.c * d.h * d.w},
                      {"w", w, d.k * (d.c / d.groups) * d.r * d.s},
                      {"bias", d.has_bias ? bias : nullptr, d.has_bias ? d.k : 0},
                      {"y", y, d.n * d.k * d.out_h * d.out_w}};
  std::array<GLuint, 4> ids = {0, 0, 0, 0};
  for (int i = 0; i < 4; ++i) {
    if (args[i].elements == 0) continue;
    auto* b = dynamic_cast<GlBuffer*>(args[i].buffer);
    if (b == nullptr) {
      throw Error(SPARKLE_INVALID_ARGUMENT,
                  std::string(args[i].name) + " is missing or not an OpenGL buffer");
    }
    if (b->context() != ctx_.get()) {
      throw Error(SPARKLE_INVALID_ARGUMENT,
                  std::string(args[i].name) + " belongs to another OpenGL device");
    }
    const size_t need = static_cast<size_t>(args[i].elements) * sizeof(float);
    if (b->size() < need) {
      throw Error(SPARKLE_INVALID_ARGUMENT, std::string(args[i].name) + " has " +
                                                std::to_string(b->size()) + " bytes, desc needs " +
                                                std::to_string(need));
    }
    ids[i] = b->id();
  }
  return ids;
}

std::function<void(GlContext&)> GlPlan::recorder(const std::array<GLuint, 4>& ids) const {
  // The closure holds the program (its passes, programs and workspaces):
  // a plan destroyed before it runs cannot delete them under it.
  const std::shared_ptr<const ConvProgram> program = program_;
  return [program, ids](GlContext& c) {
    program->record(c, ids.data());
    // Later dispatches and copies (on any context of the group) see y, and
    // so does the host once the fence signals when y is mapped staging.
    c.gl().MemoryBarrier(GL_SHADER_STORAGE_BARRIER_BIT | GL_BUFFER_UPDATE_BARRIER_BIT |
                         GL_CLIENT_MAPPED_BUFFER_BARRIER_BIT);
  };
}

std::unique_ptr<plugin::Fence> GlPlan::enqueue(plugin::Buffer* x, plugin::Buffer* w,
                                               plugin::Buffer* bias, plugin::Buffer* y) {
  GlQueue queue(ctx_, ctx_);
  return queue.conv2d(this, x, w, bias, y, {});
}

// ---- GlDevice ---------------------------------------------------------------

void GlDevice::check_supported(const sparkle_conv2d_desc& d) {
  check_desc(d);
  if (const std::string why = index_range_problem(d); !why.empty())
    throw Error(SPARKLE_UNSUPPORTED, why);
  const GlInfo& info = ctx_->info();
  const struct {
    const char* name;
    int64_t elements;
  } tensors[] = {{"x", product({d.n, d.c, d.h, d.w})},
                 {"w", product({d.k, d.c / d.groups, d.r, d.s})},
                 {"y", product({d.n, d.k, d.out_h, d.out_w})}};
  for (const auto& t : tensors) {
    if (t.elements < 0 || t.elements > kMaxElements) {
      throw Error(
          SPARKLE_UNSUPPORTED,
          std::string(t.name) + " has " +
              (t.elements < 0 ? std::string("more than 2^63") : std::to_string(t.elements)) +
              " elements; the OpenGL backend indexes with 32-bit ints (at most " +
              std::to_string(kMaxElements) + ")");
    }
    if (t.elements * 4 > info.max_ssbo_block_bytes) {
      throw Error(SPARKLE_UNSUPPORTED,
                  std::string(t.name) + " needs " + std::to_string(t.elements * 4) +
                      " bytes, above GL_MAX_SHADER_STORAGE_BLOCK_SIZE (" +
                      std::to_string(info.max_ssbo_block_bytes) + ") on " + info.renderer);
    }
  }
}

std::unique_ptr<plugin::Buffer> GlDevice::create_buffer(size_t bytes) {
  return std::make_unique<GlBuffer>(ctx_, bytes);
}

std::unique_ptr<plugin::Buffer> GlDevice::create_buffer_ex(const sparkle_buffer_desc& desc) {
  return std::make_unique<GlBuffer>(ctx_, desc.bytes, static_cast<sparkle_memory_kind>(desc.kind));
}

std::unique_ptr<plugin::Queue> GlDevice::create_queue(uint32_t flags) {
  if ((flags & SPARKLE_QUEUE_TRANSFER) != 0 && transfer_queues_enabled(ctx_->info())) {
    auto ctx = std::make_shared<GlContext>(
        *ctx_, ctx_->label() + " transfer " + std::to_string(++transfer_contexts_));
    plugin::log(SPARKLE_LOG_DEBUG, "transfer queue on a shared context: " + ctx->label());
    return std::make_unique<GlQueue>(std::move(ctx), ctx_);
  }
  return std::make_unique<GlQueue>(ctx_, ctx_);
}

std::unique_ptr<plugin::Plan> GlDevice::plan_conv2d(const sparkle_conv2d_desc& d) {
  check_supported(d);
  return std::make_unique<GlPlan>(ctx_, d, build_conv_program(ctx_, d, std::nullopt));
}

}  // namespace sparkle::opengl
