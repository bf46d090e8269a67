// AVX-512 VNNI matmul tiles (installed after a runtime CPUID check; the build stays portable):
// the 32-element formats against the Q8_0X/Q8_1X activation layouts, Q4_K/Q6_K against Q8_K and
// F16 against F16-rounded F32. A tile holds R weight rows x T tokens of accumulators so that each
// weight block is unpacked once per T tokens and each activation block loaded once per R rows.
// Every output is accumulated in the same order whatever R and T, so tiling never changes results.
#include "backend/cpu/vec_dot.h"

#if defined(__x86_64__)

// GCC 12 flags the _mm512_undefined_*() placeholders inside its own intrinsic headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "core/half.h"
#include "tensor/blocks.h"

#define LUZAO_AVX512_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c,bmi2"
#define LUZAO_AVX512 __attribute__((target(LUZAO_AVX512_TARGET)))
#define LUZAO_AVX512_INLINE __attribute__((target(LUZAO_AVX512_TARGET), always_inline)) inline

namespace luzao::cpu {
namespace {

constexpr int kMaxRows = 4;
constexpr int kMaxTokens = 4;

// ---------------------------------------------------------------------------------------------
// Small helpers.

// Lanes 0-7 take float 0 of v, lanes 8-15 float 1 (one scale per 32-element block of a pair).
LUZAO_AVX512_INLINE __m512 expand2(__m128 v) {
  const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v));
}

LUZAO_AVX512_INLINE __m128 load_f32x2(const float* p) {
  double v;  // two floats, only 4-byte aligned
  std::memcpy(&v, p, 8);
  return _mm_castpd_ps(_mm_set_sd(v));
}

LUZAO_AVX512_INLINE uint32_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

LUZAO_AVX512_INLINE uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The fp16 values at p0 and p1 (p1 == nullptr: 0) as floats in lanes 0-7 and 8-15.
LUZAO_AVX512_INLINE __m512 half_pair(const uint8_t* p0, const uint8_t* p1) {
  const uint32_t bits = load_u16(p0) | (p1 != nullptr ? load_u16(p1) << 16 : 0u);
  return expand2(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(bits))));
}

LUZAO_AVX512_INLINE __m128i load128(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// 16 packed nibble bytes of each of two blocks -> 64 bytes in element order: block 0's low
// nibbles (elements 0-15), its high nibbles (16-31), then block 1 alike. q1 == nullptr: zeros.
LUZAO_AVX512_INLINE __m512i unpack_nibble_pair(const uint8_t* q0, const uint8_t* q1) {
  __m512i v = _mm512_maskz_broadcast_i32x4(0x00FF, load128(q0));
  if (q1 != nullptr) v = _mm512_mask_broadcast_i32x4(v, 0xFF00, load128(q1));
  v = _mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4);
  return _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
}

// Activation rows in the X layouts: int8 codes [k], float d [k/32], extra [k/32].
struct ActRow {
  const int8_t* qs;
  const float* d;
  const void* extra;
};
LUZAO_AVX512_INLINE ActRow act_row(const uint8_t* p, int64_t k) {
  const auto* qs = reinterpret_cast<const int8_t*>(p);
  const auto* d = reinterpret_cast<const float*>(p + k);
  return {qs, d, d + k / 32};
}

LUZAO_AVX512_INLINE __m512i load_codes(const int8_t* p, bool pair) {
  return pair ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(0xFFFFFFFFull, p);
}

LUZAO_AVX512_INLINE __m512 load_scales(const float* p, bool pair) {
  return expand2(pair ? load_f32x2(p) : _mm_load_ss(p));
}

// ---------------------------------------------------------------------------------------------
// The 32-element formats. Each format says how to load one weight row's pair of blocks (Row)
// and one token's pair of activation blocks (Tok), and how to multiply-accumulate the two.

