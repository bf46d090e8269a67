// AVX-512 row kernels for the element-wise ops that show up in profiles (swiglu, rms_norm, F16
// cache writes), with the arithmetic of their portable versions in elementwise.cpp: the same
// formulas, double-precision sums of squares, round-to-nearest-even F16 conversion; swiglu's exp
// is the vector one of avx512_math.h (within about 1 ulp of expf).
#include "backend/cpu/cpu_ops.h"

#if defined(__x86_64__)

#include <cmath>

#include "backend/cpu/avx512_math.h"

namespace luzao::cpu {
namespace {

LUZAO_AVX512_INLINE __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
}

}  // namespace

LUZAO_AVX512 void swiglu_row_avx512(const float* g, const float* u, float* o, int64_t n) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = tail_mask(n - j);
    const __m512 gv = _mm512_maskz_loadu_ps(m, g + j);
    const __m512 uv = _mm512_maskz_loadu_ps(m, u + j);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), gv));
    const __m512 silu = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    _mm512_mask_storeu_ps(o + j, m, _mm512_mul_ps(silu, uv));
  }
}

LUZAO_AVX512 void rms_norm_row_avx512(const float* x, const float* w, float* o, int64_t n,
                                      float eps) {
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (int64_t j = 0; j < n; j += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - j), x + j);
    const __m512 sq = _mm512_mul_ps(v, v);  // squared in F32, summed in double (as llama.cpp)
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(sq, 1)));
  }
  const double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  const float mean = n > 0 ? static_cast<float>(sum / static_cast<double>(n)) : 0.0f;
  const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(mean + eps));
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = tail_mask(n - j);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), inv);
    _mm512_mask_storeu_ps(o + j, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + j)));
  }
}

LUZAO_AVX512 void f32_to_f16_row_avx512(const float* s, uint16_t* d, int64_t n) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = tail_mask(n - j);
    const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, s + j), _MM_FROUND_TO_NEAREST_INT);
    _mm256_mask_storeu_epi16(d + j, m, h);
  }
}

}  // namespace luzao::cpu

#else

namespace luzao::cpu {
void swiglu_row_avx512(const float*, const float*, float*, int64_t) {}
void rms_norm_row_avx512(const float*, const float*, float*, int64_t, float) {}
void f32_to_f16_row_avx512(const float*, uint16_t*, int64_t) {}
}  // namespace luzao::cpu

#endif
