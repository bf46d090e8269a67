// cpu matmul with weights in a mapped host buffer (the model loader's path, where the cpu device
// repacks them on first use) against the reference backend, on odd shapes including row counts
// that leave a remainder outside the 16-row groups; and the same bits for any batch split or
// thread count.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "backend/registry.h"
#include "backend_test_util.h"
#include "core/error.h"
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
    // Batches on either side of the largest one that runs as decode (row chunks per thread)
    // rather than as prefill (row x token tasks).
    for (const int64_t n : {21, 64, 65}) {
      SCOPED_TRACE(fmt::format("{} n={}", dtype_name(t), n));
      const int64_t k = dtype_info(t).block_size == 256 ? 512 : 576, m = 67;
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
}

// One input times several mapped weight matrices through matmul_shared_input (what the decoder
// does for q/k/v and gate/up) gives each output the bits of its own matmul call: weights of one
// activation format share a conversion and a pass over the pool, mixed formats fall back.
TEST(CpuPackedMatmul, SharedInputGivesTheBitsOfSeparateCalls) {
  std::mt19937 rng(33);
  auto cpu = open_device("cpu", DeviceOptions{.threads = 2});
  auto ref = open_device("reference");
  const std::vector<std::vector<DType>> sets = {
      {DType::kQ4_1, DType::kQ4_1, DType::kQ4_1},  // SmolLM2's q, k, v
      {DType::kQ4_K, DType::kQ6_K, DType::kQ4_K},  // Q4_K_M: one activation format
      {DType::kQ8_0, DType::kQ4_0},                // Q8_0X both
      {DType::kQ4_1, DType::kQ8_0, DType::kF16},   // three formats: one at a time
      {DType::kF32, DType::kF32}};
  const std::vector<int64_t> rows = {64, 19, 37};  // a remainder outside the 16-row groups too
  for (const std::vector<DType>& types : sets) {
    for (int64_t n : {1, 3, 8, 9, 70}) {
      const int64_t k = 512;
      std::string name;
      for (DType t : types) name += fmt::format("{} ", dtype_name(t));
      SCOPED_TRACE(fmt::format("{}n={}", name, n));
      std::vector<std::vector<uint8_t>> ws;
      for (size_t i = 0; i < types.size(); ++i) ws.push_back(quantized(types[i], rows[i], k, rng));
      const std::vector<float> x = random_floats(rng, static_cast<size_t>(n * k));
      for (Device* dev : {cpu.get(), ref.get()}) {
        auto s = dev->create_stream();
        std::vector<std::unique_ptr<Buffer>> bufs;
        std::vector<TensorView> wv;
        std::vector<test::DeviceTensor> outs;
        std::vector<TensorView> ov;
        for (size_t i = 0; i < types.size(); ++i) {
          bufs.push_back(dev->map_host(ws[i].data(), ws[i].size()));
          wv.push_back({bufs.back().get(), 0, types[i], rows[i], k,
                        ws[i].size() / static_cast<size_t>(rows[i])});
          outs.push_back(make_f32(*dev, n, rows[i], {}));
          ov.push_back(outs.back().view);
        }
        auto xt = make_f32(*dev, n, k, x);
        s->matmul_shared_input(xt.view, wv, ov);
        s->synchronize();
        for (size_t i = 0; i < types.size(); ++i) {
          const std::vector<float> alone = mapped_matmul(*dev, types[i], ws[i], rows[i], k, x, n);
          EXPECT_EQ(read_f32(*dev, outs[i]), alone) << dev->info().name << " output " << i;
        }
      }
    }
  }
}

TEST(CpuPackedMatmul, SharedInputRejectsMismatchedLists) {
  auto cpu = open_device("cpu", DeviceOptions{.threads = 2});
  auto s = cpu->create_stream();
  auto x = make_f32(*cpu, 2, 32, std::vector<float>(64, 1.0f));
  auto w = make_f32(*cpu, 4, 32, std::vector<float>(128, 1.0f));
  auto o = make_f32(*cpu, 2, 4, {});
  const TensorView ws[] = {w.view, w.view};
  const TensorView os[] = {o.view};
  EXPECT_THROW(s->matmul_shared_input(x.view, ws, os), Error);
  const TensorView bad_out[] = {o.view, x.view};  // 2 x 32 is not 2 x 4
  EXPECT_THROW(s->matmul_shared_input(x.view, ws, bad_out), Error);
}

}  // namespace
}  // namespace luzao
