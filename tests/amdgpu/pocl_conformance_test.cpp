// The arithmetic of the AMDGPU kernels, checked on the CPU: the same OpenCL C
// files under shaders/amdgpu, built by PoCL (Debian's pocl-opencl-icd), run
// with exactly the launches the backend plans (launch.cpp: kernel, grid and
// every argument by name) on fresh random data with the output poisoned, and
// compared with libsparkle's float64 reference. What this does not show: that
// clang-16's amdgcn code for the same source computes the same (no AMD GPU
// ran it); see docs/AMDGPU.md.
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <common/test_data.hpp>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "launch.hpp"

using namespace sparkle::amdgpu;

namespace {

constexpr double kTolerance = 1e-5;

#define CL_CHECK(call)                                             \
  do {                                                             \
    const cl_int rc_ = (call);                                     \
    REQUIRE_MESSAGE(rc_ == CL_SUCCESS, #call " returned " << rc_); \
  } while (0)

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  REQUIRE_MESSAGE(f.good(), "cannot read " << path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Cl {
  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
  cl_context context = nullptr;
  cl_command_queue queue = nullptr;
  std::map<std::string, cl_program> programs;  // by source file
  std::map<std::string, cl_kernel> kernels;

  Cl() {
    cl_uint n = 0;
    CL_CHECK(clGetPlatformIDs(0, nullptr, &n));
    std::vector<cl_platform_id> ps(n);
    CL_CHECK(clGetPlatformIDs(n, ps.data(), nullptr));
    for (auto p : ps) {
      char name[256] = {};
      clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof name, name, nullptr);
      if (std::string(name).find("Portable Computing Language") != std::string::npos) platform = p;
    }
    REQUIRE_MESSAGE(platform != nullptr,
                    "no PoCL platform (install pocl-opencl-icd: tools/setup.sh)");
    CL_CHECK(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, nullptr));
    cl_int rc = 0;
    context = clCreateContext(nullptr, 1, &device, nullptr, nullptr, &rc);
    CL_CHECK(rc);
    queue = clCreateCommandQueue(context, device, 0, &rc);
    CL_CHECK(rc);
    // kernels.cl, the translation unit the AMDGPU code objects are built from.
    for (const char* file : {"kernels.cl"}) {
      const std::string dir = SPARKLE_AMDGPU_SHADER_DIR;
      const std::string src = slurp(dir + "/" + file);
      const char* text = src.c_str();
      cl_program prog = clCreateProgramWithSource(context, 1, &text, nullptr, &rc);
      CL_CHECK(rc);
      const std::string options = "-cl-kernel-arg-info -Werror -I " + dir;
      rc = clBuildProgram(prog, 1, &device, options.c_str(), nullptr, nullptr);
      if (rc != CL_SUCCESS) {
        size_t len = 0;
        clGetProgramBuildInfo(prog, device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &len);
        std::string log(len, '\0');
        clGetProgramBuildInfo(prog, device, CL_PROGRAM_BUILD_LOG, len, log.data(), nullptr);
        FAIL("PoCL could not build " << file << ": " << log);
      }
      programs[file] = prog;
    }
    for (const auto& [file, prog] : programs) {
      cl_uint count = 0;
      CL_CHECK(clCreateKernelsInProgram(prog, 0, nullptr, &count));
      std::vector<cl_kernel> ks(count);
      CL_CHECK(clCreateKernelsInProgram(prog, count, ks.data(), nullptr));
      for (auto k : ks) {
        char name[128] = {};
        CL_CHECK(clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, nullptr));
        kernels[name] = k;
      }
    }
  }
  ~Cl() {
    for (auto& [n, k] : kernels) clReleaseKernel(k);
    for (auto& [n, p] : programs) clReleaseProgram(p);
    if (queue) clReleaseCommandQueue(queue);
    if (context) clReleaseContext(context);
  }

  cl_mem buffer(size_t bytes, const void* init) {
    cl_int rc = 0;
    cl_mem m = clCreateBuffer(context, CL_MEM_READ_WRITE | (init ? CL_MEM_COPY_HOST_PTR : 0),
                              std::max<size_t>(bytes, 4), const_cast<void*>(init), &rc);
    CL_CHECK(rc);
    return m;
  }

