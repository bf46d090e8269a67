// fp16/bf16 conversions of core/half.h: all 65536 bit patterns against a reference built from
// ldexp, round trips, every rounding boundary (midpoints between neighbours) and random floats
// against a nearest-value search.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/half.h"

namespace luzao {
namespace {

bool is_half_nan(uint16_t h) {
  return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
}

// Value of an fp16 bit pattern from its definition: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m.
double half_reference(uint16_t h) {
  const double sign = (h & 0x8000u) ? -1.0 : 1.0;
  const int e = (h >> 10) & 0x1f;
  const int m = h & 0x3ff;
  if (e == 31) return m == 0 ? sign * std::numeric_limits<double>::infinity() : std::nan("");
  if (e == 0) return sign * std::ldexp(static_cast<double>(m), -24);
  return sign * std::ldexp(static_cast<double>(1024 + m), e - 25);
}

TEST(Half, DecodesEveryPattern) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<uint16_t>(i);
    const float got = fp16_to_fp32(h);
    if (is_half_nan(h)) {
      ASSERT_TRUE(std::isnan(got)) << std::hex << i;
      ASSERT_EQ(std::signbit(got), (h & 0x8000u) != 0) << std::hex << i;
      continue;
    }
    const double want = half_reference(h);
    ASSERT_EQ(static_cast<double>(got), want) << std::hex << i;
    ASSERT_EQ(std::signbit(got), (h & 0x8000u) != 0) << std::hex << i;  // -0.0 stays negative
  }
}

TEST(Half, RoundTripsEveryPattern) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<uint16_t>(i);
    const uint16_t back = fp32_to_fp16(fp16_to_fp32(h));
    if (is_half_nan(h)) {
      ASSERT_TRUE(is_half_nan(back)) << std::hex << i;
      ASSERT_EQ(back & 0x8000u, h & 0x8000u) << std::hex << i;
    } else {
      ASSERT_EQ(back, h) << std::hex << i;
    }
  }
}

// Between each pair of neighbouring finite halves a < b (same sign), the exact midpoint (an exact
// float: halves have 11 significant bits) rounds to the one with an even mantissa, and the floats
// just either side of it round to the nearer one.
TEST(Half, RoundsToNearestEvenAtEveryBoundary) {
  for (uint32_t sign : {0u, 0x8000u}) {
    for (uint32_t i = 0; i < 0x7bff; ++i) {
      const auto lo = static_cast<uint16_t>(sign | i);
      const auto hi = static_cast<uint16_t>(sign | (i + 1));
      const double mid = (half_reference(lo) + half_reference(hi)) / 2;
      const auto midf = static_cast<float>(mid);
      ASSERT_EQ(static_cast<double>(midf), mid);
      const uint16_t even = (i % 2 == 0) ? lo : hi;
      ASSERT_EQ(fp32_to_fp16(midf), even) << std::hex << i;
      const float toward_lo = std::nextafter(midf, 0.0f);
      const float toward_hi = std::nextafter(midf, sign ? -1e9f : 1e9f);
      ASSERT_EQ(fp32_to_fp16(toward_lo), lo) << std::hex << i;
      ASSERT_EQ(fp32_to_fp16(toward_hi), hi) << std::hex << i;
    }
  }
}

TEST(Half, SpecialValues) {
  EXPECT_EQ(fp32_to_fp16(0.0f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(65519.996f), 0x7bff);  // just under the midpoint to 2^16
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);    // midpoint, odd mantissa: rounds to infinity
  EXPECT_EQ(fp32_to_fp16(1e10f), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(-1e10f), 0xfc00);
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_TRUE(is_half_nan(fp32_to_fp16(std::nanf(""))));
  EXPECT_TRUE(is_half_nan(fp32_to_fp16(-std::nanf(""))));
  EXPECT_EQ(fp32_to_fp16(0x1p-24f), 0x0001);  // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(0x1p-25f), 0x0000);  // tie between 0 and 2^-24: even is 0
  EXPECT_EQ(fp32_to_fp16(0x1.000002p-25f), 0x0001);
  EXPECT_EQ(fp32_to_fp16(0x1.8p-24f), 0x0002);    // tie between 1 and 2 units: even is 2
  EXPECT_EQ(fp32_to_fp16(0x1p-14f), 0x0400);      // smallest normal
  EXPECT_EQ(fp32_to_fp16(0x1.ff8p-15f), 0x03ff);  // largest subnormal, exact
  EXPECT_EQ(fp32_to_fp16(0x1.ffcp-15f), 0x0400);  // largest subnormal + half a unit: ties to even
  EXPECT_EQ(fp32_to_fp16(1e-30f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::denorm_min()), 0x0000);
}