// Q4_0 / Q5_0: unsigned codes q with x = d * (q - offset). Against signed activations a:
// sum (q - offset) * a = dpbusd(q, a) - offset * sum(a); the correction seeds the accumulator.
template <typename Block, int kShift>  // offset = 1 << kShift
struct OffsetFormat {
  struct Row {
    __m512i q;
    __m512 d;
  };
  struct Tok {
    __m512i a;
    __m512 d;
    __m512i corr;
  };
  LUZAO_AVX512_INLINE static Row row(const uint8_t* w, int64_t b, bool pair) {
    const auto* x = reinterpret_cast<const Block*>(w) + b;
    const auto* x1 = pair ? x + 1 : nullptr;
    Row r;
    r.q = unpack_nibble_pair(x->qs, pair ? x1->qs : nullptr);
    if constexpr (sizeof(Block) == sizeof(BlockQ5_0)) {  // fifth bits from qh
      const uint64_t hi = load_u32(x->qh) | (pair ? uint64_t{load_u32(x1->qh)} << 32 : 0);
      r.q = _mm512_or_si512(r.q, _mm512_maskz_set1_epi8(hi, 0x10));
    }
    r.d = half_pair(reinterpret_cast<const uint8_t*>(&x->d),
                    pair ? reinterpret_cast<const uint8_t*>(&x1->d) : nullptr);
    return r;
  }
  LUZAO_AVX512_INLINE static Tok tok(const ActRow& y, int64_t b, bool pair) {
    Tok t;
    t.a = load_codes(y.qs + 32 * b, pair);
    t.d = load_scales(y.d + b, pair);
    const auto* sums = static_cast<const int32_t*>(y.extra) + b;
    const __m128i s =
        pair ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sums)) : _mm_cvtsi32_si128(*sums);
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i spread = _mm512_maskz_permutexvar_epi32(0x0101, idx, _mm512_castsi128_si512(s));
    t.corr = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(spread, kShift));
    return t;
  }
  LUZAO_AVX512_INLINE static __m512 madd(__m512 acc, const Row& r, const Tok& t) {
    const __m512i dot = _mm512_dpbusd_epi32(t.corr, r.q, t.a);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(r.d, t.d), acc);
  }
};

// Q4_1 / Q5_1: x = d * q + m, against Q8_1X (s / 8 per block spread over its 8 lanes).
template <typename Block>
struct MinFormat {
  struct Row {
    __m512i q;
    __m512 d, m;
  };
  struct Tok {
    __m512i a;
    __m512 d, s;
  };
  LUZAO_AVX512_INLINE static Row row(const uint8_t* w, int64_t b, bool pair) {
    const auto* x = reinterpret_cast<const Block*>(w) + b;
    const auto* x1 = pair ? x + 1 : nullptr;
    Row r;
    r.q = unpack_nibble_pair(x->qs, pair ? x1->qs : nullptr);
    if constexpr (sizeof(Block) == sizeof(BlockQ5_1)) {
      const uint64_t hi = load_u32(x->qh) | (pair ? uint64_t{load_u32(x1->qh)} << 32 : 0);
      r.q = _mm512_or_si512(r.q, _mm512_maskz_set1_epi8(hi, 0x10));
    }
    r.d = half_pair(reinterpret_cast<const uint8_t*>(&x->d),
                    pair ? reinterpret_cast<const uint8_t*>(&x1->d) : nullptr);
    r.m = half_pair(reinterpret_cast<const uint8_t*>(&x->m),
                    pair ? reinterpret_cast<const uint8_t*>(&x1->m) : nullptr);
    return r;
  }
  LUZAO_AVX512_INLINE static Tok tok(const ActRow& y, int64_t b, bool pair) {
    Tok t;
    t.a = load_codes(y.qs + 32 * b, pair);
    t.d = load_scales(y.d + b, pair);
    t.s = load_scales(static_cast<const float*>(y.extra) + b, pair);
    return t;
  }
  LUZAO_AVX512_INLINE static __m512 madd(__m512 acc, const Row& r, const Tok& t) {
    const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), r.q, t.a);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(r.d, t.d), acc);
    return _mm512_fmadd_ps(r.m, t.s, acc);
  }
};

// Q8_0: signed codes. dpbusd takes |w| (128 fits unsigned) and a with w's sign moved onto it
// (|a| <= 127, so the negation never overflows).
struct Q8Format {
  struct Row {
    __m512i q;
    __mmask64 neg;
    __m512 d;
  };
  struct Tok {
    __m512i a;
    __m512 d;
  };
  LUZAO_AVX512_INLINE static Row row(const uint8_t* w, int64_t b, bool pair) {
    const auto* x = reinterpret_cast<const BlockQ8_0*>(w) + b;
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x->qs));
    const __m256i hi = pair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[1].qs))
                            : _mm256_setzero_si256();
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    Row r;
    r.q = _mm512_abs_epi8(v);
    r.neg = _mm512_movepi8_mask(v);
    r.d = half_pair(reinterpret_cast<const uint8_t*>(&x->d),
                    pair ? reinterpret_cast<const uint8_t*>(&x[1].d) : nullptr);
    return r;
  }
  LUZAO_AVX512_INLINE static Tok tok(const ActRow& y, int64_t b, bool pair) {
    return {load_codes(y.qs + 32 * b, pair), load_scales(y.d + b, pair)};
  }
  LUZAO_AVX512_INLINE static __m512 madd(__m512 acc, const Row& r, const Tok& t) {
    const __m512i a = _mm512_mask_sub_epi8(t.a, r.neg, _mm512_setzero_si512(), t.a);
    const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), r.q, a);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(r.d, t.d), acc);
  }
};