  // Runs a launch: every kernel argument, by the name the metadata gives,
  // from the launch; buffer operands from `mems`.
  void run(const Launch& l, const std::map<Operand, cl_mem>& mems) {
    REQUIRE(kernels.count(l.kernel) == 1);
    cl_kernel k = kernels.at(l.kernel);
    cl_uint nargs = 0;
    CL_CHECK(clGetKernelInfo(k, CL_KERNEL_NUM_ARGS, sizeof nargs, &nargs, nullptr));
    size_t set = 0;
    for (cl_uint i = 0; i < nargs; ++i) {
      char name[64] = {};
      CL_CHECK(clGetKernelArgInfo(k, i, CL_KERNEL_ARG_NAME, sizeof name, name, nullptr));
      const LaunchArg* a = l.arg(name);
      REQUIRE_MESSAGE(a != nullptr, l.kernel << " argument " << name << " is not in the launch");
      if (a->operand == Operand::Value) {
        CL_CHECK(clSetKernelArg(k, i, sizeof(uint32_t), &a->value));
      } else {
        REQUIRE(a->byte_offset == 0);  // offsets are the AMDGPU path's address arithmetic
        auto it = mems.find(a->operand);
        cl_mem m = it == mems.end() ? nullptr : it->second;
        CL_CHECK(clSetKernelArg(k, i, sizeof(cl_mem), m ? &m : nullptr));
      }
      ++set;
    }
    CHECK(set == l.args.size());
    size_t global[3], local[3];
    for (int d = 0; d < 3; ++d) {
      global[d] = size_t{l.groups[d]} * l.group_size[d];
      local[d] = l.group_size[d];
    }
    CL_CHECK(clEnqueueNDRangeKernel(queue, k, 3, nullptr, global, local, 0, nullptr, nullptr));
    CL_CHECK(clFinish(queue));
  }

  std::vector<float> read(cl_mem m, size_t count) {
    std::vector<float> out(count);
    CL_CHECK(clEnqueueReadBuffer(queue, m, CL_TRUE, 0, count * sizeof(float), out.data(), 0,
                                 nullptr, nullptr));
    return out;
  }
};

Cl& cl() {
  static Cl instance;
  return instance;
}

// A few shapes beyond the shared list that stress the tiled kernel's
// staging: reductions spanning several 64-element chunks, channel counts
// that leave the last 8-channel tile partial, and groups whose per-group
// channels are not a multiple of 8.
std::vector<sparkle::Conv2dDesc> extra_descriptors() {
  std::vector<sparkle::Conv2dDesc> out;
  auto make = [&](int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t r, int64_t g) {
    sparkle::Conv2dDesc d;
    d.n = n, d.c = c, d.h = h, d.w = w, d.k = k, d.r = r, d.s = r, d.groups = g;
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = r / 2;
    d.has_bias = true;
    d.relu = (c % 2) == 0;
    out.push_back(d);
  };
  make(1, 29, 11, 13, 13, 3, 1);  // reduction 261: five chunks, 13 = 8 + 5 channels
  make(2, 12, 9, 9, 20, 3, 2);    // 10 channels per group
  make(1, 64, 10, 10, 8, 1, 1);   // 1x1, exactly one tile
  make(3, 6, 17, 5, 6, 5, 3);     // groups 3, 2 channels each
  return out;
}

}  // namespace

