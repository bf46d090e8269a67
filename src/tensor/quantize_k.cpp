// Reference quantizers for the K-quants Q2_K..Q6_K, without and with importance weights. Block
// packing follows tensor/blocks.h; the scale searches live in quantize_k_search.cpp. Without
// weights the bytes equal llama.cpp's quantize_row_q*_K_ref; with weights, its quantize_q*_K.
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "tensor/quant_math.h"
#include "tensor/quantize_k_search.h"
#include "tensor/quants.h"

namespace luzao {

using quant_detail::clamp_int;
using quant_detail::kGroupMaxEps;
using quant_detail::round_even;

namespace {

// Packs 256 2-bit values: value e = 128 h + 32 s + l goes to bits 2s of qs[32 h + l].
void pack_2bit(const uint8_t* levels, uint8_t* qs) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* l = levels + 128 * h;
    for (int j = 0; j < 32; ++j) {
      qs[32 * h + j] =
          static_cast<uint8_t>(l[j] | (l[j + 32] << 2) | (l[j + 64] << 4) | (l[j + 96] << 6));
    }
  }
}

// Six-bit scale and minimum of group j (0..7) into Q4_K/Q5_K's 12 packed bytes.
void pack_scale_min(uint8_t* packed, int j, uint8_t sc, uint8_t m) {
  if (j < 4) {
    packed[j] = sc;
    packed[j + 4] = m;
  } else {
    packed[j + 4] = static_cast<uint8_t>((sc & 0xF) | ((m & 0xF) << 4));
    packed[j - 4] = static_cast<uint8_t>(packed[j - 4] | ((sc >> 4) << 6));
    packed[j] = static_cast<uint8_t>(packed[j] | ((m >> 4) << 6));
  }
}

// Sixteen 6-bit Q3_K scales (already offset by 32, 0..63) into its 12 packed bytes.
void pack_q3_scales(const int* scales, uint8_t* packed) {
  std::memset(packed, 0, 12);
  for (int j = 0; j < 16; ++j) {
    const int l = scales[j];
    if (j < 8) {
      packed[j] = static_cast<uint8_t>(l & 0xF);
    } else {
      packed[j - 8] = static_cast<uint8_t>(packed[j - 8] | ((l & 0xF) << 4));
    }
    packed[8 + j % 4] = static_cast<uint8_t>(packed[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
  }
}

// Requantizes the 16 groups of a Q2_K block with its stored scales and packs it.
void finish_q2_K(const float* x, BlockQ2_K* y, uint8_t* levels) {
  const float d_all = fp16_to_fp32(y->d);
  const float m_all = fp16_to_fp32(y->dmin);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(y->scales[j] & 0xF);
    if (d == 0.0f) continue;
    const float m = m_all * static_cast<float>(y->scales[j] >> 4);
    for (int i = 0; i < 16; ++i) {
      levels[16 * j + i] =
          static_cast<uint8_t>(clamp_int(round_even((x[16 * j + i] + m) / d), 0, 3));
    }
  }
  pack_2bit(levels, y->qs);
}

// Requantizes a Q3_K block with its stored scales, then packs low bits and the high-bit mask.
void finish_q3_K(const float* x, BlockQ3_K* y, int8_t* levels) {
  int8_t scales[16];
  q3_k_scales(y->scales, scales);
  const float d_all = fp16_to_fp32(y->d);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(scales[j]);
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i) {
      levels[16 * j + i] = static_cast<int8_t>(clamp_int(round_even(x[16 * j + i] / d), -4, 3) + 4);
    }
  }
  std::memset(y->hmask, 0, sizeof(y->hmask));
  uint8_t low[kQK_K];
  for (int e = 0; e < kQK_K; ++e) {
    int l = levels[e];
    if (l > 3) {
      y->hmask[e % 32] = static_cast<uint8_t>(y->hmask[e % 32] | (1 << (e / 32)));
      l -= 4;
    }
    low[e] = static_cast<uint8_t>(l);
  }
  pack_2bit(low, y->qs);
}