template <typename F, int R, int T>
LUZAO_AVX512_INLINE void step_32(__m512 (&acc)[R][T], const uint8_t* w, size_t ws,
                                 const ActRow (&y)[T], int64_t b, bool pair) {
  typename F::Row rows[R];
  typename F::Tok toks[T];
  for (int r = 0; r < R; ++r) rows[r] = F::row(w + r * ws, b, pair);
  for (int t = 0; t < T; ++t) toks[t] = F::tok(y[t], b, pair);
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = F::madd(acc[r][t], rows[r], toks[t]);
}

template <typename F, int R, int T>
LUZAO_AVX512 void tile_32(int64_t k, const uint8_t* w, size_t ws, const uint8_t* act, size_t as,
                          float* out, size_t os) {
  const int64_t nb = k / 32;
  ActRow y[T];
  for (int t = 0; t < T; ++t) y[t] = act_row(act + t * as, k);
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) step_32<F, R, T>(acc, w, ws, y, b, true);
  if (b < nb) step_32<F, R, T>(acc, w, ws, y, b, false);
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) out[t * os + r] = _mm512_reduce_add_ps(acc[r][t]);
}

// ---------------------------------------------------------------------------------------------
// K-quants against Q8_K: per super-block, u8 x s8 pairs (maddubs) weighted by the integer group
// scales (dpwssd) into exact int32 sums, then the same float formula as the portable kernels.

LUZAO_AVX512_INLINE int32_t hsum_epi32(__m512i v) {
  return _mm512_reduce_add_epi32(v);
}

LUZAO_AVX512_INLINE int32_t hsum256_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

template <int R, int T>
LUZAO_AVX512 void tile_q4_K(int64_t k, const uint8_t* w, size_t ws, const uint8_t* act, size_t as,
                            float* out, size_t os) {
  const int64_t nb = k / kQK_K;
  float sum[R][T] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ4_K* x[R];
    __m512i scales[R];  // int16 scale of group g in lane g (g < 8)
    __m256i mins[R];    // int16 min of group g in lanes 2g and 2g + 1
    for (int r = 0; r < R; ++r) {
      x[r] = reinterpret_cast<const BlockQ4_K*>(w + r * ws) + b;
      alignas(16) int16_t sc[8], mn[16];
      for (int g = 0; g < 8; ++g) {
        uint8_t s = 0, m = 0;
        q4_k_scale_min(x[r]->scales, g, &s, &m);
        sc[g] = s;
        mn[2 * g] = mn[2 * g + 1] = m;
      }
      scales[r] = _mm512_castsi128_si512(_mm_load_si128(reinterpret_cast<const __m128i*>(sc)));
      mins[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mn));
    }
    const BlockQ8_K* y[T];
    for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const BlockQ8_K*>(act + t * as) + b;
    __m512i acc[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {  // groups 2c (low nibbles) and 2c + 1 (high nibbles)
      const __m512i pick =
          _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(2 * c)),
                             _mm256_set1_epi16(static_cast<int16_t>(2 * c + 1)), 1);
      __m512i q[R], sv[R];
      for (int r = 0; r < R; ++r) {
        const __m256i packed =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[r]->qs + 32 * c));
        __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(packed), packed, 1);
        v = _mm512_mask_srli_epi16(v, 0xFFFF0000u, v, 4);
        q[r] = _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
        sv[r] = _mm512_permutexvar_epi16(pick, scales[r]);
      }
      for (int t = 0; t < T; ++t) {
        const __m512i a = _mm512_loadu_si512(y[t]->qs + 64 * c);
        for (int r = 0; r < R; ++r) {
          acc[r][t] = _mm512_dpwssd_epi32(acc[r][t], _mm512_maddubs_epi16(q[r], a), sv[r]);
        }
      }
    }
    for (int t = 0; t < T; ++t) {
      const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t]->bsums));
      for (int r = 0; r < R; ++r) {
        const int32_t isum = hsum_epi32(acc[r][t]);
        const int32_t msum = hsum256_epi32(_mm256_madd_epi16(bsums, mins[r]));
        sum[r][t] += y[t]->d * (fp16_to_fp32(x[r]->d) * static_cast<float>(isum) -
                                fp16_to_fp32(x[r]->dmin) * static_cast<float>(msum));
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) out[t * os + r] = sum[r][t];
}

