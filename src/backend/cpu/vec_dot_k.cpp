// Portable integer dot products of the K-quant super-blocks (256 elements) with Q8_K activations.
// Each block is first unpacked to 256 small integers, then dotted group by group; the minimum
// terms of Q2_K/Q4_K/Q5_K use the activation's precomputed 16-element sums (bsums).
#include "backend/cpu/cpu_math.h"
#include "backend/cpu/vec_dot.h"
#include "tensor/blocks.h"

namespace luzao::cpu {
namespace {

// Sum of q[i] * a[i] over one group of `n` elements.
template <int n>
inline int32_t group_dot(const int8_t* q, const int8_t* a) {
  int32_t s = 0;
  for (int i = 0; i < n; ++i) s += q[i] * a[i];
  return s;
}

float dot_q2_K(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ2_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  float sum = 0.0f;
  int8_t q[kQK_K];
  for (int64_t b = 0; b < k / kQK_K; ++b) {
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        for (int l = 0; l < 32; ++l) {
          q[128 * h + 32 * s + l] = static_cast<int8_t>((x[b].qs[32 * h + l] >> (2 * s)) & 3);
        }
      }
    }
    int32_t isum = 0;
    int32_t msum = 0;
    for (int g = 0; g < 16; ++g) {
      isum += (x[b].scales[g] & 0xF) * group_dot<16>(q + 16 * g, y[b].qs + 16 * g);
      msum += (x[b].scales[g] >> 4) * y[b].bsums[g];
    }
    sum += y[b].d * (fp16_to_f32(x[b].d) * static_cast<float>(isum) -
                     fp16_to_f32(x[b].dmin) * static_cast<float>(msum));
  }
  return sum;
}

float dot_q3_K(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ3_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  float sum = 0.0f;
  int8_t q[kQK_K];
  int8_t sc[16];
  for (int64_t b = 0; b < k / kQK_K; ++b) {
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        const int bit = 4 * h + s;
        for (int l = 0; l < 32; ++l) {
          const int low = (x[b].qs[32 * h + l] >> (2 * s)) & 3;
          const int high = (x[b].hmask[l] >> bit) & 1;
          q[128 * h + 32 * s + l] = static_cast<int8_t>(low - (high ? 0 : 4));
        }
      }
    }
    q3_k_scales(x[b].scales, sc);
    int32_t isum = 0;
    for (int g = 0; g < 16; ++g) isum += sc[g] * group_dot<16>(q + 16 * g, y[b].qs + 16 * g);
    sum += y[b].d * fp16_to_f32(x[b].d) * static_cast<float>(isum);
  }
  return sum;
}

// Q4_K and Q5_K share the 8 x 32 group layout with 6-bit scales and mins.
template <bool kFive, typename Block>
float dot_q45_K(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  float sum = 0.0f;
  int8_t q[kQK_K];
  for (int64_t b = 0; b < k / kQK_K; ++b) {
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        int lo = x[b].qs[32 * c + l] & 0xF;
        int hi = x[b].qs[32 * c + l] >> 4;
        if constexpr (kFive) {
          lo |= ((x[b].qh[l] >> (2 * c)) & 1) << 4;
          hi |= ((x[b].qh[l] >> (2 * c + 1)) & 1) << 4;
        }
        q[64 * c + l] = static_cast<int8_t>(lo);
        q[64 * c + 32 + l] = static_cast<int8_t>(hi);
      }
    }
    int32_t isum = 0;
    int32_t msum = 0;
    for (int g = 0; g < 8; ++g) {
      uint8_t sc = 0;
      uint8_t m = 0;
      q4_k_scale_min(x[b].scales, g, &sc, &m);
      isum += sc * group_dot<32>(q + 32 * g, y[b].qs + 32 * g);
      msum += m * (y[b].bsums[2 * g] + y[b].bsums[2 * g + 1]);
    }
    sum += y[b].d * (fp16_to_f32(x[b].d) * static_cast<float>(isum) -
                     fp16_to_f32(x[b].dmin) * static_cast<float>(msum));
  }
  return sum;
}

float dot_q6_K(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ6_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  float sum = 0.0f;
  int8_t q[kQK_K];
  for (int64_t b = 0; b < k / kQK_K; ++b) {
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        // Shift and source rows are uniform over l, so this loop vectorises.
        const uint8_t* ql = x[b].ql + 64 * h + 32 * (s & 1);
        const uint8_t* qh = x[b].qh + 32 * h;
        const int shift = s >= 2 ? 4 : 0;
        int8_t* dst = q + 128 * h + 32 * s;
        for (int l = 0; l < 32; ++l) {
          dst[l] =
              static_cast<int8_t>((((ql[l] >> shift) & 0xF) | ((qh[l] >> (2 * s)) & 3) << 4) - 32);
        }
      }
    }
    int32_t isum = 0;
    for (int g = 0; g < 16; ++g) {
      isum += x[b].scales[g] * group_dot<16>(q + 16 * g, y[b].qs + 16 * g);
    }
    sum += y[b].d * fp16_to_f32(x[b].d) * static_cast<float>(isum);
  }
  return sum;
}

}  // namespace

void add_k_quant_kernels(KernelTable& table) {
  table[kernel_slot(DType::kQ2_K)] = {kActQ8_K, dot_q2_K, "scalar"};
  table[kernel_slot(DType::kQ3_K)] = {kActQ8_K, dot_q3_K, "scalar"};
  table[kernel_slot(DType::kQ4_K)] = {kActQ8_K, dot_q45_K<false, BlockQ4_K>, "scalar"};
  table[kernel_slot(DType::kQ5_K)] = {kActQ8_K, dot_q45_K<true, BlockQ5_K>, "scalar"};
  table[kernel_slot(DType::kQ6_K)] = {kActQ8_K, dot_q6_K, "scalar"};
}

}  // namespace luzao::cpu
