// Scalar reference quantize/dequantize for the 32-element formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
// and the Q8_1 activation format. Arithmetic is fp32 step by step, as llama.cpp's *_ref code.
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "tensor/quant_math.h"
#include "tensor/quants.h"

namespace luzao {

using quant_detail::clamp_int;
using quant_detail::round_away;
using quant_detail::trunc_to_int;

namespace {

// The signed value whose magnitude is largest (the first one on ties).
float signed_absmax(const float* x, int n) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void min_max(const float* x, int n, float* lo, float* hi) {
  float mn = x[0];
  float mx = x[0];
  for (int j = 1; j < n; ++j) {
    if (x[j] < mn) mn = x[j];
    if (x[j] > mx) mx = x[j];
  }
  *lo = mn;
  *hi = mx;
}

float inverse_or_zero(float d) {
  return d != 0.0f ? 1.0f / d : 0.0f;
}

uint32_t load_qh(const uint8_t qh[4]) {
  return static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 |
         static_cast<uint32_t>(qh[2]) << 16 | static_cast<uint32_t>(qh[3]) << 24;
}

void store_qh(uint32_t v, uint8_t qh[4]) {
  for (int i = 0; i < 4; ++i) qh[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Quantizes one block of 32 into 4-bit low parts and the 32-bit word of fifth bits.
// `offset` is 8.5/16.5 for the symmetric formats (scale id) and 0.5 for the ones with a minimum.
template <int kMaxQ>
void pack_block(const float* x, float id, float shift, float offset, uint8_t qs[16],
                uint32_t* high_bits) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const float a = (x[j] - shift) * id;  // separate statements: no fused multiply-add
    const float b = (x[j + 16] - shift) * id;
    const int32_t q0 = clamp_int(trunc_to_int(a + offset), 0, kMaxQ);
    const int32_t q1 = clamp_int(trunc_to_int(b + offset), 0, kMaxQ);
    qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
    qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
  }
  *high_bits = qh;
}

}  // namespace

void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n) {
  LUZAO_CHECK(n % kQK4_0 == 0);
  for (int64_t i = 0; i < n / kQK4_0; ++i, x += kQK4_0) {
    const float d = signed_absmax(x, kQK4_0) / -8.0f;
    uint32_t unused = 0;
    pack_block<15>(x, inverse_or_zero(d), 0.0f, 8.5f, y[i].qs, &unused);
    y[i].d = fp32_to_fp16(d);
  }
}

void quantize_row_q4_1(const float* x, BlockQ4_1* y, int64_t n) {
  LUZAO_CHECK(n % kQK4_1 == 0);
  for (int64_t i = 0; i < n / kQK4_1; ++i, x += kQK4_1) {
    float mn = 0.0f;
    float mx = 0.0f;
    min_max(x, kQK4_1, &mn, &mx);
    const float d = (mx - mn) / 15.0f;
    uint32_t unused = 0;
    pack_block<15>(x, inverse_or_zero(d), mn, 0.5f, y[i].qs, &unused);
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(mn);
  }
}

void quantize_row_q5_0(const float* x, BlockQ5_0* y, int64_t n) {
  LUZAO_CHECK(n % kQK5_0 == 0);
  for (int64_t i = 0; i < n / kQK5_0; ++i, x += kQK5_0) {
    const float d = signed_absmax(x, kQK5_0) / -16.0f;
    uint32_t qh = 0;
    pack_block<31>(x, inverse_or_zero(d), 0.0f, 16.5f, y[i].qs, &qh);
    store_qh(qh, y[i].qh);
    y[i].d = fp32_to_fp16(d);
  }
}

void quantize_row_q5_1(const float* x, BlockQ5_1* y, int64_t n) {
  LUZAO_CHECK(n % kQK5_1 == 0);
  for (int64_t i = 0; i < n / kQK5_1; ++i, x += kQK5_1) {
    float mn = 0.0f;
    float mx = 0.0f;
    min_max(x, kQK5_1, &mn, &mx);
    const float d = (mx - mn) / 31.0f;
    uint32_t qh = 0;
    pack_block<31>(x, inverse_or_zero(d), mn, 0.5f, y[i].qs, &qh);
    store_qh(qh, y[i].qh);
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(mn);
  }
}

