// The Xbyak generator of the direct-convolution kernels (see jit_conv.hpp)
// and the per-process kernel cache.
#include "jit_conv.hpp"

#include <atomic>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <sparkle/plugin.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(__x86_64__)
#define XBYAK_NO_OP_NAMES  // and/or/xor as mnemonics clash with the C++ alternative tokens
#include <xbyak/xbyak.h>
#endif

namespace sparkle::cpu {

int jit_vector_lanes(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return 16;
    case Isa::avx2:
      return 8;
    case Isa::portable:
      break;
  }
  return 0;
}

int jit_vector_registers(Isa isa) { return isa == Isa::avx512 ? 32 : 16; }

namespace {

std::atomic<int64_t> generated{0};

#if defined(__x86_64__)

using namespace Xbyak;

// Bytes from a float offset, checked to fit a 32-bit displacement.
int disp(int64_t floats) {
  const int64_t bytes = floats * 4;
  if (bytes > std::numeric_limits<int32_t>::max() || bytes < std::numeric_limits<int32_t>::min())
    throw plugin::Error(SPARKLE_UNSUPPORTED, "JIT conv: an offset exceeds 2 GiB");
  return static_cast<int>(bytes);
}

class Generator : public CodeGenerator {
 public:
  explicit Generator(const JitConvKey& k) : CodeGenerator(code_bytes(k), DontSetProtectRWE), k_(k) {
    if (k.isa == Isa::avx512) {
      emit<Zmm>();
    } else {
      emit<Ymm>();
    }
    setProtectModeRE();
  }

 private:
  static size_t code_bytes(const JitConvKey& k) {
    const size_t per_step = static_cast<size_t>(k.nb_oc + k.ur * (1 + k.nb_oc)) * 12;
    const size_t blocks = 1 + (k.ic_tail > 0 ? 1 : 0);
    return 8192 + blocks * static_cast<size_t>(k.s_taps) * static_cast<size_t>(k.icp) * per_step +
           static_cast<size_t>(k.ur * k.nb_oc) * 64;
  }

  template <class Vmm>
  Vmm acc(int jj, int ii) const {
    return Vmm(jj * k_.nb_oc + ii);
  }
  template <class Vmm>
  Vmm wreg(int ii) const {
    return Vmm(k_.ur * k_.nb_oc + ii);
  }
  template <class Vmm>
  Vmm bcast() const {
    return Vmm(jit_vector_registers(k_.isa) - 1);
  }
  int lanes() const { return jit_vector_lanes(k_.isa); }

  bool tap_exists(int jj, int s) const {
    const int col = jj * k_.sw + s * k_.dw;
    return col >= k_.lpad && (k_.room < 0 || col < k_.room);
  }

  template <class Vmm>
  void zero(const Vmm& v) {
    if constexpr (std::is_same_v<Vmm, Zmm>) {
      vpxord(v, v, v);
    } else {
      vxorps(v, v, v);
    }
  }

  // One input channel block of nic channels: the filter rows (a run-time
  // loop of kh) x taps x channels, unrolled but for the rows.
  template <class Vmm>
  void block(int nic) {
    const int64_t nbv = static_cast<int64_t>(k_.nb_oc) * lanes();
    const int64_t row_floats = static_cast<int64_t>(k_.s_taps) * k_.icp * nbv;
    Label rows, done;
    mov(aux_src, reg_src);
    mov(aux_wei, reg_wei);
    mov(reg_cnt, reg_kh);
    test(reg_cnt, reg_cnt);
    jz(done, T_NEAR);
    L(rows);
    for (int s = 0; s < k_.s_taps; ++s) {
      bool any = false;
      for (int jj = 0; jj < k_.ur; ++jj) any = any || tap_exists(jj, s);
      if (!any) continue;
      for (int ic = 0; ic < nic; ++ic) {
        const int64_t w_off = (static_cast<int64_t>(s) * k_.icp + ic) * nbv;
        for (int ii = 0; ii < k_.nb_oc; ++ii)
          vmovups(wreg<Vmm>(ii), ptr[aux_wei + disp(w_off + ii * lanes())]);
        // The weights are one sequential stream (rows, then blocks): fetch
        // the same taps one filter row ahead into L1, a cache line per
        // vector (AVX-512) or per two (AVX2).
        if (k_.prefetch)
          for (int ii = 0; ii < k_.nb_oc; ii += 16 / lanes())
            prefetcht0(ptr[aux_wei + disp(w_off + ii * lanes() + row_floats)]);
        for (int jj = 0; jj < k_.ur; ++jj) {
          if (!tap_exists(jj, s)) continue;
          const int64_t x_off =
              static_cast<int64_t>(jj * k_.sw + s * k_.dw) * k_.in_px + ic * k_.in_c;
          if (std::is_same_v<Vmm, Zmm> && k_.nb_oc == 1) {
            vfmadd231ps(acc<Vmm>(jj, 0), wreg<Vmm>(0), ptr_b[aux_src + disp(x_off)]);
          } else {
            vbroadcastss(bcast<Vmm>(), ptr[aux_src + disp(x_off)]);
            for (int ii = 0; ii < k_.nb_oc; ++ii)
              vfmadd231ps(acc<Vmm>(jj, ii), wreg<Vmm>(ii), bcast<Vmm>());
          }
        }
      }
    }
    add(aux_src, disp(k_.in_row));
    add(aux_wei, disp(static_cast<int64_t>(k_.s_taps) * k_.icp * nbv));
    dec(reg_cnt);
    jnz(rows, T_NEAR);
    L(done);
  }

