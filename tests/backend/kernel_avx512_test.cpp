// The AVX-512 VNNI tile kernels (when this CPU has them): every register-tile shape gives exactly
// the one-row dot product for every output, on odd shapes, and the vectorised activation
// converters write the very bytes of the scalar ones, with the codes and scales of Q8_0/Q8_1.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/vec_dot.h"
#include "core/half.h"
#include "tensor/blocks.h"
#include "tensor/dtype.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

using cpu::KernelTable;
using cpu::MatMulKernel;

const DType kTileTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                            DType::kQ8_0, DType::kQ4_K, DType::kQ6_K, DType::kF16};

// m rows of random bits, every fp16 scale field then set to a small finite value.
std::vector<uint8_t> random_rows(DType t, int64_t m, int64_t k, std::mt19937& rng) {
  const size_t rb = *row_bytes(t, static_cast<uint64_t>(k));
  std::vector<uint8_t> data(rb * static_cast<size_t>(m));
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : data) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  const auto put = [&](size_t at, float v) {
    const uint16_t h = fp32_to_fp16(v);
    std::memcpy(data.data() + at, &h, 2);
  };
  if (t == DType::kF16) {
    for (size_t i = 0; i < data.size() / 2; ++i) put(2 * i, val(rng));
    return data;
  }
  const size_t bb = dtype_info(t).block_bytes;
  for (size_t off = 0; off < data.size(); off += bb) {
    const float d = 0.001f + 0.02f * std::fabs(val(rng));
    switch (t) {
      case DType::kQ4_0:
      case DType::kQ5_0:
      case DType::kQ8_0:
        put(off, d);
        break;
      case DType::kQ4_1:
      case DType::kQ5_1:
      case DType::kQ4_K:
        put(off, d);
        put(off + 2, val(rng) * (t == DType::kQ4_K ? 0.01f : 1.0f));
        break;
      case DType::kQ6_K:
        put(off + offsetof(BlockQ6_K, d), d);
        break;
      default:
        ADD_FAILURE() << dtype_name(t);
    }
  }
  return data;
}

