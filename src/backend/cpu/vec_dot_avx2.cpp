// AVX2 kernels, compiled with target attributes so the default build stays portable, and
// installed by make_kernel_table only after a runtime CPUID check: the 32-element block formats
// against Q8_0/Q8_1 activations, and F32/F16 weights. Same arithmetic as the portable kernels:
// exact int32 block sums, then one F32 multiply-add per block.
#include "backend/cpu/vec_dot.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <cstring>

#include "tensor/blocks.h"

#define LUZAO_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace luzao::cpu {
namespace {

LUZAO_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LUZAO_AVX2 inline float half(uint16_t h) {
  return _cvtsh_ss(h);
}

// 16 bytes of packed nibbles -> 32 bytes: low nibbles first (elements 0..15), then high ones.
LUZAO_AVX2 inline __m256i unpack_nibbles(const uint8_t* qs) {
  __m128i packed;
  std::memcpy(&packed, qs, 16);
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// Byte i is 0xFF when bit i of the 32-bit little-endian word at p is set, else 0.
LUZAO_AVX2 inline __m256i bits_to_bytes(const uint8_t* p) {
  uint32_t word;
  std::memcpy(&word, p, 4);
  // Spread byte j of the word over output bytes 8j..8j+7, then test one bit per byte.
  const __m256i spread =
      _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(word)),
                          _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                             0x0202020202020202, 0x0303030303030303));
  const __m256i others = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);  // every bit but bit (i % 8)
  return _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1));
}

// Sum over 32 byte pairs of unsigned a times signed b, as 8 float lanes (exact: |sum| < 2^24).
LUZAO_AVX2 inline __m256 dot_u8_s8(__m256i a, __m256i b) {
  const __m256i pairs = _mm256_maddubs_epi16(a, b);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

// Signed times signed via |a| * (b with a's sign). Exact when b never holds -128, which our
// activation quantizers guarantee (|q| <= 127).
LUZAO_AVX2 inline __m256 dot_s8_s8(__m256i a, __m256i b) {
  return dot_u8_s8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

LUZAO_AVX2 inline __m256i load32(const int8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

LUZAO_AVX2 float dot_q4_0(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(act);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < k / kQK4_0; ++b) {
    const __m256i qx = _mm256_sub_epi8(unpack_nibbles(x[b].qs), _mm256_set1_epi8(8));
    const __m256 d = _mm256_set1_ps(half(x[b].d) * half(y[b].d));
    acc = _mm256_fmadd_ps(d, dot_s8_s8(qx, load32(y[b].qs)), acc);
  }
  return hsum(acc);
}

LUZAO_AVX2 float dot_q4_1(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(act);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (int64_t b = 0; b < k / kQK4_1; ++b) {
    const __m256 d = _mm256_set1_ps(half(x[b].d) * half(y[b].d));
    acc = _mm256_fmadd_ps(d, dot_u8_s8(unpack_nibbles(x[b].qs), load32(y[b].qs)), acc);
    mins += half(x[b].m) * half(y[b].s);
  }
  return hsum(acc) + mins;
}

LUZAO_AVX2 float dot_q5_0(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ5_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(act);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < k / kQK5_0; ++b) {
    const __m256i high = _mm256_and_si256(bits_to_bytes(x[b].qh), _mm256_set1_epi8(0x10));
    const __m256i qx =
        _mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(x[b].qs), high), _mm256_set1_epi8(16));
    const __m256 d = _mm256_set1_ps(half(x[b].d) * half(y[b].d));
    acc = _mm256_fmadd_ps(d, dot_s8_s8(qx, load32(y[b].qs)), acc);
  }
  return hsum(acc);
}

LUZAO_AVX2 float dot_q5_1(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ5_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(act);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (int64_t b = 0; b < k / kQK5_1; ++b) {
    const __m256i high = _mm256_and_si256(bits_to_bytes(x[b].qh), _mm256_set1_epi8(0x10));
    const __m256i qx = _mm256_or_si256(unpack_nibbles(x[b].qs), high);
    const __m256 d = _mm256_set1_ps(half(x[b].d) * half(y[b].d));
    acc = _mm256_fmadd_ps(d, dot_u8_s8(qx, load32(y[b].qs)), acc);
    mins += half(x[b].m) * half(y[b].s);
  }
  return hsum(acc) + mins;
}

LUZAO_AVX2 float dot_q8_0(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(act);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < k / kQK8_0; ++b) {
    // Widened to int16: weights from a file may hold -128, which the sign trick cannot take.
    const __m256i qx = load32(x[b].qs);
    const __m256i qy = load32(y[b].qs);
    const __m256i lo = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(qx)),
                                         _mm256_cvtepi8_epi16(_mm256_castsi256_si128(qy)));
    const __m256i hi = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(qx, 1)),
                                         _mm256_cvtepi8_epi16(_mm256_extracti128_si256(qy, 1)));
    const __m256 d = _mm256_set1_ps(half(x[b].d) * half(y[b].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_add_epi32(lo, hi)), acc);
  }
  return hsum(acc);
}

LUZAO_AVX2 float dot_f32(int64_t k, const void* w, const void* act) {
  const auto* a = static_cast<const float*>(w);
  const auto* b = static_cast<const float*>(act);
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  float sum = 0.0f;
  for (; i < k; ++i) sum += a[i] * b[i];
  return hsum(_mm256_add_ps(acc0, acc1)) + sum;
}

LUZAO_AVX2 inline __m256 load_half8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

LUZAO_AVX2 float dot_f16(int64_t k, const void* w, const void* act) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const uint16_t*>(act);
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    acc0 = _mm256_fmadd_ps(load_half8(a + i), load_half8(b + i), acc0);
    acc1 = _mm256_fmadd_ps(load_half8(a + i + 8), load_half8(b + i + 8), acc1);
  }
  float sum = 0.0f;
  for (; i < k; ++i) sum += half(a[i]) * half(b[i]);
  return hsum(_mm256_add_ps(acc0, acc1)) + sum;
}

}  // namespace

void add_avx2_kernels(KernelTable& table) {
  table[kernel_slot(DType::kF32)] = {kActF32, dot_f32, "avx2"};
  table[kernel_slot(DType::kF16)] = {kActF16, dot_f16, "avx2"};
  table[kernel_slot(DType::kQ4_0)] = {kActQ8_0, dot_q4_0, "avx2"};
  table[kernel_slot(DType::kQ4_1)] = {kActQ8_1, dot_q4_1, "avx2"};
  table[kernel_slot(DType::kQ5_0)] = {kActQ8_0, dot_q5_0, "avx2"};
  table[kernel_slot(DType::kQ5_1)] = {kActQ8_1, dot_q5_1, "avx2"};
  table[kernel_slot(DType::kQ8_0)] = {kActQ8_0, dot_q8_0, "avx2"};
}

}  // namespace luzao::cpu

#else

namespace luzao::cpu {
void add_avx2_kernels(KernelTable&) {}
}  // namespace luzao::cpu

#endif