  template <class Vmm>
  void emit() {
    const int64_t nbv = static_cast<int64_t>(k_.nb_oc) * lanes();
    const Reg64 saved[] = {rbx, r12, r13, r14, r15};
    for (const auto& r : saved) push(r);
    mov(reg_src, ptr[rdi + offsetof(JitConvArgs, src)]);
    mov(reg_wei, ptr[rdi + offsetof(JitConvArgs, wei)]);
    mov(reg_dst, ptr[rdi + offsetof(JitConvArgs, dst)]);
    mov(reg_bias, ptr[rdi + offsetof(JitConvArgs, bias)]);
    mov(reg_kh, ptr[rdi + offsetof(JitConvArgs, kh)]);
    mov(reg_icb, ptr[rdi + offsetof(JitConvArgs, icb)]);
    mov(reg_flags, ptr[rdi + offsetof(JitConvArgs, flags)]);

    // Start values: the bias (or 0) on the first call, else the partial sums.
    Label accumulate, started;
    test(reg_flags, 1);
    jz(accumulate, T_NEAR);
    for (int ii = 0; ii < k_.nb_oc; ++ii) {
      if (k_.bias) {
        vmovups(acc<Vmm>(0, ii), ptr[reg_bias + disp(ii * lanes())]);
      } else {
        zero(acc<Vmm>(0, ii));
      }
      for (int jj = 1; jj < k_.ur; ++jj) vmovaps(acc<Vmm>(jj, ii), acc<Vmm>(0, ii));
    }
    jmp(started, T_NEAR);
    L(accumulate);
    for (int jj = 0; jj < k_.ur; ++jj)
      for (int ii = 0; ii < k_.nb_oc; ++ii)
        vmovups(acc<Vmm>(jj, ii), ptr[reg_dst + disp(ii * k_.out_blk + jj * lanes())]);
    L(started);

    Label blocks, blocks_done;
    test(reg_icb, reg_icb);
    jz(blocks_done, T_NEAR);
    L(blocks);
    block<Vmm>(k_.icp);
    add(reg_src, disp(k_.in_blk));
    add(reg_wei, disp(k_.r_taps * k_.s_taps * k_.icp * nbv));
    dec(reg_icb);
    jnz(blocks, T_NEAR);
    L(blocks_done);
    if (k_.ic_tail > 0) {
      Label no_tail;
      test(reg_flags, 4);
      jz(no_tail, T_NEAR);
      block<Vmm>(k_.ic_tail);
      L(no_tail);
    }

    if (k_.relu) {
      Label no_relu;
      test(reg_flags, 2);
      jz(no_relu, T_NEAR);
      zero(bcast<Vmm>());
      for (int jj = 0; jj < k_.ur; ++jj)
        for (int ii = 0; ii < k_.nb_oc; ++ii)
          vmaxps(acc<Vmm>(jj, ii), acc<Vmm>(jj, ii), bcast<Vmm>());
      L(no_relu);
    }
    Label mask;
    if (k_.mask_lanes > 0) {
      // Padding lanes of the last block are stored as 0 whatever the sums
      // (an Inf input times a zero weight would make them NaN).
      const int ii = k_.nb_oc - 1;
      if constexpr (std::is_same_v<Vmm, Zmm>) {
        mov(eax, (1 << k_.mask_lanes) - 1);
        kmovw(k1, eax);
        for (int jj = 0; jj < k_.ur; ++jj) vmovaps(acc<Vmm>(jj, ii) | k1 | T_z, acc<Vmm>(jj, ii));
      } else {
        vmovups(bcast<Vmm>(), ptr[rip + mask]);
        for (int jj = 0; jj < k_.ur; ++jj) vandps(acc<Vmm>(jj, ii), acc<Vmm>(jj, ii), bcast<Vmm>());
      }
    }
    for (int jj = 0; jj < k_.ur; ++jj)
      for (int ii = 0; ii < k_.nb_oc; ++ii)
        vmovups(ptr[reg_dst + disp(ii * k_.out_blk + jj * lanes())], acc<Vmm>(jj, ii));
    vzeroupper();
    for (int i = static_cast<int>(std::size(saved)) - 1; i >= 0; --i) pop(saved[i]);
    ret();
    if (k_.mask_lanes > 0 && !std::is_same_v<Vmm, Zmm>) {
      align(32);
      L(mask);
      for (int lane = 0; lane < lanes(); ++lane) dd(lane < k_.mask_lanes ? 0xffffffffu : 0u);
    }
  }

