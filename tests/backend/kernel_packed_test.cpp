// The 16-row packed layouts and their kernels (where this CPU runs them): packing keeps every
// scale and code, and the packed kernel gives each (row, token) the dot of the unpacked kernel
// up to float summation order (K-quants: exactly), for every token count and odd block counts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/packed.h"
#include "backend/cpu/vec_dot.h"
#include "core/half.h"
#include "tensor/blocks.h"
#include "tensor/dtype.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

const DType kPackedTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0};

// `m` rows of random bits with sane fp16 scales (d, and m for the _1 formats).
std::vector<uint8_t> random_rows(DType t, int64_t m, int64_t k, std::mt19937& rng) {
  const size_t rb = *row_bytes(t, static_cast<uint64_t>(k));
  std::vector<uint8_t> data(rb * static_cast<size_t>(m));
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : data) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  const size_t bb = dtype_info(t).block_bytes;
  for (size_t off = 0; off < data.size(); off += bb) {
    const uint16_t d = fp32_to_fp16(0.001f + 0.02f * std::fabs(val(rng)));
    std::memcpy(data.data() + off + (t == DType::kQ6_K ? offsetof(BlockQ6_K, d) : 0), &d, 2);
    if (t == DType::kQ4_K) std::memcpy(data.data() + off + 2, &d, 2);  // dmin
    if (t == DType::kQ4_1 || t == DType::kQ5_1) {
      const uint16_t mn = fp32_to_fp16(val(rng));
      std::memcpy(data.data() + off + 2, &mn, 2);
    }
  }
  return data;
}

TEST(PackedLayout, KeepsEveryScaleAndCode) {
  std::mt19937 rng(5);
  for (DType t : kPackedTypes) {
    const int64_t k = 96;
    const std::vector<uint8_t> w = random_rows(t, 16, k, rng);
    const size_t rb = w.size() / 16;
    const size_t bb = dtype_info(t).block_bytes;
    std::vector<std::byte> packed(16 * rb);
    cpu::pack_group(t, reinterpret_cast<const std::byte*>(w.data()), rb, k, packed.data());
    // Same size as the rows; scales first in each block; codes recoverable per the layout.
    const size_t block = 16 * bb;
    for (int64_t b = 0; b < k / 32; ++b) {
      const auto* pb = reinterpret_cast<const uint8_t*>(packed.data()) + b * block;
      for (int j = 0; j < 16; ++j) {
        const uint8_t* src = w.data() + j * rb + b * bb;
        EXPECT_EQ(std::memcmp(pb + 2 * j, src, 2), 0) << dtype_name(t) << " d of row " << j;
        std::vector<float> want(32), got(32);
        dequantize_row(t, src, want.data(), 32);
        // Rebuild row j's block from the packed bytes and compare the dequantized values.
        std::vector<uint8_t> rebuilt(bb);
        std::memcpy(rebuilt.data(), pb + 2 * j, 2);
        size_t at = 32;
        if (t == DType::kQ4_1 || t == DType::kQ5_1) {
          std::memcpy(rebuilt.data() + 2, pb + at + 2 * j, 2);
          at += 32;
        }
        if (t == DType::kQ8_0) {
          for (int e = 0; e < 32; ++e) {
            rebuilt[2 + e] = pb[at + 64 * (e / 4) + 4 * j + e % 4] ^ 0x80;
          }
        } else {
          uint32_t qh = 0;
          if (t == DType::kQ5_0 || t == DType::kQ5_1) {
            uint64_t masks[8];
            std::memcpy(masks, pb + at, 64);
            for (int e = 0; e < 32; ++e) {
              const int h = e / 16, c = (e % 16) / 4, i = e % 4;
              qh |= static_cast<uint32_t>((masks[2 * c + h] >> (4 * j + i)) & 1) << e;
            }
            at += 64;
          }
          const size_t qs_at = t == DType::kQ4_0   ? 2
                               : t == DType::kQ4_1 ? 4
                               : t == DType::kQ5_0 ? 6
                                                   : 8;
          if (t == DType::kQ5_0) std::memcpy(rebuilt.data() + 2, &qh, 4);
          if (t == DType::kQ5_1) std::memcpy(rebuilt.data() + 4, &qh, 4);
          for (int c = 0; c < 4; ++c)
            std::memcpy(rebuilt.data() + qs_at + 4 * c, pb + at + 64 * c + 4 * j, 4);
        }
        dequantize_row(t, rebuilt.data(), got.data(), 32);
        EXPECT_EQ(got, want) << dtype_name(t) << " block " << b << " row " << j;
      }
    }
  }
}