template <int R, int T>
LUZAO_AVX512 void tile_q6_K(int64_t k, const uint8_t* w, size_t ws, const uint8_t* act, size_t as,
                            float* out, size_t os) {
  const int64_t nb = k / kQK_K;
  float sum[R][T] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ6_K* x[R];
    __m512i scales[R];  // int16 scale of group g in lane g (g < 16)
    for (int r = 0; r < R; ++r) {
      x[r] = reinterpret_cast<const BlockQ6_K*>(w + r * ws) + b;
      scales[r] = _mm512_castsi256_si512(
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[r]->scales))));
    }
    const BlockQ8_K* y[T];
    for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const BlockQ8_K*>(act + t * as) + b;
    __m512i acc[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      for (int p = 0; p < 2; ++p) {  // elements 128h + 64p .. +63: groups 8h + 4p .. +3
        const int g0 = 8 * h + 4 * p;
        const __m512i pick = _mm512_setr_epi32(
            g0 * 0x10001, g0 * 0x10001, g0 * 0x10001, g0 * 0x10001, (g0 + 1) * 0x10001,
            (g0 + 1) * 0x10001, (g0 + 1) * 0x10001, (g0 + 1) * 0x10001, (g0 + 2) * 0x10001,
            (g0 + 2) * 0x10001, (g0 + 2) * 0x10001, (g0 + 2) * 0x10001, (g0 + 3) * 0x10001,
            (g0 + 3) * 0x10001, (g0 + 3) * 0x10001, (g0 + 3) * 0x10001);
        const __m512i qh_shift =
            _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(4 * p)),
                               _mm256_set1_epi16(static_cast<int16_t>(4 * p + 2)), 1);
        __m512i q[R], sv[R];
        for (int r = 0; r < R; ++r) {
          __m512i lo = _mm512_loadu_si512(x[r]->ql + 64 * h);
          if (p == 1) lo = _mm512_srli_epi16(lo, 4);
          lo = _mm512_and_si512(lo, _mm512_set1_epi8(0x0F));
          const __m256i qh =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[r]->qh + 32 * h));
          __m512i hi = _mm512_inserti64x4(_mm512_castsi256_si512(qh), qh, 1);
          hi = _mm512_and_si512(_mm512_srlv_epi16(hi, qh_shift), _mm512_set1_epi8(0x03));
          q[r] = _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
          sv[r] = _mm512_permutexvar_epi16(pick, scales[r]);
        }
        for (int t = 0; t < T; ++t) {
          const __m512i a = _mm512_loadu_si512(y[t]->qs + 128 * h + 64 * p);
          for (int r = 0; r < R; ++r) {
            acc[r][t] = _mm512_dpwssd_epi32(acc[r][t], _mm512_maddubs_epi16(q[r], a), sv[r]);
          }
        }
      }
    }
    for (int t = 0; t < T; ++t) {
      const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t]->bsums));
      for (int r = 0; r < R; ++r) {
        // The codes were taken unsigned (q + 32): remove 32 * sum_g scale_g * bsum_g.
        const int32_t corr =
            hsum256_epi32(_mm256_madd_epi16(bsums, _mm512_castsi512_si256(scales[r])));
        const int32_t isum = hsum_epi32(acc[r][t]) - 32 * corr;
        sum[r][t] += y[t]->d * fp16_to_fp32(x[r]->d) * static_cast<float>(isum);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) out[t * os + r] = sum[r][t];
}

// ---------------------------------------------------------------------------------------------
// F16 weights against F16-rounded F32 activations: widen and fused multiply-add, 16 per step.