std::vector<float> random_floats(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> val(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = val(rng);
  return x;
}

std::vector<int64_t> k_sweep(DType t) {
  if (t == DType::kF16) return {1, 15, 16, 17, 100, 576};
  if (t == DType::kQ4_K || t == DType::kQ6_K) return {256, 768, 1536};
  return {32, 64, 96, 224, 608, 896};
}

class Avx512Kernels : public ::testing::Test {
 protected:
  void SetUp() override {
    features_ = cpu::detect_cpu_features();
    if (!features_.avx512_vnni) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
    table_ = cpu::make_kernel_table(features_);
  }
  cpu::CpuFeatures features_;
  KernelTable table_;
  std::mt19937 rng_{2024};
};

TEST_F(Avx512Kernels, EveryTileShapeEqualsTheRowDotExactly) {
  int checked = 0;
  for (DType t : kTileTypes) {
    const MatMulKernel& kern = table_[cpu::kernel_slot(t)];
    ASSERT_NE(kern.gemm, nullptr) << dtype_name(t);
    for (int64_t k : k_sweep(t)) {
      const int rows = kern.tile_rows, tokens = kern.tile_tokens;
      const size_t wstride = *row_bytes(t, static_cast<uint64_t>(k));
      const std::vector<uint8_t> w = random_rows(t, rows, k, rng_);
      const size_t astride = (kern.act.row_bytes(k) + 63) / 64 * 64 + 64;  // odd-ish stride
      std::vector<uint8_t> act(astride * static_cast<size_t>(tokens));
      const std::vector<float> x = random_floats(rng_, static_cast<size_t>(k * tokens));
      for (int j = 0; j < tokens; ++j)
        kern.act.convert(x.data() + j * k, act.data() + j * astride, k);
      std::vector<float> want(static_cast<size_t>(rows * tokens));
      for (int j = 0; j < tokens; ++j) {
        for (int r = 0; r < rows; ++r) {
          want[j * rows + r] = kern.dot(k, w.data() + r * wstride, act.data() + j * astride);
        }
      }
      for (int nr = 1; nr <= rows; ++nr) {
        for (int nt = 1; nt <= tokens; ++nt) {
          const size_t os = 7;  // output row stride in floats, wider than any tile
          std::vector<float> out(os * static_cast<size_t>(nt), NAN);
          kern.gemm(k, w.data(), wstride, nr, act.data(), astride, nt, out.data(), os);
          for (int j = 0; j < nt; ++j) {
            for (int r = 0; r < nr; ++r) {
              ASSERT_EQ(out[j * os + r], want[j * rows + r])
                  << dtype_name(t) << " k=" << k << " tile " << nr << "x" << nt << " at " << r
                  << "," << j;
            }
            for (size_t r = static_cast<size_t>(nr); r < os; ++r) {
              ASSERT_TRUE(std::isnan(out[j * os + r])) << "tile wrote outside its rows";
            }
          }
        }
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 5 * 6 + 2 * 3 + 6);
}

// Codes and scales of a row in an X layout, compared with the block formats.
void expect_same_as_blocks(const std::vector<uint8_t>& xrow, const float* x, int64_t k,
                           bool with_s) {
  const int64_t nb = k / 32;
  std::vector<BlockQ8_1> blocks(static_cast<size_t>(nb));
  const cpu::ActFormat& ref = with_s ? cpu::kActQ8_1 : cpu::kActQ8_0;
  std::vector<uint8_t> raw(ref.row_bytes(k));
  ref.convert(x, raw.data(), k);
  const auto* qs = reinterpret_cast<const int8_t*>(xrow.data());
  const auto* d = reinterpret_cast<const float*>(xrow.data() + k);
  const auto* extra = d + nb;
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* want_qs;
    uint16_t want_d, want_s = 0;
    if (with_s) {
      const auto* blk = reinterpret_cast<const BlockQ8_1*>(raw.data()) + b;
      want_qs = blk->qs;
      want_d = blk->d;
      want_s = blk->s;
    } else {
      const auto* blk = reinterpret_cast<const BlockQ8_0*>(raw.data()) + b;
      want_qs = blk->qs;
      want_d = blk->d;
    }
    ASSERT_EQ(std::memcmp(qs + 32 * b, want_qs, 32), 0) << "block " << b;
    ASSERT_EQ(d[b], fp16_to_fp32(want_d)) << "block " << b;
    if (with_s) {
      ASSERT_EQ(extra[b], fp16_to_fp32(want_s) / 8) << "block " << b;
    } else {
      int32_t sum = 0;
      for (int j = 0; j < 32; ++j) sum += want_qs[j];
      ASSERT_EQ(reinterpret_cast<const int32_t*>(extra)[b], sum) << "block " << b;
    }
  }
}

TEST_F(Avx512Kernels, ActivationConvertersMatchScalarBytesAndBlockFormats) {
  const cpu::ActFormat& q80x = table_[cpu::kernel_slot(DType::kQ4_0)].act;
  const cpu::ActFormat& q81x = table_[cpu::kernel_slot(DType::kQ4_1)].act;
  const cpu::ActFormat& f16x = table_[cpu::kernel_slot(DType::kF16)].act;
  ASSERT_STREQ(q80x.name, "q8_0x");
  ASSERT_STREQ(q81x.name, "q8_1x");
  ASSERT_STREQ(f16x.name, "f16x");
  for (int64_t k : {32, 96, 576, 4864}) {
    std::vector<float> x = random_floats(rng_, static_cast<size_t>(k));
    // A block whose codes land exactly on .5 (amax 127 -> scale 1): ties take the scalar rule.
    for (int j = 0; j < 32; ++j) x[j] = j == 0 ? 127.0f : static_cast<float>(j) - 15.5f;
    if (k >= 64) std::fill(x.begin() + 32, x.begin() + 64, 0.0f);  // an all-zero block
    for (const auto* pair : {&q80x, &q81x}) {
      const cpu::ActFormat& simd = *pair;
      const cpu::ActFormat& scalar = pair == &q80x ? cpu::kActQ8_0X : cpu::kActQ8_1X;
      std::vector<uint8_t> a(simd.row_bytes(k)), b(scalar.row_bytes(k));
      simd.convert(x.data(), a.data(), k);
      scalar.convert(x.data(), b.data(), k);
      EXPECT_EQ(a, b) << simd.name << " k=" << k;
      expect_same_as_blocks(a, x.data(), k, pair == &q81x);
    }
    std::vector<float> a(static_cast<size_t>(k)), b(static_cast<size_t>(k));
    f16x.convert(x.data(), a.data(), k);
    cpu::kActF16X.convert(x.data(), b.data(), k);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << "f16x k=" << k;
    for (int64_t i = 0; i < k; ++i) ASSERT_EQ(a[i], fp16_to_fp32(fp32_to_fp16(x[i])));
  }
}

TEST_F(Avx512Kernels, Q8KConverterMatchesTheScalarBytes) {
  const cpu::ActFormat& simd = table_[cpu::kernel_slot(DType::kQ4_K)].act;
  ASSERT_STREQ(simd.name, "q8_K");
  ASSERT_EQ(table_[cpu::kernel_slot(DType::kQ6_K)].act.convert, simd.convert);
  for (int64_t k : {256, 768, 4864}) {
    std::vector<float> x = random_floats(rng_, static_cast<size_t>(k));
    // Block 0: +127 and -127 (the first one sets the scale's sign: -1), codes on exact .5 ties.
    for (int j = 0; j < 64; ++j) x[j] = static_cast<float>(j % 32) - 15.5f;
    x[3] = 127.0f;
    x[9] = -127.0f;
    if (k >= 512) std::fill(x.begin() + 256, x.begin() + 512, 0.0f);  // an all-zero block
    if (k >= 768) x[700] = -3.0f;  // a lone extreme of either sign
    std::vector<uint8_t> a(simd.row_bytes(k)), b(cpu::kActQ8_K.row_bytes(k));
    simd.convert(x.data(), a.data(), k);
    cpu::kActQ8_K.convert(x.data(), b.data(), k);
    EXPECT_EQ(a, b) << "k=" << k;
  }
}

}  // namespace
}  // namespace luzao