  const JitConvKey k_;
  const Reg64 reg_src = r8, reg_wei = r9, reg_dst = r10, reg_bias = r11, reg_kh = r12,
              reg_icb = r13, reg_flags = r14, aux_src = r15, aux_wei = rax, reg_cnt = rbx;
};

#endif  // __x86_64__

struct KeyHash {
  size_t operator()(const JitConvKey& k) const {
    size_t h = 0;
    auto mix = [&](int64_t v) { h = h * 1000003u ^ std::hash<int64_t>{}(v); };
    for (int64_t v :
         {static_cast<int64_t>(k.isa), int64_t{k.ur}, int64_t{k.nb_oc}, int64_t{k.s_taps},
          int64_t{k.sw}, int64_t{k.dw}, int64_t{k.icp}, int64_t{k.ic_tail}, k.in_c, k.in_px,
          k.in_row, k.in_blk, k.out_blk, k.r_taps, int64_t{k.lpad}, int64_t{k.room},
          int64_t{k.bias}, int64_t{k.relu}, int64_t{k.mask_lanes}})
      mix(v);
    return h;
  }
};

struct Cache {
  std::shared_mutex mutex;
#if defined(__x86_64__)
  std::unordered_map<JitConvKey, std::shared_ptr<Generator>, KeyHash> kernels;
#endif
};

Cache& cache() {
  static Cache c;
  return c;
}

}  // namespace

int64_t jit_kernels_generated() { return generated.load(); }

size_t jit_kernels_cached() {
#if defined(__x86_64__)
  std::shared_lock lock(cache().mutex);
  return cache().kernels.size();
#else
  return 0;
#endif
}

bool jit_prefetch_enabled() {
  const char* env = std::getenv("SPARKLE_CPU_JIT_PREFETCH");
  if (env == nullptr || *env == '\0' || std::string(env) == "1") return true;
  if (std::string(env) == "0") return false;
  throw plugin::Error(SPARKLE_INVALID_ARGUMENT,
                      std::string("SPARKLE_CPU_JIT_PREFETCH=") + env + " is unknown; use 0 or 1");
}

JitConvKernel jit_conv_kernel(const JitConvKey& key) {
#if defined(__x86_64__)
  const int lanes = jit_vector_lanes(key.isa);
  if (lanes == 0) throw plugin::Error(SPARKLE_INTERNAL, "JIT conv: no kernels for this ISA");
  if (key.ur * key.nb_oc + key.nb_oc + 1 > jit_vector_registers(key.isa) || key.ur < 1 ||
      key.nb_oc < 1)
    throw plugin::Error(SPARKLE_INTERNAL, "JIT conv: register blocking " + std::to_string(key.ur) +
                                              "x" + std::to_string(key.nb_oc) +
                                              " exceeds the registers");
  auto& c = cache();
  auto held = [](const std::shared_ptr<Generator>& g) {
    return JitConvKernel{g->getCode<JitConvFn>(), g};
  };
  {
    std::shared_lock lock(c.mutex);
    auto it = c.kernels.find(key);
    if (it != c.kernels.end()) return held(it->second);
  }
  std::unique_lock lock(c.mutex);
  auto& slot = c.kernels[key];
  if (!slot) {
    try {
      slot = std::make_shared<Generator>(key);
    } catch (const std::exception& e) {
      c.kernels.erase(key);
      throw plugin::Error(SPARKLE_INTERNAL, std::string("JIT conv generation failed: ") + e.what());
    }
    generated.fetch_add(1);
  }
  JitConvKernel out = held(slot);
  if (c.kernels.size() > kJitKernelsCached)
    std::erase_if(c.kernels, [](const auto& e) { return e.second.use_count() == 1; });
  return out;
#else
  (void)key;
  throw plugin::Error(SPARKLE_UNSUPPORTED, "JIT conv kernels need x86-64");
#endif
}

}  // namespace sparkle::cpu
