// AVX-512 VNNI kernels for the 16-row packed layouts (packed.cpp) against the Q8_0X/Q8_1X
// activation layouts: per block, one int32 lane per weight row accumulates the exact block dot
// (dpbusd of 4 weight bytes x 4 broadcast activation bytes), then one scale multiply-add per
// block serves 16 rows. T tokens share every unpacked weight register. F16 rows are interleaved
// element by element and multiplied by broadcast activations.
#include "backend/cpu/packed.h"

#if defined(__x86_64__)

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "tensor/blocks.h"

#define LUZAO_AVX512_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c"
#define LUZAO_AVX512 __attribute__((target(LUZAO_AVX512_TARGET)))
#define LUZAO_AVX512_INLINE __attribute__((target(LUZAO_AVX512_TARGET), always_inline)) inline

namespace luzao::cpu {
namespace {

enum class Kind { kQ4_0, kQ4_1, kQ5_0, kQ5_1, kQ8_0 };

// Weights stream from memory once per forward; asking for them a few KB ahead keeps the loads
// from stalling the dot products, which the hardware prefetchers alone do not (batched decode
// got 20% faster). Prefetches past the end of the weights are harmless: they never fault.
constexpr size_t kPrefetchBlocks = 8;  // 32-element blocks ahead (2.5 KB for Q4_1)

LUZAO_AVX512_INLINE void prefetch_lines(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t line = 0; line < bytes; line += 64) _mm_prefetch(c + line, _MM_HINT_T0);
}

template <Kind kKind>
struct Layout {
  static constexpr bool kMin = kKind == Kind::kQ4_1 || kKind == Kind::kQ5_1;
  static constexpr bool kFifth = kKind == Kind::kQ5_0 || kKind == Kind::kQ5_1;
  static constexpr bool kBytes = kKind == Kind::kQ8_0;
  static constexpr size_t kMinAt = 32;
  static constexpr size_t kFifthAt = kMin ? 64 : 32;
  static constexpr size_t kCodesAt = kFifthAt + (kFifth ? 64 : 0);
  static constexpr size_t kBlock = kCodesAt + (kBytes ? 512 : 256);
  // sum (q - offset) a = dpbusd(q, a) - offset * sum(a): the correction seeds the int32 lanes.
  static constexpr int kOffset = kKind == Kind::kQ4_0   ? 8
                                 : kKind == Kind::kQ5_0 ? 16
                                 : kBytes               ? 128
                                                        : 0;
};

LUZAO_AVX512_INLINE __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

template <Kind kKind, int T>
LUZAO_AVX512 void gemm(int64_t k, const std::byte* group, const std::byte* act, size_t as,
                       float* out, size_t os) {
  using L = Layout<kKind>;
  const int64_t nb = k / 32;
  const int8_t* qs[T];
  const float* d[T];
  const void* extra[T];
  for (int t = 0; t < T; ++t) {
    const auto* row = reinterpret_cast<const uint8_t*>(act + static_cast<size_t>(t) * as);
    qs[t] = reinterpret_cast<const int8_t*>(row);
    d[t] = reinterpret_cast<const float*>(row + k);
    extra[t] = d[t] + nb;
  }
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const auto* blk = reinterpret_cast<const uint8_t*>(group);
  for (int64_t b = 0; b < nb; ++b, blk += L::kBlock) {
    prefetch_lines(blk + kPrefetchBlocks * L::kBlock, L::kBlock);
    __m512i isum[T];
    for (int t = 0; t < T; ++t) {
      if constexpr (L::kOffset != 0) {
        isum[t] = _mm512_set1_epi32(-L::kOffset * static_cast<const int32_t*>(extra[t])[b]);
      } else {
        isum[t] = _mm512_setzero_si512();
      }
    }
    if constexpr (L::kBytes) {
      for (int c = 0; c < 8; ++c) {
        const __m512i w = _mm512_loadu_si512(blk + L::kCodesAt + 64 * c);
        for (int t = 0; t < T; ++t) {
          isum[t] = _mm512_dpbusd_epi32(isum[t], w, bcast4(qs[t] + 32 * b + 4 * c));
        }
      }
    } else {
      for (int c = 0; c < 4; ++c) {
        const __m512i packed = _mm512_loadu_si512(blk + L::kCodesAt + 64 * c);
        __m512i lo = _mm512_and_si512(packed, low4);
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low4);
        if constexpr (L::kFifth) {
          uint64_t m[2];
          std::memcpy(m, blk + L::kFifthAt + 16 * c, 16);
          lo = _mm512_or_si512(lo, _mm512_maskz_set1_epi8(m[0], 0x10));
          hi = _mm512_or_si512(hi, _mm512_maskz_set1_epi8(m[1], 0x10));
        }
        for (int t = 0; t < T; ++t) {
          isum[t] = _mm512_dpbusd_epi32(isum[t], lo, bcast4(qs[t] + 32 * b + 4 * c));
          isum[t] = _mm512_dpbusd_epi32(isum[t], hi, bcast4(qs[t] + 32 * b + 16 + 4 * c));
        }
      }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
    for (int t = 0; t < T; ++t) {
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]),
                               _mm512_mul_ps(dw, _mm512_set1_ps(d[t][b])), acc[t]);
    }
    if constexpr (L::kMin) {  // + m * s, s = 8 * (s / 8) exactly
      const __m512 m =
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + L::kMinAt)));
      for (int t = 0; t < T; ++t) {
        const float s = static_cast<const float*>(extra[t])[b] * 8.0f;
        acc[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(s), acc[t]);
      }
    }
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(out + static_cast<size_t>(t) * os, acc[t]);
}

