// The cpu backend against the reference backend on shape sweeps with odd sizes, every dtype, and
// the paged attention layouts the runtime uses. Each op has a normalised-MSE limit stated here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>

#include <fmt/format.h>

#include "backend/registry.h"
#include "backend_test_util.h"
#include "core/half.h"
#include "tensor/blocks.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

using test::DeviceTensor;
using test::make_f32;
using test::make_tensor;
using test::nmse;
using test::random_floats;
using test::read_f32;

// Limits (normalised mean squared error, cpu vs reference). Matmul limits come in pairs: the
// worst single case (outputs of 1 x 1 can be sums that nearly cancel) and all cases pooled.
constexpr double kExact = 0.0;
constexpr double kF32Limit = 1e-10;     // F32 accumulation order vs double
constexpr double kHalfActLimit = 1e-5;  // activations rounded to F16 (pooled: 1e-6)
constexpr double kBf16ActLimit = 5e-4;  // activations rounded to BF16 (pooled: 5e-5)
constexpr double kQ8ActLimit = 3e-3;    // activations quantized to Q8_0/Q8_1/Q8_K (pooled: 1e-4)
constexpr double kSameActLimit = 1e-9;  // kernels on pre-quantized activations: sums only
constexpr double kSameActQ8_1Limit =
    1e-4;                               // ... plus Q8_1's fp16-rounded block sum s (pooled 1e-5)
constexpr double kRopeLimit = 1e-4;     // llama.cpp's iterated F32 angles, positions < 2048
constexpr double kAttnF16Limit = 1e-5;  // query rounded to F16 against an F16 K cache

const DType kAllTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                           DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ2_K, DType::kQ3_K,
                           DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kQ8_K};

bool is_k_quant(DType t) {
  return dtype_info(t).block_size == kQK_K;
}

// Weights of `rows` x `k`: quantized from random floats where a quantizer exists, otherwise
// random bits with sane fp16 scales (every bit pattern of a K-quant block is a valid block).
std::vector<uint8_t> random_weights(DType t, int64_t rows, int64_t k, std::mt19937& rng) {
  const size_t rb = *row_bytes(t, static_cast<uint64_t>(k));
  std::vector<uint8_t> data(rb * static_cast<size_t>(rows));
  // Legacy types from their quantizer; K-quants from random (valid) bits, which exercise every
  // scale and sign pattern.
  const bool k_quant = t == DType::kQ2_K || t == DType::kQ3_K || t == DType::kQ4_K ||
                       t == DType::kQ5_K || t == DType::kQ6_K;
  if (can_quantize(t) && !k_quant) {
    const std::vector<float> x = random_floats(rng, static_cast<size_t>(rows * k));
    for (int64_t r = 0; r < rows; ++r) quantize_row(t, x.data() + r * k, data.data() + r * rb, k);
    return data;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : data) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> scale(0.001f, 0.02f);
  const size_t nb = data.size() / dtype_info(t).block_bytes;
  for (size_t i = 0; i < nb; ++i) {
    uint8_t* blk = data.data() + i * dtype_info(t).block_bytes;
    const uint16_t d = fp32_to_fp16(scale(rng));
    const uint16_t dmin = fp32_to_fp16(scale(rng));
    switch (t) {
      case DType::kQ2_K:
        std::memcpy(blk + offsetof(BlockQ2_K, d), &d, 2);
        std::memcpy(blk + offsetof(BlockQ2_K, dmin), &dmin, 2);
        break;
      case DType::kQ3_K:
        std::memcpy(blk + offsetof(BlockQ3_K, d), &d, 2);
        break;
      case DType::kQ4_K:
        std::memcpy(blk + offsetof(BlockQ4_K, d), &d, 2);
        std::memcpy(blk + offsetof(BlockQ4_K, dmin), &dmin, 2);
        break;
      case DType::kQ5_K:
        std::memcpy(blk + offsetof(BlockQ5_K, d), &d, 2);
        std::memcpy(blk + offsetof(BlockQ5_K, dmin), &dmin, 2);
        break;
      case DType::kQ6_K:
        std::memcpy(blk + offsetof(BlockQ6_K, d), &d, 2);
        break;
      default:
        ADD_FAILURE() << "no generator for " << dtype_name(t);
    }
  }
  return data;
}