// Requantizes the 8 groups of a Q4_K/Q5_K block against its stored scales/minimums into levels.
void requantize_groups_32(const float* x, const uint8_t* packed, uint16_t d16, uint16_t dmin16,
                          int nmax, uint8_t* levels) {
  for (int j = 0; j < 8; ++j) {
    uint8_t sc = 0;
    uint8_t m = 0;
    q4_k_scale_min(packed, j, &sc, &m);
    const float d = fp16_to_fp32(d16) * static_cast<float>(sc);
    if (d == 0.0f) continue;
    const float dm = fp16_to_fp32(dmin16) * static_cast<float>(m);
    for (int i = 0; i < 32; ++i) {
      levels[32 * j + i] =
          static_cast<uint8_t>(clamp_int(round_even((x[32 * j + i] + dm) / d), 0, nmax));
    }
  }
}

void pack_q4_K(const uint8_t* levels, uint8_t* qs) {
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      qs[32 * c + l] = static_cast<uint8_t>(levels[64 * c + l] | (levels[64 * c + l + 32] << 4));
    }
  }
}

void pack_q5_K(const uint8_t* levels, BlockQ5_K* y) {
  std::memset(y->qh, 0, sizeof(y->qh));
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      int lo = levels[64 * c + l];
      int hi = levels[64 * c + l + 32];
      if (lo > 15) {
        lo -= 16;
        y->qh[l] = static_cast<uint8_t>(y->qh[l] | (1 << (2 * c)));
      }
      if (hi > 15) {
        hi -= 16;
        y->qh[l] = static_cast<uint8_t>(y->qh[l] | (1 << (2 * c + 1)));
      }
      y->qs[32 * c + l] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

// Scales and minimums of 8 groups of 32 from the reference search (no importance).
void search_groups_32_ref(const float* x, int nmax, float rmin, int nstep, float* scales,
                          float* mins, uint8_t* levels) {
  float weights[32];
  uint8_t scratch[32];
  for (int j = 0; j < 8; ++j) {
    const float* xg = x + 32 * j;
    float sum_x2 = 0.0f;
    for (int l = 0; l < 32; ++l) sum_x2 += xg[l] * xg[l];
    const float av_x = std::sqrt(sum_x2 / 32.0f);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xg[l]);
    scales[j] = quant_detail::search_affine(32, nmax, xg, weights, levels + 32 * j, &mins[j],
                                            scratch, rmin, 0.1f, nstep, false);
  }
}

// The reference way to store 8 scales and minimums in 6 bits: relative to their maxima.
void store_scales_ref(const float* scales, const float* mins, uint8_t* packed, uint16_t* d,
                      uint16_t* dmin) {
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  for (int j = 0; j < 8; ++j) {
    auto ls = static_cast<uint8_t>(round_even(inv_scale * scales[j]));
    auto lm = static_cast<uint8_t>(round_even(inv_min * mins[j]));
    ls = ls < 63 ? ls : 63;
    lm = lm < 63 ? lm : 63;
    pack_scale_min(packed, j, ls, lm);
  }
  *d = fp32_to_fp16(max_scale / 63.0f);
  *dmin = fp32_to_fp16(max_min / 63.0f);
}

// The importance-weighted way: scales and minimums of 8 groups of 32 and their 6-bit codes.
void search_groups_32_weighted(const float* x, const float* importance, int nmax, uint8_t* packed,
                               uint16_t* d, uint16_t* dmin, uint8_t* levels) {
  float sum_x2 = 0.0f;
  for (int l = 0; l < kQK_K; ++l) sum_x2 += x[l] * x[l];
  const float sigma2 = 2.0f * sum_x2 / static_cast<float>(kQK_K);
  const float av_x = std::sqrt(sigma2);
  float weights[32];
  float sw[8];
  float scales[8];
  float mins[8];
  uint8_t scratch[32];
  for (int j = 0; j < 8; ++j) {
    const float* xg = x + 32 * j;
    for (int l = 0; l < 32; ++l) {
      weights[l] = importance != nullptr
                       ? importance[32 * j + l] * std::sqrt(sigma2 + xg[l] * xg[l])
                       : av_x + std::fabs(xg[l]);
    }
    float sumw = 0.0f;
    for (int l = 0; l < 32; ++l) sumw += weights[l];
    sw[j] = sumw;
    scales[j] = quant_detail::search_affine_weighted(32, nmax, xg, weights, levels + 32 * j,
                                                     &mins[j], scratch, -0.9f, 0.05f, 36, false);
  }
  uint8_t ls[8];
  uint8_t lm[8];
  const float d_block = quant_detail::search_positive(8, 63, scales, ls, sw);
  const float m_block = quant_detail::search_positive(8, 63, mins, lm, sw);
  for (int j = 0; j < 8; ++j) {
    pack_scale_min(packed, j, ls[j] < 63 ? ls[j] : 63, lm[j] < 63 ? lm[j] : 63);
  }
  *d = fp32_to_fp16(d_block);
  *dmin = fp32_to_fp16(m_block);
}