template <int R, int T>
LUZAO_AVX512 void tile_f16(int64_t k, const uint8_t* w, size_t ws, const uint8_t* act, size_t as,
                           float* out, size_t os) {
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  // One loop body for full and tail steps (a separate step function made GCC spill acc).
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 mask =
        k - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (k - i)) - 1);
    __m512 wv[R];
    for (int r = 0; r < R; ++r) {
      const auto* row = reinterpret_cast<const uint16_t*>(w + r * ws);
      wv[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, row + i));
    }
    for (int t = 0; t < T; ++t) {
      const __m512 a =
          _mm512_maskz_loadu_ps(mask, reinterpret_cast<const float*>(act + t * as) + i);
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], a, acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) out[t * os + r] = _mm512_reduce_add_ps(acc[r][t]);
}

// ---------------------------------------------------------------------------------------------
// Dispatch from run-time tile sizes to the instantiations, and the table entries.

using TileFn = void (*)(int64_t, const uint8_t*, size_t, const uint8_t*, size_t, float*, size_t);

template <template <int, int> class Tile>
struct Dispatch {
  template <int R, int T>
  static constexpr TileFn at() {
    return &Tile<R, T>::run;
  }
  static constexpr TileFn table[kMaxRows][kMaxTokens] = {
      {at<1, 1>(), at<1, 2>(), at<1, 3>(), at<1, 4>()},
      {at<2, 1>(), at<2, 2>(), at<2, 3>(), at<2, 4>()},
      {at<3, 1>(), at<3, 2>(), at<3, 3>(), at<3, 4>()},
      {at<4, 1>(), at<4, 2>(), at<4, 3>(), at<4, 4>()},
  };
  static void gemm(int64_t k, const void* w, size_t ws, int rows, const void* act, size_t as,
                   int tokens, float* out, size_t os) {
    table[rows - 1][tokens - 1](k, static_cast<const uint8_t*>(w), ws,
                                static_cast<const uint8_t*>(act), as, out, os);
  }
  static float dot(int64_t k, const void* w, const void* act) {
    float out = 0.0f;
    table[0][0](k, static_cast<const uint8_t*>(w), 0, static_cast<const uint8_t*>(act), 0, &out, 0);
    return out;
  }
};

template <typename F>
struct Tile32 {
  template <int R, int T>
  struct Of {
    static void run(int64_t k, const uint8_t* w, size_t ws, const uint8_t* a, size_t as, float* o,
                    size_t os) {
      tile_32<F, R, T>(k, w, ws, a, as, o, os);
    }
  };
};
template <int R, int T>
struct TileQ4K {
  static void run(int64_t k, const uint8_t* w, size_t ws, const uint8_t* a, size_t as, float* o,
                  size_t os) {
    tile_q4_K<R, T>(k, w, ws, a, as, o, os);
  }
};
template <int R, int T>
struct TileQ6K {
  static void run(int64_t k, const uint8_t* w, size_t ws, const uint8_t* a, size_t as, float* o,
                  size_t os) {
    tile_q6_K<R, T>(k, w, ws, a, as, o, os);
  }
};
template <int R, int T>
struct TileF16 {
  static void run(int64_t k, const uint8_t* w, size_t ws, const uint8_t* a, size_t as, float* o,
                  size_t os) {
    tile_f16<R, T>(k, w, ws, a, as, o, os);
  }
};

template <template <int, int> class Tile>
MatMulKernel entry(const ActFormat& act) {
  return {act, &Dispatch<Tile>::dot, "avx512vnni", &Dispatch<Tile>::gemm, kMaxRows, kMaxTokens};
}

// ---------------------------------------------------------------------------------------------
// Activation conversion, vectorised with exactly the arithmetic of the scalar converter in
// vec_dot.cpp (d = amax / 127, codes round(x / d) with halves away from zero, fp16 d and s).

// std::round for the lanes of t: truncate, then step away from zero where the dropped fraction
// is at least one half (t - trunc(t) is exact).
LUZAO_AVX512_INLINE __m512i round_away(__m512 t) {
  const __m512 tr = _mm512_roundscale_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(t, tr));
  const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 sign = _mm512_and_ps(t, _mm512_castsi512_ps(_mm512_set1_epi32(INT32_MIN)));
  const __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), sign);
  return _mm512_cvttps_epi32(_mm512_mask_add_ps(tr, up, tr, one));
}