// x rounded through the activation format the cpu backend pairs with weight type `t`, so that a
// reference run on the result sees exactly the activations the cpu kernels see.
std::vector<float> through_activation_format(DType t, const std::vector<float>& x, int64_t k) {
  std::vector<float> out(x.size());
  const int64_t rows = static_cast<int64_t>(x.size()) / k;
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = x.data() + r * k;
    float* dst = out.data() + r * k;
    switch (t) {
      case DType::kF32:
      case DType::kQ8_K:  // no direct kernel: dequantized weights against F32 activations
        std::copy(src, src + k, dst);
        break;
      case DType::kF16:
        for (int64_t j = 0; j < k; ++j) dst[j] = fp16_to_fp32(fp32_to_fp16(src[j]));
        break;
      case DType::kBF16:
        for (int64_t j = 0; j < k; ++j) dst[j] = bf16_to_fp32(fp32_to_bf16(src[j]));
        break;
      case DType::kQ4_1:
      case DType::kQ5_1: {
        std::vector<BlockQ8_1> q(static_cast<size_t>(k / kQK8_1));
        quantize_row_q8_1(src, q.data(), k);
        dequantize_row_q8_1(q.data(), dst, k);
        break;
      }
      default: {
        const DType act = is_k_quant(t) ? DType::kQ8_K : DType::kQ8_0;
        std::vector<uint8_t> q(*row_bytes(act, static_cast<uint64_t>(k)));
        quantize_row(act, src, q.data(), k);
        dequantize_row(act, q.data(), dst, k);
      }
    }
  }
  return out;
}

double matmul_limit(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kQ8_K:
      return kF32Limit;
    case DType::kF16:
      return kHalfActLimit;
    case DType::kBF16:
      return kBf16ActLimit;
    default:
      return kQ8ActLimit;
  }
}

double same_act_limit(DType t) {
  return t == DType::kQ4_1 || t == DType::kQ5_1 ? kSameActQ8_1Limit : kSameActLimit;
}

class CpuVsReference : public ::testing::Test {
 protected:
  void SetUp() override {
    ref_ = open_device("reference");
    cpu_ = open_device("cpu", DeviceOptions{.threads = 3});
    ref_stream_ = ref_->create_stream();
    cpu_stream_ = cpu_->create_stream();
  }
  // Runs matmul on both devices; returns {cpu, reference}.
  std::pair<std::vector<float>, std::vector<float>> run_matmul(DType t,
                                                               const std::vector<uint8_t>& w,
                                                               const std::vector<float>& x_cpu,
                                                               const std::vector<float>& x_ref,
                                                               int64_t n, int64_t m, int64_t k) {
    std::vector<float> results[2];
    Device* devs[2] = {cpu_.get(), ref_.get()};
    Stream* streams[2] = {cpu_stream_.get(), ref_stream_.get()};
    for (int d = 0; d < 2; ++d) {
      // Padded rows and a leading offset: views need not be dense.
      DeviceTensor wt = make_tensor(*devs[d], t, m, k, w.data(), /*pad=*/4, /*offset=*/64);
      DeviceTensor xt = make_f32(*devs[d], n, k, d == 0 ? x_cpu : x_ref, /*pad=*/12);
      DeviceTensor out = make_f32(*devs[d], n, m, {}, /*pad=*/8);
      streams[d]->matmul(xt.view, wt.view, out.view);
      streams[d]->synchronize();
      results[d] = read_f32(*devs[d], out);
    }
    return {results[0], results[1]};
  }

  std::unique_ptr<Device> ref_, cpu_;
  std::unique_ptr<Stream> ref_stream_, cpu_stream_;
  std::mt19937 rng_{1234};
};

std::vector<int64_t> k_sweep(DType t) {
  const int64_t b = dtype_info(t).block_size;
  if (b == 1) return {1, 7, 33, 97, 160};
  if (b == kQK_K) return {256, 768};
  return {32, 96, 224, 608};
}

