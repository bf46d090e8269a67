// Round-trip error bounds of every quantizer, derived per block from the format's definition,
// plus row-length handling (odd block counts, nothing written past the row) and the activation
// formats' side data (Q8_1 s, Q8_K bsums).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "tensor/blocks.h"
#include "tensor/dtype.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

enum class Shape { kGaussian, kUniform, kOutliers, kPositive, kTiny };

std::vector<float> make_row(int64_t n, Shape shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_real_distribution<float> uni(-2.0f, 2.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (size_t i = 0; i < x.size(); ++i) {
    switch (shape) {
      case Shape::kGaussian:
        x[i] = gauss(rng);
        break;
      case Shape::kUniform:
        x[i] = uni(rng);
        break;
      case Shape::kOutliers:
        x[i] = (i % 29 == 3) ? 50.0f * gauss(rng) : gauss(rng);
        break;
      case Shape::kPositive:
        x[i] = std::fabs(gauss(rng)) + 0.25f;
        break;
      case Shape::kTiny:
        x[i] = 1e-4f * gauss(rng);
        break;
    }
  }
  return x;
}

constexpr Shape kShapes[] = {Shape::kGaussian, Shape::kUniform, Shape::kOutliers, Shape::kPositive,
                             Shape::kTiny};

float block_amax(const float* x, int n) {
  float a = 0.0f;
  for (int j = 0; j < n; ++j) a = std::max(a, std::fabs(x[j]));
  return a;
}

// Quantizes x (n elements) to `type`, dequantizes, returns the result. Checks that the quantizer
// writes exactly row_bytes bytes and the dequantizer exactly n floats (canaries after both).
std::vector<float> round_trip(DType type, const std::vector<float>& x, std::vector<uint8_t>* q) {
  const auto n = static_cast<int64_t>(x.size());
  const uint64_t bytes = row_bytes(type, static_cast<uint64_t>(n)).value();
  q->assign(bytes + 64, 0xCD);
  quantize_row(type, x.data(), q->data(), n);
  for (uint64_t i = bytes; i < q->size(); ++i) EXPECT_EQ((*q)[i], 0xCD) << "wrote past the row";
  std::vector<float> y(x.size() + 16, 12345.0f);
  dequantize_row(type, q->data(), y.data(), n);
  for (size_t i = x.size(); i < y.size(); ++i) EXPECT_EQ(y[i], 12345.0f) << "wrote past the row";
  y.resize(x.size());
  return y;
}

// Per-block bound: |x - x'| <= step_fraction * |d| + qmax * |d - d16| + |m - m16| + slack,
// where d/m are the exact fp32 scale/minimum the format defines and d16/m16 what was stored.
struct Bound {
  float step_fraction;  // 0.5 for round-to-nearest, 1 where the top code clamps
  float qmax;           // largest |code| multiplying d
};

template <typename Block>
void check_legacy(DType type, Bound bound, bool has_min) {
  for (Shape shape : kShapes) {
    for (int64_t blocks : {1, 7, 13}) {
      const std::vector<float> x = make_row(32 * blocks, shape, static_cast<uint32_t>(blocks) * 7);
      std::vector<uint8_t> q;
      const std::vector<float> y = round_trip(type, x, &q);
      for (int64_t b = 0; b < blocks; ++b) {
        const float* xb = x.data() + 32 * b;
        Block blk{};
        std::memcpy(&blk, q.data() + b * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
        float d = 0.0f;
        float m_err = 0.0f;
        if (has_min) {
          const float mn = *std::min_element(xb, xb + 32);
          const float mx = *std::max_element(xb, xb + 32);
          d = (mx - mn) / bound.qmax;
          if constexpr (requires { blk.m; }) m_err = std::fabs(mn - fp16_to_fp32(blk.m));
        } else {
          d = block_amax(xb, 32) / bound.qmax;
        }
        const float d16 = std::fabs(fp16_to_fp32(blk.d));
        const float limit = bound.step_fraction * d + bound.qmax * std::fabs(d - d16) + m_err +
                            1e-6f * block_amax(xb, 32) + 1e-30f;
        for (int j = 0; j < 32; ++j) {
          ASSERT_LE(std::fabs(xb[j] - y[32 * b + j]), limit)
              << dtype_name(type) << " shape " << static_cast<int>(shape) << " block " << b
              << " elem " << j << " x " << xb[j] << " y " << y[32 * b + j];
        }
      }
    }
  }
}

TEST(QuantRoundTrip, Q8_0WithinHalfStep) {
  check_legacy<BlockQ8_0>(DType::kQ8_0, {0.5f, 127}, false);
}
// Q4_0/Q5_0 put the largest-magnitude value at code 0 (-8/-16 steps); a value of the opposite sign
// and the same magnitude would need code 16/32 and clamps to 15/31: error up to one step.
TEST(QuantRoundTrip, Q4_0WithinOneStep) {
  check_legacy<BlockQ4_0>(DType::kQ4_0, {1.0f, 8}, false);
}
TEST(QuantRoundTrip, Q5_0WithinOneStep) {
  check_legacy<BlockQ5_0>(DType::kQ5_0, {1.0f, 16}, false);
}
TEST(QuantRoundTrip, Q4_1WithinHalfStep) {
  check_legacy<BlockQ4_1>(DType::kQ4_1, {0.5f, 15}, true);
}
TEST(QuantRoundTrip, Q5_1WithinHalfStep) {
  check_legacy<BlockQ5_1>(DType::kQ5_1, {0.5f, 31}, true);
}

TEST(QuantRoundTrip, Q4_0TypicalErrorIsSmall) {
  // On Gaussian data 4-bit error is far below the worst-case bound: RMS under 10% of RMS signal.
  const std::vector<float> x = make_row(32 * 64, Shape::kGaussian, 99);
  std::vector<uint8_t> q;
  const std::vector<float> y = round_trip(DType::kQ4_0, x, &q);
  double err = 0;
  double sig = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (x[i] - y[i]) * (x[i] - y[i]);
    sig += x[i] * x[i];
  }
  EXPECT_LT(std::sqrt(err / sig), 0.10);
  EXPECT_GT(std::sqrt(err / sig), 0.01);  // and it is lossy: the test would notice a no-op
}

TEST(QuantRoundTrip, Q8_KWithinHalfStepAndBsums) {
  for (Shape shape : kShapes) {
    for (int64_t blocks : {1, 3}) {
      const std::vector<float> x = make_row(256 * blocks, shape, 5 + static_cast<uint32_t>(blocks));
      std::vector<BlockQ8_K> q(static_cast<size_t>(blocks));
      quantize_row_q8_K(x.data(), q.data(), 256 * blocks);
      std::vector<float> y(x.size());
      dequantize_row_q8_K(q.data(), y.data(), 256 * blocks);
      for (int64_t b = 0; b < blocks; ++b) {
        const BlockQ8_K& blk = q[static_cast<size_t>(b)];
        const float amax = block_amax(x.data() + 256 * b, 256);
        EXPECT_NEAR(std::fabs(blk.d), amax / 127.0f, amax * 1e-6f);
        int hit_127 = 0;
        for (int j = 0; j < 256; ++j) {
          ASSERT_LE(std::fabs(x[256 * b + j] - y[256 * b + j]), std::fabs(blk.d) * 0.5f * 1.0001f);
          hit_127 += std::abs(blk.qs[j]) == 127;
        }
        EXPECT_GE(hit_127, 1);  // the largest magnitude maps to the full range
        for (int g = 0; g < 16; ++g) {
          int sum = 0;
          for (int l = 0; l < 16; ++l) sum += blk.qs[16 * g + l];
          EXPECT_EQ(blk.bsums[g], sum);
        }
      }
    }
  }
}

TEST(QuantRoundTrip, Q8_KSignConvention) {
  // llama.cpp scales by -127 / (signed max): a block whose largest value is positive gets a
  // negative d and that value's code is -127.
  std::vector<float> x(256, 0.5f);
  x[17] = 2.0f;
  BlockQ8_K blk{};
  quantize_row_q8_K(x.data(), &blk, 256);
  EXPECT_LT(blk.d, 0.0f);
  EXPECT_EQ(blk.qs[17], -127);
  EXPECT_EQ(blk.qs[0], -32);  // -127 * 0.5 / 2 = -31.75
  x[17] = -2.0f;
  quantize_row_q8_K(x.data(), &blk, 256);
  EXPECT_GT(blk.d, 0.0f);
  EXPECT_EQ(blk.qs[17], -127);
  EXPECT_EQ(blk.qs[0], 32);
  // -127 * 0.25 / 2 = -15.875 -> -16; exact ties (31.75 above is not one) round to even.
  std::vector<float> ties(256, 0.0f);
  ties[0] = -127.0f;
  ties[1] = 0.5f;  // 0.5 -> code 0.5 -> 0 (even)
  ties[2] = 1.5f;  // -> 2
  ties[3] = 2.5f;  // -> 2
  quantize_row_q8_K(ties.data(), &blk, 256);
  EXPECT_EQ(blk.d, 1.0f);
  EXPECT_EQ(blk.qs[1], 0);
  EXPECT_EQ(blk.qs[2], 2);
  EXPECT_EQ(blk.qs[3], 2);
}

TEST(QuantRoundTrip, Q8_KZeroBlock) {
  std::vector<float> x(512, 0.0f);
  x[300] = 1.0f;
  std::vector<BlockQ8_K> q(2);
  std::memset(q.data(), 0x5A, q.size() * sizeof(BlockQ8_K));
  quantize_row_q8_K(x.data(), q.data(), 512);
  EXPECT_EQ(q[0].d, 0.0f);
  for (int j = 0; j < 256; ++j) EXPECT_EQ(q[0].qs[j], 0);
  for (int g = 0; g < 16; ++g) EXPECT_EQ(q[0].bsums[g], 0);
  EXPECT_EQ(q[1].qs[300 - 256], -127);
}

TEST(QuantRoundTrip, Q8_1CarriesScaledSum) {
  for (Shape shape : kShapes) {
    const std::vector<float> x = make_row(32 * 7, shape, 11);
    std::vector<BlockQ8_1> q(7);
    quantize_row_q8_1(x.data(), q.data(), 32 * 7);
    std::vector<BlockQ8_0> q0(7);
    quantize_row_q8_0(x.data(), q0.data(), 32 * 7);
    for (int b = 0; b < 7; ++b) {
      // Same scale and codes as Q8_0; s = fp16(d * sum(q)) with the fp32 d.
      EXPECT_EQ(q[b].d, q0[b].d);
      EXPECT_EQ(std::memcmp(q[b].qs, q0[b].qs, 32), 0);
      int sum = 0;
      for (int j = 0; j < 32; ++j) sum += q[b].qs[j];
      const float d = block_amax(x.data() + 32 * b, 32) / 127.0f;
      EXPECT_EQ(q[b].s, fp32_to_fp16(static_cast<float>(sum) * d));
    }
  }
}

TEST(QuantRoundTrip, Q4_0SignedMaxRule) {
  // d = (signed value of largest magnitude) / -8: here -4 / -8 = 0.5, so -4 -> code 0 and +4
  // would be code 16, clamped to 15 (3.5).
  std::vector<float> x(32, 0.0f);
  x[0] = -4.0f;
  x[1] = 4.0f;
  x[2] = 1.25f;  // 1.25 / 0.5 + 8.5 = 11 -> 3 steps = 1.5 (truncation of +8.5 rounds half up)
  x[3] = 1.0f;   // 2 + 8.5 = 10.5 -> 10 -> 1.0
  BlockQ4_0 blk{};
  quantize_row_q4_0(x.data(), &blk, 32);
  EXPECT_EQ(fp16_to_fp32(blk.d), 0.5f);
  std::vector<float> y(32);
  dequantize_row_q4_0(&blk, y.data(), 32);
  EXPECT_EQ(y[0], -4.0f);
  EXPECT_EQ(y[1], 3.5f);
  EXPECT_EQ(y[2], 1.5f);
  EXPECT_EQ(y[3], 1.0f);
  EXPECT_EQ(y[4], 0.0f);
}

TEST(QuantRoundTrip, AllZeroBlocks) {
  const std::vector<float> x(256, 0.0f);
  for (DType t : {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                  DType::kQ8_K, DType::kF16, DType::kBF16}) {
    std::vector<uint8_t> q;
    const std::vector<float> y = round_trip(t, x, &q);
    for (float v : y) ASSERT_EQ(v, 0.0f) << dtype_name(t);
  }
}

TEST(QuantRoundTrip, FloatFormatsRelativeError) {
  const std::vector<float> x = make_row(32 * 7, Shape::kOutliers, 3);
  std::vector<uint8_t> q;
  const std::vector<float> h = round_trip(DType::kF16, x, &q);
  const std::vector<float> b = round_trip(DType::kBF16, x, &q);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::fabs(x[i]) > 1e-4f) {
      ASSERT_LE(std::fabs(x[i] - h[i]), std::fabs(x[i]) * 0x1p-11f);
    }
    ASSERT_LE(std::fabs(x[i] - b[i]), std::fabs(x[i]) * 0x1p-8f);
  }
}

}  // namespace
}  // namespace luzao