// fp16_to_fp32(fp32_to_fp16(v)) in two F16C instructions (both round to nearest even).
LUZAO_AVX512_INLINE float round_to_half(float v) {
  return _cvtsh_ss(_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

template <bool kWithS>
LUZAO_AVX512 void convert_q8_x(const float* x, void* dst, int64_t k) {
  const int64_t nb = k / 32;
  auto* qs = static_cast<int8_t*>(dst);
  auto* d = reinterpret_cast<float*>(qs + k);
  auto* extra = d + nb;
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    const __m512 x0 = _mm512_loadu_ps(x);
    const __m512 x1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    const float dv = amax / 127.0f;
    const float id = dv != 0.0f ? 1.0f / dv : 0.0f;
    const __m512i q0 = round_away(_mm512_mul_ps(x0, _mm512_set1_ps(id)));
    const __m512i q1 = round_away(_mm512_mul_ps(x1, _mm512_set1_ps(id)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 32 * b), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 32 * b + 16), _mm512_cvtepi32_epi8(q1));
    const int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    d[b] = round_to_half(dv);
    if constexpr (kWithS) {
      extra[b] = round_to_half(dv * static_cast<float>(sum)) * 0.125f;
    } else {
      reinterpret_cast<int32_t*>(extra)[b] = sum;
    }
  }
}

// quantize_row_q8_K vectorised with its exact arithmetic: the scale comes from the first element
// of largest magnitude (its sign included), codes round to nearest even, and each 16-lane vector
// of codes is one group of bsums.
LUZAO_AVX512 void convert_q8_K(const float* x, void* dst, int64_t k) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < k / kQK_K; ++i, x += kQK_K) {
    __m512 vmax = _mm512_setzero_ps();
    for (int c = 0; c < kQK_K / 16; ++c) {  // a NaN lane keeps the running maximum
      vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * c)), vmax);
    }
    const float amax = _mm512_reduce_max_ps(vmax);
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    float max = 0.0f;
    for (int c = 0; c < kQK_K / 16; ++c) {
      const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * c)),
                                               _mm512_set1_ps(amax), _CMP_EQ_OQ);
      if (hit != 0) {
        max = x[16 * c + __builtin_ctz(hit)];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m512 vs = _mm512_set1_ps(iscale);
    for (int c = 0; c < kQK_K / 16; ++c) {
      __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(x + 16 * c)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(-128)), _mm512_set1_epi32(127));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16 * c), _mm512_cvtepi32_epi8(q));
      y[i].bsums[c] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
    }
    y[i].d = 1.0f / iscale;
  }
}

LUZAO_AVX512 void convert_f16_x(const float* x, void* dst, int64_t k) {
  auto* d = static_cast<float*>(dst);
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm512_storeu_ps(d + i, _mm512_cvtph_ps(h));
  }
  for (; i < k; ++i) d[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

const ActFormat kQ8_0X{"q8_0x", 32, 40, convert_q8_x<false>};
const ActFormat kQ8_1X{"q8_1x", 32, 40, convert_q8_x<true>};
const ActFormat kF16X{"f16x", 1, 4, convert_f16_x};
const ActFormat kQ8_KV{"q8_K", kQK_K, sizeof(BlockQ8_K), convert_q8_K};

}  // namespace

void add_avx512_kernels(KernelTable& table) {
  table[kernel_slot(DType::kQ4_0)] = entry<Tile32<OffsetFormat<BlockQ4_0, 3>>::Of>(kQ8_0X);
  table[kernel_slot(DType::kQ5_0)] = entry<Tile32<OffsetFormat<BlockQ5_0, 4>>::Of>(kQ8_0X);
  table[kernel_slot(DType::kQ4_1)] = entry<Tile32<MinFormat<BlockQ4_1>>::Of>(kQ8_1X);
  table[kernel_slot(DType::kQ5_1)] = entry<Tile32<MinFormat<BlockQ5_1>>::Of>(kQ8_1X);
  table[kernel_slot(DType::kQ8_0)] = entry<Tile32<Q8Format>::Of>(kQ8_0X);
  table[kernel_slot(DType::kQ4_K)] = entry<TileQ4K>(kQ8_KV);
  table[kernel_slot(DType::kQ6_K)] = entry<TileQ6K>(kQ8_KV);
  table[kernel_slot(DType::kF16)] = entry<TileF16>(kF16X);
}

}  // namespace luzao::cpu

#else

namespace luzao::cpu {
void add_avx512_kernels(KernelTable&) {}
}  // namespace luzao::cpu

#endif
