// Overflow-checked size arithmetic of core/checked_math.h at the uint64_t boundaries.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "core/checked_math.h"

namespace luzao {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

TEST(CheckedMath, Add) {
  EXPECT_EQ(checked_add(2, 3), 5u);
  EXPECT_EQ(checked_add(kMax, 0), kMax);
  EXPECT_EQ(checked_add(kMax - 5, 5), kMax);
  EXPECT_FALSE(checked_add(kMax, 1).has_value());
  EXPECT_FALSE(checked_add(kMax - 5, 6).has_value());
  EXPECT_FALSE(checked_add(uint64_t{1} << 63, uint64_t{1} << 63).has_value());
}

TEST(CheckedMath, Mul) {
  EXPECT_EQ(checked_mul(0, kMax), 0u);
  EXPECT_EQ(checked_mul(kMax, 1), kMax);
  EXPECT_EQ(checked_mul(uint64_t{1} << 32, uint64_t{1} << 31), uint64_t{1} << 63);
  EXPECT_FALSE(checked_mul(uint64_t{1} << 32, uint64_t{1} << 32).has_value());
  EXPECT_EQ(checked_mul(kMax / 3, 3), kMax);  // 2^64 - 1 is divisible by 3
  EXPECT_FALSE(checked_mul(kMax / 3 + 1, 3).has_value());
  EXPECT_EQ(checked_mul(49152, 576), 28311552u);
}

TEST(CheckedMath, AlignUp) {
  EXPECT_EQ(checked_align_up(0, 32), 0u);
  EXPECT_EQ(checked_align_up(1, 32), 32u);
  EXPECT_EQ(checked_align_up(32, 32), 32u);
  EXPECT_EQ(checked_align_up(33, 32), 64u);
  EXPECT_EQ(checked_align_up(17, 1), 17u);
  EXPECT_EQ(checked_align_up(10, 3), 12u);                // any alignment, not only powers of two
  EXPECT_EQ(checked_align_up(kMax - 31, 32), kMax - 31);  // already aligned: 2^64 - 32
  EXPECT_EQ(checked_align_up(kMax - 40, 32), kMax - 31);
  EXPECT_FALSE(checked_align_up(kMax - 30, 32).has_value());
  EXPECT_FALSE(checked_align_up(kMax, 2).has_value());
}

}  // namespace
}  // namespace luzao
