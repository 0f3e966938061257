// SPARKLE_CPU_ISA: a forced ISA shows in the kernel name and the device
// properties; an unknown name or an ISA this CPU lacks is an error that names
// the variable, never a silent fallback to another ISA. The same for
// SPARKLE_CPU_VECTORIZE.
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "common/test_data.hpp"

using namespace sparkle;

namespace {

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

Conv2dDesc small_desc() {
  Conv2dDesc d;
  d.n = 1, d.c = 3, d.h = 5, d.w = 5, d.k = 4, d.r = 3, d.s = 3;
  return d;
}

// Runs one small convolution on a fresh engine (plans are cached per engine).
RunResult run_once() {
  Engine engine;
  const Conv2dDesc d = small_desc();
  std::mt19937_64 rng(test::fresh_seed());
  const auto x = test::random_tensor(d.input_elements(), rng);
  const auto w = test::random_tensor(d.weight_elements(), rng);
  auto y = test::poisoned(d.output_elements());
  RunOptions opts;
  opts.device = "cpu";
  return engine.conv2d(d, x, w, {}, y, opts);
}

// run_once() must throw a sparkle::Error whose message contains `text`
// (the variable and its value).
void check_error_names(const std::string& text) {
  CAPTURE(text);
  try {
    run_once();
    FAIL("no error");
  } catch (const Error& e) {
    CAPTURE(e.what());
    CHECK(std::string(e.what()).find(text) != std::string::npos);
  }
}

bool cpu_has_avx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

}  // namespace

TEST_CASE("a forced portable ISA shows in the kernel name and the device properties") {
  ScopedEnv isa("SPARKLE_CPU_ISA", "portable");
  CHECK(run_once().kernel.find("portable") != std::string::npos);
  Engine engine;
  bool found = false;
  for (const auto& dev : engine.devices())
    for (const auto& [key, value] : dev.properties)
      if (dev.backend == "cpu" && key == "kernel_isa") {
        found = true;
        CHECK(value.rfind("portable", 0) == 0);
      }
  CHECK(found);
}

TEST_CASE("an unknown SPARKLE_CPU_ISA is an error naming the variable") {
  ScopedEnv isa("SPARKLE_CPU_ISA", "sse9");
  check_error_names("SPARKLE_CPU_ISA=sse9");
}

TEST_CASE("forcing an ISA this CPU lacks is an error, not a fallback") {
  if (cpu_has_avx512()) {
    MESSAGE("this CPU has AVX-512; nothing to check");
    return;
  }
  ScopedEnv isa("SPARKLE_CPU_ISA", "avx512");
  check_error_names("SPARKLE_CPU_ISA=avx512");
}

TEST_CASE("SPARKLE_CPU_VECTORIZE: channels shows in the kernel name, unknown values are errors") {
  {
    ScopedEnv v("SPARKLE_CPU_VECTORIZE", "channels");
    CHECK(run_once().kernel.find("_channels") != std::string::npos);
  }
  {
    ScopedEnv v("SPARKLE_CPU_VECTORIZE", "pixels");
    CHECK(run_once().kernel.find("_channels") == std::string::npos);
  }
  ScopedEnv v("SPARKLE_CPU_VECTORIZE", "rows");
  check_error_names("SPARKLE_CPU_VECTORIZE=rows");
}

TEST_CASE("SPARKLE_CPU_KERNEL: a forced kind shows in the kernel name, unknown values are errors") {
  const bool jit = std::getenv("SPARKLE_CPU_ISA") == nullptr ||
                   std::string(std::getenv("SPARKLE_CPU_ISA")) != "portable";
  for (const char* kind : {"gemm", "jit", "winograd4", "winograd2"}) {
    CAPTURE(kind);
    ScopedEnv k("SPARKLE_CPU_KERNEL", kind);
    const std::string name = run_once().kernel;
    CAPTURE(name);
    // small_desc() is a 3x3 stride-1 layer: every kind applies with JIT
    // kernels; without them (portable) everything runs on the GEMM.
    CHECK(name.rfind(std::string("cpu_") + (jit ? kind : "gemm") + "_", 0) == 0);
  }
  {
    ScopedEnv k("SPARKLE_CPU_KERNEL", "auto");
    CHECK(run_once().kernel.rfind("cpu_auto_", 0) == 0);
  }
  ScopedEnv k("SPARKLE_CPU_KERNEL", "fft");
  check_error_names("SPARKLE_CPU_KERNEL=fft");
}

TEST_CASE("bad SPARKLE_CPU_JIT_BLOCKING and SPARKLE_CPU_LAYOUT values are errors") {
  {
    ScopedEnv k("SPARKLE_CPU_KERNEL", "jit");
    ScopedEnv b("SPARKLE_CPU_JIT_BLOCKING", "wide");
    if (std::getenv("SPARKLE_CPU_ISA") == nullptr)
      check_error_names("SPARKLE_CPU_JIT_BLOCKING=wide");
  }
  Engine engine;
  ScopedEnv l("SPARKLE_CPU_LAYOUT", "nhwc");
  try {
    engine.tensor({1, 32, 4, 4}, "cpu");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("SPARKLE_CPU_LAYOUT=nhwc") != std::string::npos);
  }
}
