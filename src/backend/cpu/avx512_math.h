// Shared pieces of the AVX-512 kernels outside matmul: target attributes (the build stays
// portable; callers check CpuFeatures first) and a vector exp. x86-64 only.
#pragma once

#if defined(__x86_64__)

// GCC 12 flags the _mm512_undefined_*() placeholders inside its own intrinsic headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#define LUZAO_AVX512_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"
#define LUZAO_AVX512 __attribute__((target(LUZAO_AVX512_TARGET)))
#define LUZAO_AVX512_INLINE __attribute__((target(LUZAO_AVX512_TARGET), always_inline)) inline

namespace luzao::cpu {

// e^x within about 1 ulp of expf (0 below -104, inf above 89): x = n ln2 + r with |r| <= ln2/2,
// e^r by its degree-7 Taylor polynomial (truncation error < 1e-8), then scaled by 2^n.
LUZAO_AVX512_INLINE __m512 exp_ps(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));  // e^-104 is below the smallest subnormal
  x = _mm512_min_ps(x, _mm512_set1_ps(100.0f));   // e^100 overflows to inf anyway
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // Cody-Waite split of ln 2
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

}  // namespace luzao::cpu

#endif