TEST(PackedLayout, F16RowsInterleaveElementByElement) {
  const int64_t k = 64;
  std::vector<uint16_t> w(16 * k);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(i * 7919u);
  std::vector<uint16_t> packed(16 * k);
  cpu::pack_group(DType::kF16, reinterpret_cast<const std::byte*>(w.data()), 2 * k, k,
                  reinterpret_cast<std::byte*>(packed.data()));
  for (int64_t e = 0; e < k; ++e) {
    for (int j = 0; j < 16; ++j) ASSERT_EQ(packed[e * 16 + j], w[j * k + e]) << e << " " << j;
  }
}

TEST(PackedKernels, MatchTheRowDotForEveryTokenCount) {
  const cpu::CpuFeatures f = cpu::detect_cpu_features();
  if (!f.avx512_vnni) GTEST_SKIP() << "no packed kernels on this CPU (they need AVX-512 VNNI)";
  const cpu::KernelTable table = cpu::make_kernel_table(f);
  std::mt19937 rng(6);
  int checked = 0;
  std::vector<DType> types(std::begin(kPackedTypes), std::end(kPackedTypes));
  types.insert(types.end(), {DType::kF16, DType::kQ4_K, DType::kQ6_K});
  for (DType t : types) {
    const cpu::PackedFormat format = cpu::packed_format(t, f);
    ASSERT_NE(format.gemm, nullptr) << dtype_name(t);
    const cpu::MatMulKernel& kern = table[cpu::kernel_slot(t)];
    const bool k_quant = t == DType::kQ4_K || t == DType::kQ6_K;
    for (int64_t k : k_quant ? std::vector<int64_t>{256, 768, 1536, 4864 - 4864 % 256, 512}
                             : std::vector<int64_t>{32, 96, 224, 608, 896}) {
      const std::vector<uint8_t> w = random_rows(t, 16, k, rng);
      const size_t rb = w.size() / 16;
      std::vector<std::byte> packed(static_cast<size_t>(k / 32) * format.block_bytes);
      cpu::pack_group(t, reinterpret_cast<const std::byte*>(w.data()), rb, k, packed.data());
      const size_t as = (kern.act.row_bytes(k) + 63) / 64 * 64;
      std::vector<uint8_t> act(as * cpu::kPackTokens);
      std::normal_distribution<float> val(0.0f, 1.0f);
      for (int j = 0; j < cpu::kPackTokens; ++j) {
        std::vector<float> x(static_cast<size_t>(k));
        for (float& v : x) v = val(rng);
        kern.act.convert(x.data(), act.data() + j * as, k);
      }
      std::vector<float> first;  // results with T = 1, per token
      for (int tokens = 1; tokens <= cpu::kPackTokens; ++tokens) {
        const size_t os = 19;
        std::vector<float> out(os * tokens, NAN);
        format.gemm(k, packed.data(), reinterpret_cast<const std::byte*>(act.data()), as, tokens,
                    out.data(), os);
        for (int j = 0; j < tokens; ++j) {
          for (int r = 0; r < 16; ++r) {
            const float want = kern.dot(k, w.data() + r * rb, act.data() + j * as);
            const float got = out[j * os + r];
            if (k_quant) {
              // The super-block formula of the row kernel, step for step; only the compiler's
              // fusing of multiply-adds may differ (it does under the sanitizer build).
              EXPECT_NEAR(got, want, 1e-6f * (1.0f + std::fabs(want)) * static_cast<float>(k / 256))
                  << dtype_name(t) << " k=" << k << " T=" << tokens << " row " << r;
              continue;
            }
            // Same exact block sums; only the float accumulation order differs.
            EXPECT_NEAR(got, want, 1e-5f * (1.0f + std::fabs(want)) * static_cast<float>(k / 32))
                << dtype_name(t) << " k=" << k << " T=" << tokens << " token " << j << " row " << r;
          }
          for (size_t r = 16; r < os; ++r) ASSERT_TRUE(std::isnan(out[j * os + r]));
        }
        // The token count never changes a result.
        if (tokens == 1) {
          first.assign(out.begin(), out.begin() + 16);
        } else {
          EXPECT_EQ(std::vector<float>(out.begin(), out.begin() + 16), first) << dtype_name(t);
        }
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 40);
}

}  // namespace
}  // namespace luzao