TEST_F(CpuVsReference, MatMulEveryDtype) {
  for (DType t : kAllTypes) {
    test::PooledError pooled, pooled_same;
    double worst = 0.0;
    for (int64_t k : k_sweep(t)) {
      for (int64_t n : {1, 3, 7, 17}) {
        for (int64_t m : {1, 5, 19, 37}) {
          SCOPED_TRACE(fmt::format("{} n={} m={} k={}", dtype_name(t), n, m, k));
          const std::vector<uint8_t> w = random_weights(t, m, k, rng_);
          const std::vector<float> x = random_floats(rng_, static_cast<size_t>(n * k));
          auto [got, want] = run_matmul(t, w, x, x, n, m, k);
          EXPECT_LE(nmse(got, want), matmul_limit(t));
          worst = std::max(worst, nmse(got, want));
          pooled.add(got, want);
          // Same activations on both sides: only the summation order differs.
          const std::vector<float> xq = through_activation_format(t, x, k);
          auto [got_q, want_q] = run_matmul(t, w, x, xq, n, m, k);
          EXPECT_LE(nmse(got_q, want_q), same_act_limit(t));
          pooled_same.add(got_q, want_q);
        }
      }
    }
    EXPECT_LE(pooled.value(), matmul_limit(t) / 10) << dtype_name(t);
    EXPECT_LE(pooled_same.value(), same_act_limit(t) / 10) << dtype_name(t);
    std::printf("matmul %-5s nmse worst %.2g pooled %.2g; same activations pooled %.2g\n",
                std::string(dtype_name(t)).c_str(), worst, pooled.value(), pooled_same.value());
  }
}

TEST_F(CpuVsReference, MatMulIndependentOfThreadCount) {
  auto cpu1 = open_device("cpu", DeviceOptions{.threads = 1});
  auto s1 = cpu1->create_stream();
  for (DType t : {DType::kQ4_1, DType::kQ8_0, DType::kF16, DType::kQ6_K}) {
    const int64_t k = is_k_quant(t) ? 512 : 576, n = 5, m = 67;
    const std::vector<uint8_t> w = random_weights(t, m, k, rng_);
    const std::vector<float> x = random_floats(rng_, static_cast<size_t>(n * k));
    std::vector<float> results[2];
    Device* devs[2] = {cpu1.get(), cpu_.get()};
    Stream* streams[2] = {s1.get(), cpu_stream_.get()};
    for (int d = 0; d < 2; ++d) {
      auto wt = make_tensor(*devs[d], t, m, k, w.data());
      auto xt = make_f32(*devs[d], n, k, x);
      auto out = make_f32(*devs[d], n, m, {});
      streams[d]->matmul(xt.view, wt.view, out.view);
      results[d] = read_f32(*devs[d], out);
    }
    EXPECT_EQ(results[0], results[1]) << dtype_name(t);
  }
}

TEST_F(CpuVsReference, GetRowsEveryDtypeIsExact) {
  for (DType t : kAllTypes) {
    const int64_t k = dtype_info(t).block_size == 1 ? 37 : 2 * dtype_info(t).block_size;
    const std::vector<uint8_t> table = random_weights(t, 9, k, rng_);
    const std::vector<int32_t> ids = {8, 0, 3, 3, 7};
    std::vector<float> results[2];
    Device* devs[2] = {cpu_.get(), ref_.get()};
    Stream* streams[2] = {cpu_stream_.get(), ref_stream_.get()};
    for (int d = 0; d < 2; ++d) {
      auto tt = make_tensor(*devs[d], t, 9, k, table.data(), 4);
      auto out = make_f32(*devs[d], 5, k, {});
      streams[d]->get_rows(tt.view, ids, out.view);
      results[d] = read_f32(*devs[d], out);
    }
    EXPECT_EQ(nmse(results[0], results[1]), kExact) << dtype_name(t);
    // The reference agrees with dequantize_row on the chosen rows.
    std::vector<float> row(static_cast<size_t>(k));
    const size_t rb = *row_bytes(t, static_cast<uint64_t>(k));
    dequantize_row(t, table.data() + 3 * rb, row.data(), k);
    EXPECT_TRUE(std::equal(row.begin(), row.end(), results[1].begin() + 2 * k)) << dtype_name(t);
  }
}

TEST_F(CpuVsReference, SetRowsEveryStorableDtypeIsBitExact) {
  for (DType t : kAllTypes) {
    if (!cpu_->supports(OpKind::kSetRows, t)) continue;
    const int64_t k = dtype_info(t).block_size == 1 ? 24 : dtype_info(t).block_size;
    const std::vector<float> src = random_floats(rng_, static_cast<size_t>(3 * k));
    const std::vector<int32_t> ids = {4, 1, 6};
    std::vector<uint8_t> results[2];
    Device* devs[2] = {cpu_.get(), ref_.get()};
    Stream* streams[2] = {cpu_stream_.get(), ref_stream_.get()};
    for (int d = 0; d < 2; ++d) {
      auto s = make_f32(*devs[d], 3, k, src);
      auto dst = make_tensor(*devs[d], t, 7, k, nullptr);
      streams[d]->set_rows(s.view, ids, dst.view);
      results[d] = test::read_raw(*devs[d], dst);
    }
    EXPECT_EQ(results[0], results[1]) << dtype_name(t);
  }
}

