// Which SIMD instruction set the CPU kernels use: the best one the processor
// has, or the one SPARKLE_CPU_ISA forces.
#pragma once

#include <string>

namespace sparkle::cpu {

enum class Isa { portable, avx2, avx512 };

const char* isa_name(Isa isa);

// True when this processor (and its OS) can run code built for isa.
bool cpu_has(Isa isa);

// The best ISA the processor supports.
Isa best_isa();

// SPARKLE_CPU_ISA when set, else best_isa(). Throws plugin::Error:
// INVALID_ARGUMENT for an unknown name, UNSUPPORTED for an ISA this CPU lacks.
Isa selected_isa();

}  // namespace sparkle::cpu
