// A conv2d kernel variant made ready to run: the compiled program of every
// pass, the workspaces they share, and the GL commands of one call. GlPlan
// (gl_device.hpp) owns one and calls record() on the GL thread between its
// fence and timer commands; this file owns what the commands are.
#pragma once

#include <sparkle/plugin.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "conv2d_kernels.hpp"
#include "gl_context.hpp"
#include "program_cache.hpp"

namespace sparkle::opengl {

class ConvProgram {
 public:
  // Compiles every pass through compile_program() (so through both cache
  // levels) and allocates the workspaces. Any thread but the GL thread.
  // Throws the compile error (kernel name and driver log) or
  // SPARKLE_OUT_OF_MEMORY for a workspace the device refuses.
  ConvProgram(std::shared_ptr<GlContext> ctx, ConvKernel kernel);
  ~ConvProgram();
  ConvProgram(const ConvProgram&) = delete;
  ConvProgram& operator=(const ConvProgram&) = delete;

  const std::string& name() const { return name_; }

  // GL thread: binds and dispatches every pass in order, with a storage
  // barrier between passes. io = {x, w, bias, y} buffer names (bias 0 when
  // the descriptor has none). Grids larger than the driver's (or
  // SPARKLE_GL_DISPATCH_LIMIT's) per-dimension limit run as several
  // dispatches with a u_group_offset uniform: work is never dropped.
  void record(GlContext& c, const GLuint io[4]) const;

 private:
  struct CompiledPass {
    ProgramPtr program;
    uint64_t groups = 0;
    Slot bind[4];
  };
  std::shared_ptr<GlContext> ctx_;
  std::string name_;
  std::vector<CompiledPass> passes_;
  std::vector<GLuint> workspaces_;
  uint64_t max_x_ = 0, max_y_ = 0;
};

// The program of variant `index` of list_variants(d), or with nullopt the
// first guess. A first guess that fails to compile falls back to the naive
// kernel with a warning, unless a kernel was forced (SPARKLE_GL_*); an
// explicit index never falls back (SPARKLE_UNSUPPORTED with the reason).
// Work groups per grid dimension: the driver's limit, or less under
// SPARKLE_GL_DISPATCH_LIMIT (throws plugin::Error naming it when bad).
uint64_t dispatch_limit(int64_t driver_limit);

std::shared_ptr<const ConvProgram> build_conv_program(const std::shared_ptr<GlContext>& ctx,
                                                      const sparkle_conv2d_desc& d,
                                                      std::optional<size_t> index);

}  // namespace sparkle::opengl