TEST_F(CpuVsReference, RowOps) {
  for (int64_t rows : {1, 3, 17, 70}) {
    for (int64_t cols : {1, 7, 64, 576}) {
      SCOPED_TRACE(fmt::format("rows={} cols={}", rows, cols));
      const auto n = static_cast<size_t>(rows * cols);
      const std::vector<float> a = random_floats(rng_, n, -4.0f, 4.0f);
      const std::vector<float> b = random_floats(rng_, n, -4.0f, 4.0f);
      const std::vector<float> w = random_floats(rng_, static_cast<size_t>(cols));
      std::vector<float> got[2][7];
      Device* devs[2] = {cpu_.get(), ref_.get()};
      Stream* streams[2] = {cpu_stream_.get(), ref_stream_.get()};
      for (int d = 0; d < 2; ++d) {
        Device& dev = *devs[d];
        Stream& s = *streams[d];
        auto ta = make_f32(dev, rows, cols, a, 4);
        auto tb = make_f32(dev, rows, cols, b);
        auto tw = make_f32(dev, 1, cols, w);
        auto out = make_f32(dev, rows, cols, {}, 8);
        s.rms_norm(ta.view, tw.view, 1e-5f, out.view);
        got[d][0] = read_f32(dev, out);
        s.swiglu(ta.view, tb.view, out.view);
        got[d][1] = read_f32(dev, out);
        s.add(ta.view, tb.view, out.view);
        got[d][2] = read_f32(dev, out);
        s.mul(ta.view, tw.view, out.view);
        got[d][3] = read_f32(dev, out);
        s.scale(ta.view, -0.37f, out.view);
        got[d][4] = read_f32(dev, out);
        auto tsm = make_f32(dev, rows, cols, a);
        s.softmax(tsm.view);
        got[d][5] = read_f32(dev, tsm);
        s.add(ta.view, tw.view, ta.view);  // in place with broadcast
        got[d][6] = read_f32(dev, ta);
      }
      const char* names[7] = {"rms_norm", "swiglu",  "add",        "mul",
                              "scale",    "softmax", "add_inplace"};
      const double limits[7] = {1e-12, 1e-12, kExact, kExact, kExact, 1e-12, kExact};
      for (int op = 0; op < 7; ++op) {
        EXPECT_LE(nmse(got[0][op], got[1][op]), limits[op]) << names[op];
      }
    }
  }
}

TEST_F(CpuVsReference, Rope) {
  for (bool neox : {false, true}) {
    for (int rot_dim : {64, 32}) {
      const RopeParams p{
          .n_heads = 3, .head_dim = 64, .rot_dim = rot_dim, .freq_base = 10000.0f, .neox = neox};
      const int64_t rows = 11;
      const std::vector<float> x = random_floats(rng_, static_cast<size_t>(rows * 3 * 64));
      const std::vector<int32_t> pos = {0, 1, 2, 5, 17, 100, 511, 512, 1000, 2047, 3};
      std::vector<float> got[2];
      Device* devs[2] = {cpu_.get(), ref_.get()};
      Stream* streams[2] = {cpu_stream_.get(), ref_stream_.get()};
      for (int d = 0; d < 2; ++d) {
        auto t = make_f32(*devs[d], rows, 3 * 64, x, 4);
        streams[d]->rope(t.view, pos, p);
        got[d] = read_f32(*devs[d], t);
      }
      EXPECT_LE(nmse(got[0], got[1]), kRopeLimit) << "neox=" << neox << " rot_dim=" << rot_dim;
      // Small positions: the iterated F32 angle is still accurate to a few ulps.
      std::vector<float> head0(got[0].begin(), got[0].begin() + 3 * 3 * 64);
      std::vector<float> ref0(got[1].begin(), got[1].begin() + 3 * 3 * 64);
      EXPECT_LE(nmse(head0, ref0), 1e-11);
    }
  }
}