namespace {

// Shared by Q8_0 and Q8_1: returns d and the sum of the quants.
float quantize_q8_block(const float* x, int8_t* qs, int32_t* sum) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) {
    const float v = std::fabs(x[j]);
    amax = amax > v ? amax : v;  // as llama.cpp's MAX: a NaN input poisons the block
  }
  const float d = amax / 127.0f;
  const float id = inverse_or_zero(d);
  int32_t s = 0;
  for (int j = 0; j < 32; ++j) {
    const float v = x[j] * id;
    const int32_t q = clamp_int(round_away(v), -128, 127);
    qs[j] = static_cast<int8_t>(q);
    s += q;
  }
  *sum = s;
  return d;
}

}  // namespace

void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n) {
  LUZAO_CHECK(n % kQK8_0 == 0);
  for (int64_t i = 0; i < n / kQK8_0; ++i, x += kQK8_0) {
    int32_t sum = 0;
    y[i].d = fp32_to_fp16(quantize_q8_block(x, y[i].qs, &sum));
  }
}

void quantize_row_q8_1(const float* x, BlockQ8_1* y, int64_t n) {
  LUZAO_CHECK(n % kQK8_1 == 0);
  for (int64_t i = 0; i < n / kQK8_1; ++i, x += kQK8_1) {
    int32_t sum = 0;
    const float d = quantize_q8_block(x, y[i].qs, &sum);
    y[i].d = fp32_to_fp16(d);
    y[i].s = fp32_to_fp16(static_cast<float>(sum) * d);
  }
}

void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n) {
  LUZAO_CHECK(n % kQK4_0 == 0);
  for (int64_t i = 0; i < n / kQK4_0; ++i, y += kQK4_0) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((x[i].qs[j] & 0xF) - 8) * d;
      y[j + 16] = static_cast<float>((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t n) {
  LUZAO_CHECK(n % kQK4_1 == 0);
  for (int64_t i = 0; i < n / kQK4_1; ++i, y += kQK4_1) {
    const float d = fp16_to_fp32(x[i].d);
    const float m = fp16_to_fp32(x[i].m);
    for (int j = 0; j < 16; ++j) {
      const float a = static_cast<float>(x[i].qs[j] & 0xF) * d;
      const float b = static_cast<float>(x[i].qs[j] >> 4) * d;
      y[j] = a + m;
      y[j + 16] = b + m;
    }
  }
}

void dequantize_row_q5_0(const BlockQ5_0* x, float* y, int64_t n) {
  LUZAO_CHECK(n % kQK5_0 == 0);
  for (int64_t i = 0; i < n / kQK5_0; ++i, y += kQK5_0) {
    const float d = fp16_to_fp32(x[i].d);
    const uint32_t qh = load_qh(x[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (x[i].qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
      const int q1 = (x[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
      y[j] = static_cast<float>(q0 - 16) * d;
      y[j + 16] = static_cast<float>(q1 - 16) * d;
    }
  }
}

void dequantize_row_q5_1(const BlockQ5_1* x, float* y, int64_t n) {
  LUZAO_CHECK(n % kQK5_1 == 0);
  for (int64_t i = 0; i < n / kQK5_1; ++i, y += kQK5_1) {
    const float d = fp16_to_fp32(x[i].d);
    const float m = fp16_to_fp32(x[i].m);
    const uint32_t qh = load_qh(x[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (x[i].qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
      const int q1 = (x[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
      const float a = static_cast<float>(q0) * d;
      const float b = static_cast<float>(q1) * d;
      y[j] = a + m;
      y[j + 16] = b + m;
    }
  }
}

void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n) {
  LUZAO_CHECK(n % kQK8_0 == 0);
  for (int64_t i = 0; i < n / kQK8_0; ++i, y += kQK8_0) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK8_0; ++j) y[j] = static_cast<float>(x[i].qs[j]) * d;
  }
}

void dequantize_row_q8_1(const BlockQ8_1* x, float* y, int64_t n) {
  LUZAO_CHECK(n % kQK8_1 == 0);
  for (int64_t i = 0; i < n / kQK8_1; ++i, y += kQK8_1) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK8_1; ++j) y[j] = static_cast<float>(x[i].qs[j]) * d;
  }
}

}  // namespace luzao