template <Kind kKind>
void gemm_any(int64_t k, const std::byte* group, const std::byte* act, size_t as, int tokens,
              float* out, size_t os) {
  switch (tokens) {
    case 1:
      return gemm<kKind, 1>(k, group, act, as, out, os);
    case 2:
      return gemm<kKind, 2>(k, group, act, as, out, os);
    case 3:
      return gemm<kKind, 3>(k, group, act, as, out, os);
    case 4:
      return gemm<kKind, 4>(k, group, act, as, out, os);
    case 5:
      return gemm<kKind, 5>(k, group, act, as, out, os);
    case 6:
      return gemm<kKind, 6>(k, group, act, as, out, os);
    case 7:
      return gemm<kKind, 7>(k, group, act, as, out, os);
    default:
      return gemm<kKind, 8>(k, group, act, as, out, os);
  }
}

// F16: each element of 16 rows widened once, times T broadcast activations; even and odd
// elements go to separate accumulators (for latency), added at the end, for every T alike.
template <int T>
LUZAO_AVX512 void gemm_f16(int64_t k, const std::byte* group, const std::byte* act, size_t as,
                           float* out, size_t os) {
  const float* x[T];
  for (int t = 0; t < T; ++t)
    x[t] = reinterpret_cast<const float*>(act + static_cast<size_t>(t) * as);
  __m512 acc0[T], acc1[T];
  for (int t = 0; t < T; ++t) acc0[t] = acc1[t] = _mm512_setzero_ps();
  const auto* w = reinterpret_cast<const __m256i*>(group);
  int64_t e = 0;
  for (; e + 2 <= k; e += 2) {
    _mm_prefetch(reinterpret_cast<const char*>(w + e + 64), _MM_HINT_T0);  // 2 KB ahead
    const __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256(w + e));
    const __m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256(w + e + 1));
    for (int t = 0; t < T; ++t) {
      acc0[t] = _mm512_fmadd_ps(w0, _mm512_set1_ps(x[t][e]), acc0[t]);
      acc1[t] = _mm512_fmadd_ps(w1, _mm512_set1_ps(x[t][e + 1]), acc1[t]);
    }
  }
  if (e < k) {
    const __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256(w + e));
    for (int t = 0; t < T; ++t) acc0[t] = _mm512_fmadd_ps(w0, _mm512_set1_ps(x[t][e]), acc0[t]);
  }
  for (int t = 0; t < T; ++t) {
    _mm512_storeu_ps(out + static_cast<size_t>(t) * os, _mm512_add_ps(acc0[t], acc1[t]));
  }
}

