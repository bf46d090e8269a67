// Hand-built blocks with hand-computed values: pins the bit layouts documented in tensor/blocks.h
// (nibble order, fifth/high bits, packed 6-bit scales) independently of the golden files.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "tensor/blocks.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

constexpr uint16_t kOne = 0x3C00;  // fp16 1.0
constexpr uint16_t kTwo = 0x4000;  // fp16 2.0

TEST(BlockLayout, Q4_0Nibbles) {
  BlockQ4_0 b{};
  b.d = kTwo;
  std::memset(b.qs, 0x88, sizeof(b.qs));  // every code 8 -> 0
  b.qs[0] = 0x9A;                         // element 0 = 10 - 8, element 16 = 9 - 8
  b.qs[15] = 0x0F;                        // element 15 = 15 - 8, element 31 = 0 - 8
  float y[32];
  dequantize_row_q4_0(&b, y, 32);
  EXPECT_EQ(y[0], 4.0f);
  EXPECT_EQ(y[16], 2.0f);
  EXPECT_EQ(y[15], 14.0f);
  EXPECT_EQ(y[31], -16.0f);
  EXPECT_EQ(y[1], 0.0f);
}

TEST(BlockLayout, Q5_0And5_1FifthBit) {
  BlockQ5_0 b{};
  b.d = kOne;
  b.qs[1] = 0xF0;  // element 1 low 0, element 17 low 15
  // bit 17 of the little-endian word: element 17's fifth bit; bit 0: element 0's.
  b.qh[0] = 0x01;
  b.qh[2] = 0x02;
  float y[32];
  dequantize_row_q5_0(&b, y, 32);
  EXPECT_EQ(y[0], 0.0f);    // 16 - 16
  EXPECT_EQ(y[1], -16.0f);  // 0 - 16
  EXPECT_EQ(y[17], 15.0f);  // 31 - 16
  EXPECT_EQ(y[16], -16.0f);

  BlockQ5_1 c{};
  c.d = kOne;
  c.m = 0xBC00;  // -1.0
  c.qs[3] = 0x21;
  c.qh[3] = 0x80;  // bit 31: element 31
  c.qs[15] = 0x40;
  dequantize_row_q5_1(&c, y, 32);
  EXPECT_EQ(y[3], 0.0f);    // 1 - 1
  EXPECT_EQ(y[19], 1.0f);   // 2 - 1
  EXPECT_EQ(y[31], 19.0f);  // (4 | 16) - 1
}

TEST(BlockLayout, Q2_K) {
  BlockQ2_K b{};
  b.d = kOne;
  b.dmin = kOne;
  std::memset(b.scales, 0x12, sizeof(b.scales));  // scale 2, min 1
  std::memset(b.qs, 0xE4, sizeof(b.qs));          // bit pairs 0,1,2,3: code = s of e = 128h+32s+l
  b.scales[15] = 0x35;                            // last group: scale 5, min 3
  std::vector<float> y(256);
  dequantize_row_q2_K(&b, y.data(), 256);
  EXPECT_EQ(y[0], -1.0f);    // 2*0 - 1
  EXPECT_EQ(y[40], 1.0f);    // s = 1
  EXPECT_EQ(y[200], 3.0f);   // 200 = 128 + 64 + 8: s = 2
  EXPECT_EQ(y[255], 12.0f);  // s = 3, group 15: 5*3 - 3
}

TEST(BlockLayout, Q3_KScales) {
  uint8_t packed[12] = {};
  packed[0] = 0x21;  // scale 0 low nibble 1, scale 8 low nibble 2
  packed[4] = 0x0F;  // scale 4 low 15, scale 12 low 0
  packed[8] = 0xE4;  // top bits: scale 0 -> 0, scale 4 -> 1, scale 8 -> 2, scale 12 -> 3
  int8_t s[16];
  q3_k_scales(packed, s);
  EXPECT_EQ(s[0], 1 - 32);
  EXPECT_EQ(s[4], 31 - 32);
  EXPECT_EQ(s[8], 34 - 32);
  EXPECT_EQ(s[12], 48 - 32);
  EXPECT_EQ(s[1], -32);
}