void quantize_q2_K_block_ref(const float* x, BlockQ2_K* y) {
  uint8_t levels[kQK_K];
  uint8_t scratch[16];
  float weights[16];
  float scales[16];
  float mins[16];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = quant_detail::search_affine(16, 3, x + 16 * j, weights, levels + 16 * j, &mins[j],
                                            scratch, -0.5f, 0.1f, 15, true);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  constexpr float kQ4Scale = 15.0f;
  if (max_scale > 0.0f) {
    const float iscale = kQ4Scale / max_scale;
    for (int j = 0; j < 16; ++j)
      y->scales[j] = static_cast<uint8_t>(round_even(iscale * scales[j]));
    y->d = fp32_to_fp16(max_scale / kQ4Scale);
  } else {
    std::memset(y->scales, 0, sizeof(y->scales));
    y->d = fp32_to_fp16(0.0f);
  }
  if (max_min > 0.0f) {
    const float iscale = kQ4Scale / max_min;
    for (int j = 0; j < 16; ++j) {
      const int l = round_even(iscale * mins[j]);
      y->scales[j] = static_cast<uint8_t>(y->scales[j] | (l << 4));
    }
    y->dmin = fp32_to_fp16(max_min / kQ4Scale);
  } else {
    y->dmin = fp32_to_fp16(0.0f);
  }
  finish_q2_K(x, y, levels);
}

