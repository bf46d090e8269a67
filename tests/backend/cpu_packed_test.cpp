// cpu matmul with weights in a mapped host buffer (the model loader's path, where the cpu device
// repacks them on first use) against the reference backend, on odd shapes including row counts
// that leave a remainder outside the 16-row groups; and the same bits for any batch split or
// thread count.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include <fmt/format.h>

#include "backend/registry.h"
#include "backend_test_util.h"
#include "tensor/dtype.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

using test::make_f32;
using test::nmse;
using test::random_floats;
using test::read_f32;

const DType kTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                        DType::kQ8_0, DType::kQ4_K, DType::kQ6_K, DType::kF16};

std::vector<uint8_t> quantized(DType t, int64_t m, int64_t k, std::mt19937& rng) {
  const size_t rb = *row_bytes(t, static_cast<uint64_t>(k));
  std::vector<uint8_t> w(rb * static_cast<size_t>(m));
  const std::vector<float> x = random_floats(rng, static_cast<size_t>(m * k));
  for (int64_t r = 0; r < m; ++r) quantize_row(t, x.data() + r * k, w.data() + r * rb, k);
  return w;
}

// out = x * w^T on `dev`, the weights read through a buffer mapped over `w`.
std::vector<float> mapped_matmul(Device& dev, DType t, const std::vector<uint8_t>& w, int64_t m,
                                 int64_t k, const std::vector<float>& x, int64_t n) {
  auto s = dev.create_stream();
  auto wbuf = dev.map_host(w.data(), w.size());
  EXPECT_NE(wbuf, nullptr);
  const TensorView wv{wbuf.get(), 0, t, m, k, w.size() / static_cast<size_t>(m)};
  auto xt = make_f32(dev, n, k, x);
  auto out = make_f32(dev, n, m, {});
  s->matmul(xt.view, wv, out.view);
  return read_f32(dev, out);
}

TEST(CpuPackedMatmul, MappedWeightsMatchTheReference) {
  std::mt19937 rng(31);
  auto cpu = open_device("cpu", DeviceOptions{.threads = 2});
  auto ref = open_device("reference");
  for (DType t : kTypes) {
    if (!can_quantize(t)) continue;
    const int64_t bs = dtype_info(t).block_size;
    for (int64_t k : {bs == 256 ? 256 : 32 * 3, bs == 256 ? 768 : 32 * 19}) {
      for (int64_t m : {16, 37, 64}) {
        for (int64_t n : {1, 5, 9, 70}) {
          SCOPED_TRACE(fmt::format("{} m={} n={} k={}", dtype_name(t), m, n, k));
          const std::vector<uint8_t> w = quantized(t, m, k, rng);
          const std::vector<float> x = random_floats(rng, static_cast<size_t>(n * k));
          const std::vector<float> got = mapped_matmul(*cpu, t, w, m, k, x, n);
          const std::vector<float> want = mapped_matmul(*ref, t, w, m, k, x, n);
          // Activations quantized to 8 bits (F16 for F16 weights), as in cpu_vs_reference_test.
          EXPECT_LE(nmse(got, want), t == DType::kF16 ? 1e-5 : 3e-3);
        }
      }
    }
  }
}

TEST(CpuPackedMatmul, SameBitsForAnyBatchSplitAndThreadCount) {
  std::mt19937 rng(32);
  auto cpu1 = open_device("cpu", DeviceOptions{.threads = 1});
  auto cpu2 = open_device("cpu", DeviceOptions{.threads = 2});
  for (DType t :
       {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ8_0, DType::kQ6_K, DType::kF16}) {
    SCOPED_TRACE(std::string(dtype_name(t)));
    const int64_t k = dtype_info(t).block_size == 256 ? 512 : 576, m = 67, n = 21;
    const std::vector<uint8_t> w = quantized(t, m, k, rng);
    const std::vector<float> x = random_floats(rng, static_cast<size_t>(n * k));
    const std::vector<float> all1 = mapped_matmul(*cpu1, t, w, m, k, x, n);
    const std::vector<float> all2 = mapped_matmul(*cpu2, t, w, m, k, x, n);
    EXPECT_EQ(all1, all2);
    // Token by token (the decode path) gives the batch's bits.
    for (int64_t j = 0; j < n; j += 5) {
      const std::vector<float> xj(x.begin() + j * k, x.begin() + (j + 1) * k);
      const std::vector<float> one = mapped_matmul(*cpu2, t, w, m, k, xj, 1);
      EXPECT_EQ(one, std::vector<float>(all2.begin() + j * m, all2.begin() + (j + 1) * m))
          << "token " << j;
    }
  }
}

}  // namespace
}  // namespace luzao
