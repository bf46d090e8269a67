// Timing probes for the cpu backend, disabled by default (performance is measured in bench/, not
// timed in tests). Run with --gtest_also_run_disabled_tests on a release build.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "backend/registry.h"
#include "backend_test_util.h"

namespace luzao {
namespace {

using test::make_f32;
using test::make_tensor;

// Median microseconds of a matmul of n tokens against an m x k weight of dtype t.
double time_matmul(DType t, int threads, int64_t n, int64_t m, int64_t k, double* nmse_vs_ref) {
  std::mt19937 rng(7);
  auto cpu = open_device("cpu", DeviceOptions{.threads = threads});
  auto s = cpu->create_stream();
  const std::vector<float> wf = test::random_floats(rng, static_cast<size_t>(m * k));
  std::vector<uint8_t> w(*row_bytes(t, static_cast<uint64_t>(k)) * static_cast<size_t>(m));
  const size_t rb = w.size() / static_cast<size_t>(m);
  if (can_quantize(t)) {
    for (int64_t r = 0; r < m; ++r) quantize_row(t, wf.data() + r * k, w.data() + r * rb, k);
  } else {  // K-quants: random bits with a small scale in the leading fp16 field(s)
    std::uniform_int_distribution<int> byte(0, 255);
    for (uint8_t& b : w) b = static_cast<uint8_t>(byte(rng));
    const size_t bb = dtype_info(t).block_bytes;
    // d (and dmin) fields: leading for Q4_K/Q5_K, trailing for the others.
    const bool leading = t == DType::kQ4_K || t == DType::kQ5_K;
    for (size_t off = 0; off < w.size(); off += bb) {
      for (size_t at : {leading ? size_t{0} : bb - 4, leading ? size_t{2} : bb - 2}) {
        w[off + at] = 0x00;
        w[off + at + 1] = 0x20;  // fp16 0.0078
      }
    }
  }
  auto wt = make_tensor(*cpu, t, m, k, w.data());
  auto x = make_f32(*cpu, n, k, test::random_floats(rng, static_cast<size_t>(n * k)));
  auto out = make_f32(*cpu, n, m, {});
  std::vector<double> us;
  for (int i = 0; i < 200; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    s->matmul(x.view, wt.view, out.view);
    const auto t1 = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  auto ref = open_device("reference");
  auto rs = ref->create_stream();
  auto wr = make_tensor(*ref, t, m, k, w.data());
  auto xr = make_f32(*ref, n, k, test::read_f32(*cpu, x));
  auto outr = make_f32(*ref, n, m, {});
  rs->matmul(xr.view, wr.view, outr.view);
  *nmse_vs_ref = test::nmse(test::read_f32(*cpu, out), test::read_f32(*ref, outr));
  return us[us.size() / 2];
}

TEST(PerfProbe, DISABLED_MatMulDecodeShapes) {
  struct Shape {
    DType t;
    int64_t n, m, k;
  };
  const Shape shapes[] = {{DType::kQ4_1, 1, 576, 1536},  {DType::kQ4_1, 1, 1536, 576},
                          {DType::kQ8_0, 1, 576, 1536},  {DType::kQ4_0, 1, 576, 1536},
                          {DType::kQ4_1, 32, 1536, 576}, {DType::kF16, 1, 576, 1536},
                          {DType::kQ4_K, 1, 576, 1536},  {DType::kQ6_K, 1, 576, 1536}};
  for (const Shape& sh : shapes) {
    for (int threads : {1, 2}) {
      double e = 0;
      const double us = time_matmul(sh.t, threads, sh.n, sh.m, sh.k, &e);
      std::printf("%-5s n=%-3lld m=%-5lld k=%-5lld threads=%d: %8.1f us (nmse vs ref %.2g)\n",
                  std::string(dtype_name(sh.t)).c_str(), static_cast<long long>(sh.n),
                  static_cast<long long>(sh.m), static_cast<long long>(sh.k), threads, us, e);
      EXPECT_LT(e, 1e-3);
    }
  }
}

}  // namespace
}  // namespace luzao