void quantize_q2_K_block_weighted(const float* x, BlockQ2_K* y, const float* importance) {
  uint8_t levels[kQK_K];
  uint8_t scratch[16];
  float weights[16];
  float scales[16];
  float mins[16];
  float sw[16];
  float sum_x2 = 0.0f;
  for (int j = 0; j < kQK_K; ++j) sum_x2 += x[j] * x[j];
  const float sigma2 = sum_x2 / static_cast<float>(kQK_K);
  for (int j = 0; j < 16; ++j) {
    const float* qw = importance + 16 * j;
    for (int l = 0; l < 16; ++l)
      weights[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
    sw[j] = 0.0f;
    for (int l = 0; l < 16; ++l) sw[j] += weights[l];
    scales[j] = quant_detail::search_affine_weighted(16, 3, x + 16 * j, weights, levels + 16 * j,
                                                     &mins[j], scratch, -0.9f, 0.05f, 36, false);
  }
  uint8_t ls[16];
  uint8_t lm[16];
  const float dm = quant_detail::search_positive(16, 15, scales, ls, sw);
  const float mm = quant_detail::search_positive(16, 15, mins, lm, sw);
  y->d = fp32_to_fp16(dm);
  y->dmin = fp32_to_fp16(mm);
  for (int j = 0; j < 16; ++j) y->scales[j] = static_cast<uint8_t>(ls[j] | (lm[j] << 4));
  finish_q2_K(x, y, levels);
}

void quantize_q3_K_block_ref(const float* x, BlockQ3_K* y) {
  int8_t levels[kQK_K];
  float scales[16];
  float max_scale = 0.0f;
  float amax = 0.0f;
  for (int j = 0; j < 16; ++j) {
    scales[j] = quant_detail::search_symmetric_refined(16, 4, x + 16 * j, levels + 16 * j);
    const float a = std::fabs(scales[j]);
    if (a > amax) {
      amax = a;
      max_scale = scales[j];
    }
  }
  if (max_scale != 0.0f) {
    const float iscale = -32.0f / max_scale;
    int packed[16];
    for (int j = 0; j < 16; ++j) {
      // llama.cpp keeps the rounded scale in an int8_t before clamping it.
      const auto l = static_cast<int8_t>(round_even(iscale * scales[j]));
      packed[j] = clamp_int(l, -32, 31) + 32;
    }
    pack_q3_scales(packed, y->scales);
    y->d = fp32_to_fp16(1.0f / iscale);
  } else {
    std::memset(y->scales, 0, sizeof(y->scales));
    y->d = fp32_to_fp16(0.0f);
  }
  finish_q3_K(x, y, levels);
}

void quantize_q3_K_block_weighted(const float* x, BlockQ3_K* y, const float* importance) {
  int8_t levels[kQK_K];
  float scales[16];
  float weights[16];
  float sw[16];
  float sum_x2 = 0.0f;
  for (int j = 0; j < kQK_K; ++j) sum_x2 += x[j] * x[j];
  const float sigma2 = 2.0f * sum_x2 / static_cast<float>(kQK_K);
  for (int j = 0; j < 16; ++j) {
    const float* xg = x + 16 * j;
    for (int l = 0; l < 16; ++l) {
      weights[l] = importance != nullptr
                       ? importance[16 * j + l] * std::sqrt(sigma2 + xg[l] * xg[l])
                       : xg[l] * xg[l];
    }
    float sumw = 0.0f;
    for (int l = 0; l < 16; ++l) sumw += weights[l];
    sw[j] = sumw;
    scales[j] = quant_detail::search_symmetric(16, 4, xg, levels + 16 * j, 1, weights);
  }
  int8_t ls[16];
  const float d_block = quant_detail::search_symmetric(16, 32, scales, ls, 1, sw);
  int packed[16];
  for (int j = 0; j < 16; ++j) packed[j] = ls[j];
  pack_q3_scales(packed, y->scales);
  y->d = fp32_to_fp16(d_block);
  finish_q3_K(x, y, levels);
}

void quantize_q4_K_block(const float* x, BlockQ4_K* y, const float* importance, bool weighted) {
  uint8_t levels[kQK_K];
  std::memset(y->scales, 0, sizeof(y->scales));
  if (weighted) {
    search_groups_32_weighted(x, importance, 15, y->scales, &y->d, &y->dmin, levels);
  } else {
    float scales[8];
    float mins[8];
    search_groups_32_ref(x, 15, -1.0f, 20, scales, mins, levels);
    store_scales_ref(scales, mins, y->scales, &y->d, &y->dmin);
  }
  requantize_groups_32(x, y->scales, y->d, y->dmin, 15, levels);
  pack_q4_K(levels, y->qs);
}

void quantize_q5_K_block(const float* x, BlockQ5_K* y, const float* importance, bool weighted) {
  uint8_t levels[kQK_K];
  std::memset(y->scales, 0, sizeof(y->scales));
  if (weighted) {
    search_groups_32_weighted(x, importance, 31, y->scales, &y->d, &y->dmin, levels);
  } else {
    float scales[8];
    float mins[8];
    search_groups_32_ref(x, 31, -0.5f, 15, scales, mins, levels);
    store_scales_ref(scales, mins, y->scales, &y->d, &y->dmin);
  }
  requantize_groups_32(x, y->scales, y->d, y->dmin, 31, levels);
  pack_q5_K(levels, y);
}

void quantize_q6_K_block(const float* x, BlockQ6_K* y, const float* importance) {
  int8_t levels[kQK_K];
  float scales[16];
  float max_scale = 0.0f;
  float max_abs_scale = 0.0f;
  for (int g = 0; g < 16; ++g) {
    const float* qw = importance != nullptr ? importance + 16 * g : nullptr;
    scales[g] = quant_detail::search_symmetric(16, 32, x + 16 * g, levels + 16 * g, 1, qw);
    const float a = std::fabs(scales[g]);
    if (a > max_abs_scale) {
      max_abs_scale = a;
      max_scale = scales[g];
    }
  }
  if (max_abs_scale < kGroupMaxEps) {
    std::memset(y, 0, sizeof(BlockQ6_K));
    return;
  }
  const float iscale = -128.0f / max_scale;
  y->d = fp32_to_fp16(1.0f / iscale);
  for (int g = 0; g < 16; ++g) {
    const int l = round_even(iscale * scales[g]);
    y->scales[g] = static_cast<int8_t>(l < 127 ? l : 127);
  }
  const float d_all = fp16_to_fp32(y->d);
  for (int g = 0; g < 16; ++g) {
    const float d = d_all * static_cast<float>(y->scales[g]);
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i) {
      levels[16 * g + i] =
          static_cast<int8_t>(clamp_int(round_even(x[16 * g + i] / d), -32, 31) + 32);
    }
  }
  for (int h = 0; h < 2; ++h) {
    const int8_t* l = levels + 128 * h;
    uint8_t* ql = y->ql + 64 * h;
    uint8_t* qh = y->qh + 32 * h;
    for (int j = 0; j < 32; ++j) {
      ql[j] = static_cast<uint8_t>((l[j] & 0xF) | ((l[j + 64] & 0xF) << 4));
      ql[j + 32] = static_cast<uint8_t>((l[j + 32] & 0xF) | ((l[j + 96] & 0xF) << 4));
      qh[j] = static_cast<uint8_t>((l[j] >> 4) | ((l[j + 32] >> 4) << 2) | ((l[j + 64] >> 4) << 4) |
                                   ((l[j + 96] >> 4) << 6));
    }
  }
}

}  // namespace