// Nearest finite half to v (|v| < 65520) by binary search over the ordered positive patterns,
// ties to the even pattern: a reference that shares no code with the bit-twiddling conversion.
uint16_t nearest_half(float v) {
  const double a = std::fabs(static_cast<double>(v));
  uint32_t lo = 0;
  uint32_t hi = 0x7bff;
  while (lo < hi) {  // largest pattern whose value is <= a
    const uint32_t mid = (lo + hi + 1) / 2;
    if (half_reference(static_cast<uint16_t>(mid)) <= a) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  uint32_t best = lo;
  if (lo < 0x7bff) {
    const double dl = a - half_reference(static_cast<uint16_t>(lo));
    const double du = half_reference(static_cast<uint16_t>(lo + 1)) - a;
    if (du < dl || (du == dl && (lo % 2) == 1)) best = lo + 1;
  }
  return static_cast<uint16_t>(best | (std::signbit(v) ? 0x8000u : 0u));
}

TEST(Half, RandomFloatsMatchNearestSearch) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> exponent(-27.0f, 15.9f);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  for (int i = 0; i < 200000; ++i) {
    float v = std::ldexp(mantissa(rng), static_cast<int>(std::floor(exponent(rng))));
    if (rng() & 1) v = -v;
    if (std::fabs(v) >= 65520.0f) continue;
    ASSERT_EQ(fp32_to_fp16(v), nearest_half(v)) << v;
  }
}

TEST(BFloat16, DecodesAndRoundTripsEveryPattern) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<uint16_t>(i);
    const float f = bf16_to_fp32(h);
    // bf16 is the top half of an fp32: same sign, 8-bit exponent, 7-bit mantissa.
    ASSERT_EQ(std::bit_cast<uint32_t>(f), i << 16);
    const bool nan = (i & 0x7f80u) == 0x7f80u && (i & 0x7fu) != 0;
    const uint16_t back = fp32_to_bf16(f);
    if (nan) {
      ASSERT_TRUE(std::isnan(bf16_to_fp32(back))) << std::hex << i;
      ASSERT_EQ(back & 0x8000u, h & 0x8000u);
    } else {
      ASSERT_EQ(back, h) << std::hex << i;
    }
  }
}

TEST(BFloat16, RoundsToNearestEvenAtEveryBoundary) {
  for (uint32_t sign : {0u, 0x8000u}) {
    for (uint32_t i = 0; i < 0x7f7f; ++i) {
      const uint32_t lo = sign | i;
      const uint32_t hi = sign | (i + 1);
      const uint32_t mid_bits = (lo << 16) | 0x8000u;  // exact midpoint of two neighbours
      const uint32_t even = (i % 2 == 0) ? lo : hi;
      ASSERT_EQ(fp32_to_bf16(std::bit_cast<float>(mid_bits)), even) << std::hex << i;
      ASSERT_EQ(fp32_to_bf16(std::bit_cast<float>(mid_bits - 1)), lo) << std::hex << i;
      ASSERT_EQ(fp32_to_bf16(std::bit_cast<float>(mid_bits + 1)), hi) << std::hex << i;
    }
  }
}

TEST(BFloat16, SpecialValues) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds past the largest
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x7f7f7fffu)), 0x7f7f);
  // A signalling NaN whose payload lives only in the low 16 bits must stay NaN (quieted).
  const uint16_t q = fp32_to_bf16(std::bit_cast<float>(0x7f800001u));
  EXPECT_EQ(q & 0x7f80u, 0x7f80u);
  EXPECT_NE(q & 0x7fu, 0u);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0xff800001u)) & 0x8000u, 0x8000u);
}

}  // namespace
}  // namespace luzao