// 16 bytes at p widened to int32 lanes.
LUZAO_AVX512_INLINE __m512i u8x16(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
LUZAO_AVX512_INLINE __m512i i8x16(const uint8_t* p) {
  return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// K-quants against Q8_K. Exact int32 sums per group (Q4_K: 8 x 32, Q6_K: 16 x 16 elements) in
// one lane per row, times the integer group scales, then per super-block the portable kernels'
// float formula; T <= 4 tokens per pass (the accumulators of more do not fit in registers).
template <int T>
LUZAO_AVX512 void gemm_q4_K(int64_t k, const std::byte* group, const std::byte* act, size_t as,
                            float* out, size_t os) {
  const BlockQ8_K* y[T];
  for (int t = 0; t < T; ++t) {
    y[t] = reinterpret_cast<const BlockQ8_K*>(act + static_cast<size_t>(t) * as);
  }
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const auto* blk = reinterpret_cast<const uint8_t*>(group);
  for (int64_t b = 0; b < k / 256; ++b, blk += 2368) {
    prefetch_lines(blk + 2368, 2368);  // the next super-block
    __m512i total[T], mins[T];
    for (int t = 0; t < T; ++t) total[t] = mins[t] = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {  // groups 2c (low nibbles) and 2c + 1 (high nibbles)
      __m512i lo_sum[T], hi_sum[T];
      for (int t = 0; t < T; ++t) lo_sum[t] = hi_sum[t] = _mm512_setzero_si512();
      for (int i = 0; i < 8; ++i) {
        const __m512i packed = _mm512_loadu_si512(blk + 320 + 64 * (8 * c + i));
        const __m512i lo = _mm512_and_si512(packed, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low4);
        for (int t = 0; t < T; ++t) {
          lo_sum[t] = _mm512_dpbusd_epi32(lo_sum[t], lo, bcast4(y[t][b].qs + 64 * c + 4 * i));
          hi_sum[t] = _mm512_dpbusd_epi32(hi_sum[t], hi, bcast4(y[t][b].qs + 64 * c + 32 + 4 * i));
        }
      }
      const __m512i sc_lo = u8x16(blk + 64 + 16 * (2 * c)),
                    sc_hi = u8x16(blk + 64 + 16 * (2 * c + 1));
      const __m512i m_lo = u8x16(blk + 192 + 16 * (2 * c)),
                    m_hi = u8x16(blk + 192 + 16 * (2 * c + 1));
      for (int t = 0; t < T; ++t) {
        total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(lo_sum[t], sc_lo));
        total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(hi_sum[t], sc_hi));
        const int16_t* bs = y[t][b].bsums + 4 * c;
        mins[t] =
            _mm512_add_epi32(mins[t], _mm512_mullo_epi32(m_lo, _mm512_set1_epi32(bs[0] + bs[1])));
        mins[t] =
            _mm512_add_epi32(mins[t], _mm512_mullo_epi32(m_hi, _mm512_set1_epi32(bs[2] + bs[3])));
      }
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
    const __m512 dmin =
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 32)));
    for (int t = 0; t < T; ++t) {  // sum += y.d * (d * isum - dmin * msum), as the portable kernel
      const __m512 inner = _mm512_sub_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(total[t])),
                                         _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(mins[t])));
      acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_set1_ps(y[t][b].d), inner));
    }
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(out + static_cast<size_t>(t) * os, acc[t]);
}

template <int T>
LUZAO_AVX512 void gemm_q6_K(int64_t k, const std::byte* group, const std::byte* act, size_t as,
                            float* out, size_t os) {
  const BlockQ8_K* y[T];
  for (int t = 0; t < T; ++t) {
    y[t] = reinterpret_cast<const BlockQ8_K*>(act + static_cast<size_t>(t) * as);
  }
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const auto* blk = reinterpret_cast<const uint8_t*>(group);
  for (int64_t b = 0; b < k / 256; ++b, blk += 3360) {
    prefetch_lines(blk + 3360, 3360);  // the next super-block
    __m512i total[T];
    for (int t = 0; t < T; ++t) total[t] = _mm512_setzero_si512();
    for (int g = 0; g < 8; ++g) {  // groups g (elements 16g..) and 8 + g (128 + 16g..)
      __m512i lo_sum[T], hi_sum[T];
      for (int t = 0; t < T; ++t) {  // sum (q - 32) a = dpbusd(q, a) - 32 * bsum
        lo_sum[t] = _mm512_set1_epi32(-32 * y[t][b].bsums[g]);
        hi_sum[t] = _mm512_set1_epi32(-32 * y[t][b].bsums[8 + g]);
      }
      for (int i = 0; i < 4; ++i) {
        const int c = 4 * g + i;
        const __m512i packed = _mm512_loadu_si512(blk + 288 + 64 * c);
        uint64_t h[4];
        std::memcpy(h, blk + 2336 + 32 * c, 32);
        __m512i lo = _mm512_and_si512(packed, low4);
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low4);
        lo = _mm512_or_si512(lo, _mm512_maskz_set1_epi8(h[0], 0x10));
        lo = _mm512_or_si512(lo, _mm512_maskz_set1_epi8(h[1], 0x20));
        hi = _mm512_or_si512(hi, _mm512_maskz_set1_epi8(h[2], 0x10));
        hi = _mm512_or_si512(hi, _mm512_maskz_set1_epi8(h[3], 0x20));
        for (int t = 0; t < T; ++t) {
          lo_sum[t] = _mm512_dpbusd_epi32(lo_sum[t], lo, bcast4(y[t][b].qs + 4 * c));
          hi_sum[t] = _mm512_dpbusd_epi32(hi_sum[t], hi, bcast4(y[t][b].qs + 128 + 4 * c));
        }
      }
      const __m512i sc_lo = i8x16(blk + 32 + 16 * g), sc_hi = i8x16(blk + 32 + 16 * (8 + g));
      for (int t = 0; t < T; ++t) {
        total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(lo_sum[t], sc_lo));
        total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(hi_sum[t], sc_hi));
      }
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
    for (int t = 0; t < T; ++t) {  // sum += y.d * d * isum, as the portable kernel
      const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(y[t][b].d), d);
      acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(scale, _mm512_cvtepi32_ps(total[t])));
    }
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(out + static_cast<size_t>(t) * os, acc[t]);
}

