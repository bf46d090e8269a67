// Quantization block structs, bit-compatible with GGUF/ggml, plus the small unpacking helpers that
// every kernel for the K-quants needs. Half-precision fields hold raw fp16 bits (see core/half.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace luzao {

// Names mirror ggml's type names (q4_0, q4_K) so they can be found across code bases.
// NOLINTBEGIN(readability-identifier-naming)

// Elements per block.
inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
inline constexpr int kQK5_0 = 32;
inline constexpr int kQK5_1 = 32;
inline constexpr int kQK8_0 = 32;
inline constexpr int kQK8_1 = 32;
inline constexpr int kQK_K = 256;       // super-block of the K-quants
inline constexpr int kKScaleSize = 12;  // packed 6-bit scales/mins of Q4_K and Q5_K

// Blocks are stored back to back with no padding; a row of n elements is n / block_size blocks.
// Pointers to them need only alignof(Block...) (2, or 4 for BlockQ8_K).

// Q4_0: x = d * (q - 8), q in [0, 15]. qs[j] low nibble is element j, high nibble element j + 16.
struct BlockQ4_0 {
  uint16_t d;  // fp16 scale
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18 && alignof(BlockQ4_0) == 2);

// Q4_1: x = d * q + m, q in [0, 15]; nibbles as Q4_0.
struct BlockQ4_1 {
  uint16_t d;  // fp16 scale
  uint16_t m;  // fp16 minimum
  uint8_t qs[kQK4_1 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20 && alignof(BlockQ4_1) == 2);

// Q5_0: x = d * (q - 16), q in [0, 31]. Low 4 bits as Q4_0; bit 4 of element j is bit j of the
// little-endian 32-bit word qh.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK5_0 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22 && alignof(BlockQ5_0) == 2);

// Q5_1: x = d * q + m, q in [0, 31]; bits as Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK5_1 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24 && alignof(BlockQ5_1) == 2);

// Q8_0: x = d * q.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34 && alignof(BlockQ8_0) == 2);

// Q8_1: not a file type. The activation format for dot products with Q4_1/Q5_1 weights:
// x = d * q, and s = fp16(d * sum(q)) so the weight minimum folds in as m * s.
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK8_1];
};
static_assert(sizeof(BlockQ8_1) == 36 && alignof(BlockQ8_1) == 2);

// Q2_K: 16 groups of 16. scales[g] low nibble scales, high nibble scales the minimum:
// x = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4), q in [0, 3].
// Element e = 128 * h + 32 * s + l (h in 0..1, s in 0..3, l in 0..31) is bits 2s..2s+1 of
// qs[32 * h + l]; its group is e / 16.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d;
  uint16_t dmin;
};
static_assert(sizeof(BlockQ2_K) == 84 && alignof(BlockQ2_K) == 2);

// Q3_K: 16 groups of 16 with signed 6-bit scales (see q3_k_scales): x = d * (sc[g] - 32) * q,
// q = low2 - (hmask bit set ? 0 : 4), q in [-4, 3]. Low 2 bits are laid out as Q2_K; the high bit
// of element e is bit e / 32 of hmask[e % 32].
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110 && alignof(BlockQ3_K) == 2);

// Q4_K: 8 groups of 32 with 6-bit scale and min (see q4_k_scale_min):
// x = d * sc[g] * q - dmin * m[g], q in [0, 15]. Element e = 64 * c + 32 * hi + l is the
// (hi ? high : low) nibble of qs[32 * c + l]; group g = e / 32.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144 && alignof(BlockQ4_K) == 2);

// Q5_K: as Q4_K with a fifth bit: bit 4 of element e is bit e / 32 of qh[e % 32]; q in [0, 31].
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176 && alignof(BlockQ5_K) == 2);

// Q6_K: 16 groups of 16 with int8 scales: x = d * scales[g] * (q - 32), q in [0, 63].
// Element e = 128 * h + 32 * s + l: low 4 bits are the (s >= 2 ? high : low) nibble of
// ql[64 * h + 32 * (s & 1) + l], high 2 bits are bits 2s..2s+1 of qh[32 * h + l].
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210 && alignof(BlockQ6_K) == 2);

// Q8_K: the activation format for K-quant dot products. x = d * q with an fp32 d;
// bsums[i] is the sum of qs[16 i .. 16 i + 15].
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292 && alignof(BlockQ8_K) == 4);

// NOLINTEND(readability-identifier-naming)

// Scale and minimum of group j (0..7) from the 12 packed bytes of Q4_K/Q5_K: groups 0..3 keep
// their 6 bits in the low bits of bytes j and j + 4; groups 4..7 keep their low 4 bits in the
// nibbles of byte j + 4 and their top 2 bits in the top bits of bytes j - 4 and j.
inline void q4_k_scale_min(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// The 16 signed scales (sc - 32, in [-32, 31]) of a Q3_K block from its 12 packed bytes: low 4
// bits of scale j are a nibble of byte j % 8 (high nibble for j >= 8), top 2 bits are bits
// 2 (j / 4)..+1 of byte 8 + j % 4.
inline void q3_k_scales(const uint8_t* packed, int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
    const int high = (packed[8 + (j % 4)] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
}

}  // namespace luzao