void quantize_row_q2_K(const float* x, BlockQ2_K* y, int64_t n) {
  LUZAO_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i) quantize_q2_K_block_ref(x + i * kQK_K, &y[i]);
}

void quantize_row_q3_K(const float* x, BlockQ3_K* y, int64_t n) {
  LUZAO_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i) quantize_q3_K_block_ref(x + i * kQK_K, &y[i]);
}

void quantize_row_q4_K(const float* x, BlockQ4_K* y, int64_t n) {
  LUZAO_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i) quantize_q4_K_block(x + i * kQK_K, &y[i], nullptr, false);
}

void quantize_row_q5_K(const float* x, BlockQ5_K* y, int64_t n) {
  LUZAO_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i) quantize_q5_K_block(x + i * kQK_K, &y[i], nullptr, false);
}

void quantize_row_q6_K(const float* x, BlockQ6_K* y, int64_t n) {
  LUZAO_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i) quantize_q6_K_block(x + i * kQK_K, &y[i], nullptr);
}

void quantize_row_q2_K_weighted(const float* x, BlockQ2_K* y, int64_t n, const float* importance) {
  LUZAO_CHECK(n % kQK_K == 0 && importance != nullptr);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    quantize_q2_K_block_weighted(x + i * kQK_K, &y[i], importance + i * kQK_K);
  }
}

void quantize_row_q3_K_weighted(const float* x, BlockQ3_K* y, int64_t n, const float* importance) {
  LUZAO_CHECK(n % kQK_K == 0 && importance != nullptr);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    quantize_q3_K_block_weighted(x + i * kQK_K, &y[i], importance + i * kQK_K);
  }
}

void quantize_row_q4_K_weighted(const float* x, BlockQ4_K* y, int64_t n, const float* importance) {
  LUZAO_CHECK(n % kQK_K == 0 && importance != nullptr);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    quantize_q4_K_block(x + i * kQK_K, &y[i], importance + i * kQK_K, true);
  }
}

void quantize_row_q5_K_weighted(const float* x, BlockQ5_K* y, int64_t n, const float* importance) {
  LUZAO_CHECK(n % kQK_K == 0 && importance != nullptr);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    quantize_q5_K_block(x + i * kQK_K, &y[i], importance + i * kQK_K, true);
  }
}

void quantize_row_q6_K_weighted(const float* x, BlockQ6_K* y, int64_t n, const float* importance) {
  LUZAO_CHECK(n % kQK_K == 0 && importance != nullptr);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    quantize_q6_K_block(x + i * kQK_K, &y[i], importance + i * kQK_K);
  }
}

}  // namespace luzao