template <void (*Kernel1)(int64_t, const std::byte*, const std::byte*, size_t, float*, size_t),
          void (*Kernel2)(int64_t, const std::byte*, const std::byte*, size_t, float*, size_t),
          void (*Kernel3)(int64_t, const std::byte*, const std::byte*, size_t, float*, size_t),
          void (*Kernel4)(int64_t, const std::byte*, const std::byte*, size_t, float*, size_t)>
void gemm_by_4(int64_t k, const std::byte* group, const std::byte* act, size_t as, int tokens,
               float* out, size_t os) {
  for (int t = 0; t < tokens; t += 4) {
    const std::byte* a = act + static_cast<size_t>(t) * as;
    float* o = out + static_cast<size_t>(t) * os;
    switch (std::min(4, tokens - t)) {
      case 1:
        Kernel1(k, group, a, as, o, os);
        break;
      case 2:
        Kernel2(k, group, a, as, o, os);
        break;
      case 3:
        Kernel3(k, group, a, as, o, os);
        break;
      default:
        Kernel4(k, group, a, as, o, os);
        break;
    }
  }
}

void gemm_f16_any(int64_t k, const std::byte* group, const std::byte* act, size_t as, int tokens,
                  float* out, size_t os) {
  switch (tokens) {
    case 1:
      return gemm_f16<1>(k, group, act, as, out, os);
    case 2:
      return gemm_f16<2>(k, group, act, as, out, os);
    case 3:
      return gemm_f16<3>(k, group, act, as, out, os);
    case 4:
      return gemm_f16<4>(k, group, act, as, out, os);
    case 5:
      return gemm_f16<5>(k, group, act, as, out, os);
    case 6:
      return gemm_f16<6>(k, group, act, as, out, os);
    case 7:
      return gemm_f16<7>(k, group, act, as, out, os);
    default:
      return gemm_f16<8>(k, group, act, as, out, os);
  }
}

}  // namespace

PackedGemmFn packed_gemm_avx512(DType dtype) {
  static_assert(kPackTokens == 8 && kPackRows == 16);
  switch (dtype) {
    case DType::kQ4_0:
      return gemm_any<Kind::kQ4_0>;
    case DType::kQ4_1:
      return gemm_any<Kind::kQ4_1>;
    case DType::kQ5_0:
      return gemm_any<Kind::kQ5_0>;
    case DType::kQ5_1:
      return gemm_any<Kind::kQ5_1>;
    case DType::kQ8_0:
      return gemm_any<Kind::kQ8_0>;
    case DType::kF16:
      return gemm_f16_any;
    case DType::kQ4_K:
      return gemm_by_4<gemm_q4_K<1>, gemm_q4_K<2>, gemm_q4_K<3>, gemm_q4_K<4>>;
    case DType::kQ6_K:
      return gemm_by_4<gemm_q6_K<1>, gemm_q6_K<2>, gemm_q6_K<3>, gemm_q6_K<4>>;
    default:
      return nullptr;
  }
}

}  // namespace luzao::cpu

#else

namespace luzao::cpu {
PackedGemmFn packed_gemm_avx512(DType) {
  return nullptr;
}
}  // namespace luzao::cpu

#endif