// Three sequences of different lengths share one pool of 16-token pages in shuffled order. The
// K/V pools are written with set_rows (F32 or F16, converted on the device), then every query row
// of a mixed batch (prefill rows of one sequence, the last token of the others) attends.
TEST_F(CpuVsReference, PagedAttentionSweep) {
  constexpr int kPage = 16;
  constexpr int kMaxBlocks = 4;
  const std::vector<int32_t> lens = {1, 17, 45};
  for (DType pool_type : {DType::kF32, DType::kF16}) {
    for (int ratio : {1, 3, 4}) {
      for (int head_dim : {64, 40}) {
        SCOPED_TRACE(fmt::format("{} gqa={} head_dim={}", dtype_name(pool_type), ratio, head_dim));
        const int n_kv = 2;
        const int n_heads = n_kv * ratio;
        const int n_pages = 12;
        // Pages handed out in a scrambled order; each sequence owns distinct pages.
        std::vector<int32_t> pages(n_pages);
        std::iota(pages.begin(), pages.end(), 0);
        std::shuffle(pages.begin(), pages.end(), rng_);
        std::vector<int32_t> table(lens.size() * kMaxBlocks, -1);
        size_t next = 0;
        for (size_t s = 0; s < lens.size(); ++s) {
          for (int b = 0; b < (lens[s] + kPage - 1) / kPage; ++b)
            table[s * kMaxBlocks + b] = pages[next++];
        }
        // Every cached token's pool row and random K/V contents.
        std::vector<int32_t> rows;
        for (size_t s = 0; s < lens.size(); ++s) {
          for (int t = 0; t < lens[s]; ++t) {
            rows.push_back(table[s * kMaxBlocks + t / kPage] * kPage + t % kPage);
          }
        }
        const int64_t kv_cols = static_cast<int64_t>(n_kv) * head_dim;
        const std::vector<float> kv_k = random_floats(rng_, rows.size() * kv_cols, -2, 2);
        const std::vector<float> kv_v = random_floats(rng_, rows.size() * kv_cols, -2, 2);
        // Query rows: all of sequence 1 (prefill) plus the last token of sequences 0 and 2.
        std::vector<int32_t> q_seq, q_pos;
        for (int t = 0; t < lens[1]; ++t) {
          q_seq.push_back(1);
          q_pos.push_back(t);
        }
        q_seq.insert(q_seq.end(), {0, 2});
        q_pos.insert(q_pos.end(), {lens[0] - 1, lens[2] - 1});
        const auto nq = static_cast<int64_t>(q_seq.size());
        const int64_t q_cols = static_cast<int64_t>(n_heads) * head_dim;
        const std::vector<float> q = random_floats(rng_, static_cast<size_t>(nq * q_cols), -2, 2);
        const AttentionParams p{.n_heads = n_heads,
                                .n_kv_heads = n_kv,
                                .head_dim = head_dim,
                                .page_size = kPage,
                                .max_blocks = kMaxBlocks,
                                .scale = 1.0f / std::sqrt(static_cast<float>(head_dim)),
                                .token_seq = q_seq,
                                .token_pos = q_pos,
                                .block_table = table};
        std::vector<float> got[2];
        Device* devs[2] = {cpu_.get(), ref_.get()};
        Stream* streams[2] = {cpu_stream_.get(), ref_stream_.get()};
        for (int d = 0; d < 2; ++d) {
          Device& dev = *devs[d];
          auto kpool = make_tensor(dev, pool_type, n_pages * kPage, kv_cols, nullptr);
          auto vpool = make_tensor(dev, pool_type, n_pages * kPage, kv_cols, nullptr);
          auto ksrc = make_f32(dev, static_cast<int64_t>(rows.size()), kv_cols, kv_k);
          auto vsrc = make_f32(dev, static_cast<int64_t>(rows.size()), kv_cols, kv_v);
          streams[d]->set_rows(ksrc.view, rows, kpool.view);
          streams[d]->set_rows(vsrc.view, rows, vpool.view);
          auto qt = make_f32(dev, nq, q_cols, q, 4);
          auto out = make_f32(dev, nq, q_cols, {});
          streams[d]->attention(qt.view, kpool.view, vpool.view, p, out.view);
          got[d] = read_f32(dev, out);
        }
        EXPECT_LE(nmse(got[0], got[1]), pool_type == DType::kF32 ? kF32Limit : kAttnF16Limit);
      }
    }
  }
}

}  // namespace
}  // namespace luzao
