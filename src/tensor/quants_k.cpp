// Scalar reference dequantizers for the K-quants (Q2_K..Q6_K, Q8_K) and the Q8_K activation
// quantizer. Element order and arithmetic follow llama.cpp's dequantize_row_q*_K exactly.
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "tensor/quant_math.h"
#include "tensor/quants.h"

namespace luzao {

void dequantize_row_q2_K(const BlockQ2_K* x, float* y, int64_t n) {
  LUZAO_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128;
      const int s = (e % 128) / 32;
      const int l = e % 32;
      const uint8_t sc = x[i].scales[e / 16];
      const float dl = d * static_cast<float>(sc & 0xF);
      const float ml = dmin * static_cast<float>(sc >> 4);
      const int q = (x[i].qs[32 * h + l] >> (2 * s)) & 3;
      const float scaled = dl * static_cast<float>(q);
      *y++ = scaled - ml;
    }
  }
}

void dequantize_row_q3_K(const BlockQ3_K* x, float* y, int64_t n) {
  LUZAO_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    int8_t scales[16];
    q3_k_scales(x[i].scales, scales);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128;
      const int s = (e % 128) / 32;
      const int l = e % 32;
      const int low = (x[i].qs[32 * h + l] >> (2 * s)) & 3;
      const bool high = (x[i].hmask[e % 32] >> (e / 32)) & 1;
      const int group = e / 16;
      const float dl = d * static_cast<float>(scales[group]);
      *y++ = dl * static_cast<float>(low - (high ? 0 : 4));
    }
  }
}

void dequantize_row_q4_K(const BlockQ4_K* x, float* y, int64_t n) {
  LUZAO_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    for (int g = 0; g < 8; ++g) {
      uint8_t sc = 0;
      uint8_t m = 0;
      q4_k_scale_min(x[i].scales, g, &sc, &m);
      const float dl = d * static_cast<float>(sc);
      const float ml = dmin * static_cast<float>(m);
      const uint8_t* q = x[i].qs + 32 * (g / 2);
      const int shift = 4 * (g % 2);
      for (int l = 0; l < 32; ++l) {
        const float scaled = dl * static_cast<float>((q[l] >> shift) & 0xF);
        *y++ = scaled - ml;
      }
    }
  }
}

void dequantize_row_q5_K(const BlockQ5_K* x, float* y, int64_t n) {
  LUZAO_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    for (int g = 0; g < 8; ++g) {
      uint8_t sc = 0;
      uint8_t m = 0;
      q4_k_scale_min(x[i].scales, g, &sc, &m);
      const float dl = d * static_cast<float>(sc);
      const float ml = dmin * static_cast<float>(m);
      const uint8_t* q = x[i].qs + 32 * (g / 2);
      const int shift = 4 * (g % 2);
      for (int l = 0; l < 32; ++l) {
        const int v = ((q[l] >> shift) & 0xF) | (((x[i].qh[l] >> g) & 1) << 4);
        const float scaled = dl * static_cast<float>(v);
        *y++ = scaled - ml;
      }
    }
  }
}

void dequantize_row_q6_K(const BlockQ6_K* x, float* y, int64_t n) {
  LUZAO_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128;
      const int s = (e % 128) / 32;
      const int l = e % 32;
      const uint8_t lo_byte = x[i].ql[64 * h + 32 * (s & 1) + l];
      const int lo = s >= 2 ? lo_byte >> 4 : lo_byte & 0xF;
      const int hi = (x[i].qh[32 * h + l] >> (2 * s)) & 3;
      const int group = e / 16;
      const float dl = d * static_cast<float>(x[i].scales[group]);
      *y++ = dl * static_cast<float>((lo | (hi << 4)) - 32);
    }
  }
}

void dequantize_row_q8_K(const BlockQ8_K* x, float* y, int64_t n) {
  LUZAO_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i, y += kQK_K) {
    for (int j = 0; j < kQK_K; ++j) y[j] = x[i].d * static_cast<float>(x[i].qs[j]);
  }
}

void quantize_row_q8_K(const float* x, BlockQ8_K* y, int64_t n) {
  using quant_detail::clamp_int;
  using quant_detail::round_even;
  LUZAO_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQK_K; ++j) {
      const float v = iscale * x[j];
      y[i].qs[j] = static_cast<int8_t>(clamp_int(round_even(v), -128, 127));
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int32_t sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * g + l];
      y[i].bsums[g] = static_cast<int16_t>(sum);
    }
    y[i].d = 1.0f / iscale;
  }
}

}  // namespace luzao
