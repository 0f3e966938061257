// The CPU backend's plan: one descriptor, run by one of several kernel kinds
// (the implicit GEMM of conv2d_gemm.hpp, the JIT direct convolution, or
// Winograd F(4x4) / F(2x2)), on operands in whatever layout their buffers
// hold (dense NCHW, or blocked channels on CPU tensors). The kind is chosen
// by measurement per operand layout (SPARKLE_CPU_KERNEL forces one).
#pragma once

#include <memory>
#include <sparkle/plugin.hpp>

#include "isa.hpp"

namespace sparkle::cpu {

enum class KernelKind { automatic, gemm, jit, winograd4, winograd2 };

// SPARKLE_CPU_KERNEL: auto (unset), gemm, jit, winograd4 or winograd2.
// Throws plugin::Error(INVALID_ARGUMENT) for another value.
KernelKind selected_kernel_kind();

// SPARKLE_CPU_VECTORIZE's orientation is read here too (for the GEMM).
std::unique_ptr<plugin::Plan> make_cpu_plan(const sparkle_conv2d_desc& d, Isa isa);

// Throws plugin::Error naming the variable for a bad value of any
// SPARKLE_CPU_* variable: at init (as SPARKLE_INVALID_ARGUMENT, so that no
// Engine starts) and in check_supported (a variable changed later).
void check_cpu_environment();

}  // namespace sparkle::cpu
