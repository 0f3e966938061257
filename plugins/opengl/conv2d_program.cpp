// Compiling a variant's passes, its workspaces, and the GL commands of one
// call; plus the OpenGL device's variant hooks of the plugin ABI (1.4).
#include "conv2d_program.hpp"

#include <algorithm>
#include <utility>

#include "../common/env.hpp"
#include "conv2d_variants.hpp"
#include "gl_caps.hpp"
#include "gl_device.hpp"

namespace sparkle::opengl {

using plugin::Error;

// SPARKLE_GL_DISPATCH_LIMIT caps work groups per grid dimension below the
// driver's limit, so tests can exercise split dispatches on small tensors.
uint64_t dispatch_limit(int64_t driver_limit) {
  uint64_t limit = driver_limit > 0 ? static_cast<uint64_t>(driver_limit) : 65535;
  if (const auto cap = gpu::env_int("SPARKLE_GL_DISPATCH_LIMIT", 1, INT64_MAX)) {
    limit = std::min<uint64_t>(limit, static_cast<uint64_t>(*cap));
  }
  return limit;
}

namespace {

GLuint slot_buffer(Slot s, const GLuint io[4], const std::vector<GLuint>& ws) {
  switch (s) {
    case Slot::kNone:
      return 0;
    case Slot::kX:
      return io[0];
    case Slot::kW:
      return io[1];
    case Slot::kBias:
      return io[2];
    case Slot::kY:
      return io[3];
    default: {
      const size_t i = static_cast<size_t>(s) - static_cast<size_t>(Slot::kWs0);
      return i < ws.size() ? ws[i] : 0;
    }
  }
}

}  // namespace

ConvProgram::ConvProgram(std::shared_ptr<GlContext> ctx, ConvKernel kernel)
    : ctx_(std::move(ctx)), name_(std::move(kernel.name)) {
  max_x_ = dispatch_limit(ctx_->info().max_count[0]);
  max_y_ = dispatch_limit(ctx_->info().max_count[1]);
  for (Pass& p : kernel.passes) {
    CompiledPass cp;
    cp.program = compile_program(*ctx_, p.name, p.source);
    cp.groups = p.groups;
    std::copy(std::begin(p.bind), std::end(p.bind), std::begin(cp.bind));
    passes_.push_back(std::move(cp));
  }
  const auto limit = static_cast<uint64_t>(ctx_->info().max_ssbo_block_bytes);
  for (uint64_t bytes : kernel.workspace_bytes) {
    if (bytes > limit) {
      throw Error(SPARKLE_OUT_OF_MEMORY, name_ + ": workspace of " + std::to_string(bytes) +
                                             " bytes exceeds the largest storage block (" +
                                             std::to_string(limit) + ")");
    }
  }
  if (!kernel.workspace_bytes.empty()) {
    workspaces_ = ctx_->call([&](GlContext& c) {
      const auto& gl = c.gl();
      clear_gl_errors(gl);
      std::vector<GLuint> ids(kernel.workspace_bytes.size(), 0);
      gl.CreateBuffers(static_cast<GLsizei>(ids.size()), ids.data());
      for (size_t i = 0; i < ids.size(); ++i) {
        // Written and read by the GPU only: immutable storage, no client bits.
        gl.NamedBufferStorage(
            ids[i], static_cast<GLsizeiptr>(std::max<uint64_t>(kernel.workspace_bytes[i], 4)),
            nullptr, 0);
      }
      try {
        check_gl(gl, ("allocating the workspaces of " + name_).c_str());
      } catch (...) {
        gl.DeleteBuffers(static_cast<GLsizei>(ids.size()), ids.data());
        clear_gl_errors(gl);
        throw;
      }
      return ids;
    });
  }
}

ConvProgram::~ConvProgram() {
  if (workspaces_.empty()) return;
  // Queued behind any dispatch that still uses them; no need to wait.
  ctx_->submit([ids = workspaces_](GlContext& c) {
    c.gl().DeleteBuffers(static_cast<GLsizei>(ids.size()), ids.data());
  });
}

void ConvProgram::record(GlContext& c, const GLuint io[4]) const {
  const auto& gl = c.gl();
  for (size_t p = 0; p < passes_.size(); ++p) {
    const CompiledPass& pass = passes_[p];
    if (p > 0) gl.MemoryBarrier(GL_SHADER_STORAGE_BARRIER_BIT);
    for (GLuint b = 0; b < 4; ++b) {
      const GLuint id = slot_buffer(pass.bind[b], io, workspaces_);
      if (id != 0) gl.BindBufferBase(GL_SHADER_STORAGE_BUFFER, b, id);
    }
    const GLuint prog = pass.program->id();
    gl.UseProgram(prog);
    const uint64_t gx = std::min<uint64_t>(pass.groups, max_x_);
    const uint64_t rows = (pass.groups + gx - 1) / gx;
    for (uint64_t row = 0; row < rows;) {
      const uint64_t gy = std::min(max_y_, rows - row);
      gl.ProgramUniform1ui(prog, 0, static_cast<GLuint>(row * gx));
      gl.DispatchCompute(static_cast<GLuint>(gx), static_cast<GLuint>(gy), 1);
      row += gy;
    }
  }
}

std::shared_ptr<const ConvProgram> build_conv_program(const std::shared_ptr<GlContext>& ctx,
                                                      const sparkle_conv2d_desc& d,
                                                      std::optional<size_t> index) {
  const GlInfo& info = ctx->info();
  const GlCaps& caps = caps_of(*ctx);
  const std::vector<Variant> list = list_variants(d, info, caps);
  if (index) {
    if (*index >= list.size()) {
      throw Error(SPARKLE_NOT_FOUND, "variant " + std::to_string(*index) + " of " +
                                         std::to_string(list.size()) + " does not exist");
    }
    try {
      return std::make_shared<ConvProgram>(ctx,
                                           generate_kernel(d, list[*index].config, info, caps));
    } catch (const Error& e) {
      // The ABI's contract: a variant that cannot be built here is unsupported.
      throw Error(e.code() == SPARKLE_OUT_OF_MEMORY ? e.code() : SPARKLE_UNSUPPORTED, e.what());
    }
  }
  const Variant* chosen = &list.front();
  for (const Variant& v : list)
    if (v.info.is_default) chosen = &v;
  try {
    return std::make_shared<ConvProgram>(ctx, generate_kernel(d, chosen->config, info, caps));
  } catch (const Error& e) {
    // A first guess that does not build is dropped for the naive kernel,
    // unless the caller forced a kernel.
    if (kernel_forced() || chosen->config.algo == Algo::kNaive) throw;
    plugin::log(SPARKLE_LOG_WARN, std::string(e.what()) + "; falling back to the naive kernel");
    return std::make_shared<ConvProgram>(ctx, generate_kernel(d, KernelConfig{}, info, caps));
  }
}

// ---- GlDevice's variant hooks (plugin ABI 1.4) -------------------------------

std::vector<plugin::VariantInfo> GlDevice::conv2d_variants(const sparkle_conv2d_desc& d) {
  check_supported(d);
  std::vector<plugin::VariantInfo> out;
  for (Variant& v : list_variants(d, ctx_->info(), caps_of(*ctx_)))
    out.push_back(std::move(v.info));
  return out;
}

std::unique_ptr<plugin::Plan> GlDevice::plan_conv2d_variant(const sparkle_conv2d_desc& d,
                                                            size_t index) {
  check_supported(d);
  return std::make_unique<GlPlan>(ctx_, d, build_conv_program(ctx_, d, index));
}

}  // namespace sparkle::opengl