TEST(BlockLayout, Q3_K) {
  BlockQ3_K b{};
  b.d = kOne;
  std::memset(b.scales, 0x11, 8);      // every low nibble 1
  std::memset(b.scales + 8, 0xAA, 4);  // every top pair 2: scale 33 - 32 = 1
  std::memset(b.qs, 0xE4, sizeof(b.qs));
  b.hmask[5] = 0x04;  // high bit of element 32*2 + 5 = 69 only
  std::vector<float> y(256);
  dequantize_row_q3_K(&b, y.data(), 256);
  EXPECT_EQ(y[5], -4.0f);    // low 0, high bit clear -> 0 - 4
  EXPECT_EQ(y[69], 2.0f);    // s = 2, high bit set -> 2
  EXPECT_EQ(y[70], -2.0f);   // s = 2, clear -> 2 - 4
  EXPECT_EQ(y[133], -4.0f);  // bit 4 of hmask[5] clear
  EXPECT_EQ(y[255], -1.0f);  // s = 3 -> 3 - 4
}

TEST(BlockLayout, Q4_KScaleMin) {
  uint8_t scales[12] = {};
  scales[0] = 0xC5;  // group 0 scale 5; top bits 3 go to group 4's scale
  scales[4] = 0x47;  // group 0 min 7; top bits 1 go to group 4's min
  scales[8] = 0x3A;  // group 4: scale low 0xA, min low 3
  uint8_t sc = 0;
  uint8_t m = 0;
  q4_k_scale_min(scales, 0, &sc, &m);
  EXPECT_EQ(sc, 5);
  EXPECT_EQ(m, 7);
  q4_k_scale_min(scales, 4, &sc, &m);
  EXPECT_EQ(sc, 58);  // 0xA | 3 << 4
  EXPECT_EQ(m, 19);   // 3 | 1 << 4
}

TEST(BlockLayout, Q4_KAndQ5_K) {
  const uint8_t scales[12] = {1, 2, 3, 4, 0, 0, 0, 0, 5, 6, 7, 8};  // scale g + 1, min 0
  BlockQ4_K b{};
  b.d = kOne;
  b.dmin = kOne;
  std::memcpy(b.scales, scales, 12);
  std::memset(b.qs, 0x31, sizeof(b.qs));  // even groups read 1, odd groups read 3
  b.qs[32 * 3 + 4] = 0x0F;                // group 6 (low nibble), element 196
  std::vector<float> y(256);
  dequantize_row_q4_K(&b, y.data(), 256);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[32], 6.0f);     // group 1: 2 * 3
  EXPECT_EQ(y[64], 3.0f);     // group 2: 3 * 1
  EXPECT_EQ(y[196], 105.0f);  // group 6: 7 * 15
  EXPECT_EQ(y[228], 0.0f);    // group 7: 8 * 0 (high nibble of the same byte)
  EXPECT_EQ(y[255], 24.0f);   // group 7: 8 * 3

  BlockQ5_K c{};
  c.d = kOne;
  c.dmin = kOne;
  std::memcpy(c.scales, scales, 12);
  c.scales[4] = 2;  // group 0 min 2
  std::memset(c.qs, 0x31, sizeof(c.qs));
  c.qh[0] = 0x02;  // fifth bit of element 32 (group 1)
  dequantize_row_q5_K(&c, y.data(), 256);
  EXPECT_EQ(y[0], -1.0f);   // 1*1 - 2
  EXPECT_EQ(y[32], 38.0f);  // 2 * (3 | 16)
  EXPECT_EQ(y[33], 6.0f);
}

TEST(BlockLayout, Q6_K) {
  BlockQ6_K b{};
  b.d = kOne;
  std::memset(b.scales, 1, sizeof(b.scales));
  b.scales[15] = -2;
  std::memset(b.ql, 0x21, sizeof(b.ql));  // s < 2 read 1, s >= 2 read 2
  std::memset(b.qh, 0xE4, sizeof(b.qh));  // top bits = s
  b.ql[64 + 32 + 3] = 0x5F;               // h = 1, s & 1 = 1, l = 3: elements 163 (s=1), 227 (s=3)
  std::vector<float> y(256);
  dequantize_row_q6_K(&b, y.data(), 256);
  EXPECT_EQ(y[0], -31.0f);    // 1 - 32
  EXPECT_EQ(y[32], -15.0f);   // (1 | 16) - 32
  EXPECT_EQ(y[64], 2.0f);     // (2 | 32) - 32
  EXPECT_EQ(y[96], 18.0f);    // (2 | 48) - 32
  EXPECT_EQ(y[163], -1.0f);   // (15 | 16) - 32
  EXPECT_EQ(y[227], 21.0f);   // group 14, high nibble 5: (5 | 48) - 32
  EXPECT_EQ(y[255], -36.0f);  // group 15, scale -2: -2 * 18
}

}  // namespace
}  // namespace luzao