TEST_CASE("both conv2d kernels match the float64 reference on PoCL, with the planned launches") {
  const uint64_t seed = sparkle::test::fresh_seed();
  INFO("SPARKLE_TEST_SEED=" << seed);
  std::mt19937_64 rng(seed);
  auto descs = sparkle::test::conformance_descriptors(40);
  for (const auto& d : extra_descriptors()) descs.push_back(d);
  double worst = 0;
  int runs = 0;
  for (const auto& d : descs) {
    d.validate();
    const sparkle_conv2d_desc cd = d.to_c();
    const auto x = sparkle::test::random_tensor(d.input_elements(), rng);
    const auto w = sparkle::test::random_tensor(d.weight_elements(), rng);
    const auto b = d.has_bias ? sparkle::test::random_tensor(d.k, rng) : std::vector<float>{};
    for (Conv2dKernel kernel : {Conv2dKernel::Direct, Conv2dKernel::Tiled}) {
      CAPTURE(d.to_string());
      CAPTURE(conv2d_kernel_name(kernel));
      const Launch l = plan_conv2d(cd, kernel);
      const auto poison = sparkle::test::poisoned(d.output_elements());
      cl_mem xm = cl().buffer(x.size() * 4, x.data());
      cl_mem wm = cl().buffer(w.size() * 4, w.data());
      cl_mem bm = d.has_bias ? cl().buffer(b.size() * 4, b.data()) : nullptr;
      cl_mem ym = cl().buffer(poison.size() * 4, poison.data());
      std::map<Operand, cl_mem> mems = {{Operand::X, xm}, {Operand::W, wm}, {Operand::Y, ym}};
      if (bm) mems[Operand::Bias] = bm;
      cl().run(l, mems);
      const auto y = cl().read(ym, poison.size());
      const auto cmp = sparkle::test::compare_with_reference(d, x, w, b, y);
      CHECK(cmp.non_finite == 0);
      CHECK(cmp.max_rel_error <= kTolerance);
      worst = std::max(worst, cmp.max_rel_error);
      ++runs;
      for (cl_mem m : {xm, wm, bm, ym})
        if (m) clReleaseMemObject(m);
    }
  }
  MESSAGE(runs << " launches, worst relative error " << worst);
  CHECK(runs == 2 * static_cast<int>(descs.size()));
}

TEST_CASE("the automatic kernel choice uses both kernels on the conformance shapes") {
  int tiled = 0, direct = 0;
  for (const auto& d : sparkle::test::conformance_descriptors(40)) {
    const auto k = choose_conv2d_kernel(d.to_c(), KernelChoice::Auto);
    (k == Conv2dKernel::Tiled ? tiled : direct)++;
  }
  CHECK(tiled > 0);
  CHECK(direct > 0);
}

TEST_CASE("the copy kernels copy exactly the planned bytes on PoCL") {
  std::mt19937_64 rng(sparkle::test::fresh_seed());
  for (uint64_t bytes : {4ull, 64ull, 256ull, 1000ull, 4097ull, 70001ull}) {
    CAPTURE(bytes);
    std::vector<uint8_t> src(bytes), dst(bytes + 64, 0xEE);
    for (auto& v : src) v = static_cast<uint8_t>(rng());
    const auto launches = plan_copy(0, 0, bytes);
    REQUIRE(launches.size() == 1);
    CHECK(launches[0].kernel == (bytes % 4 == 0 ? "copy_words" : "copy_bytes"));
    cl_mem s = cl().buffer(src.size(), src.data());
    cl_mem t = cl().buffer(dst.size(), dst.data());
    cl().run(launches[0], {{Operand::Src, s}, {Operand::Dst, t}});
    std::vector<uint8_t> got(dst.size());
    CL_CHECK(clEnqueueReadBuffer(cl().queue, t, CL_TRUE, 0, got.size(), got.data(), 0, nullptr,
                                 nullptr));
    CHECK(std::memcmp(got.data(), src.data(), bytes) == 0);
    // Nothing past the end was written.
    CHECK(std::all_of(got.begin() + static_cast<std::ptrdiff_t>(bytes), got.end(),
                      [](uint8_t v) { return v == 0xEE; }));
    clReleaseMemObject(s);
    clReleaseMemObject(t);
  }
}

TEST_CASE("copies split where one launch would pass 2^31 items") {
  const auto l = plan_copy(8, 12, (uint64_t{1} << 33) + 12);  // 2^31 + 3 words
  REQUIRE(l.size() == 2);
  CHECK(l[0].arg("count")->value == (1u << 31));
  CHECK(l[1].arg("count")->value == 3);
  CHECK(l[1].arg("src")->byte_offset == 8 + (uint64_t{1} << 33));
  CHECK(l[1].arg("dst")->byte_offset == 12 + (uint64_t{1} << 33));
  CHECK(plan_copy(1, 0, 10)[0].kernel == "copy_bytes");
  CHECK(plan_copy(0, 0, 0).empty());
}
