// Portable integer dot products of the 32-element block formats with 8-bit activations:
// Q4_0/Q5_0/Q8_0 x Q8_0 and Q4_1/Q5_1 x Q8_1. Exact int32 sums per block, scaled in F32.
#include <cstring>

#include "backend/cpu/cpu_math.h"
#include "backend/cpu/vec_dot.h"
#include "tensor/blocks.h"

namespace luzao::cpu {
namespace {

// Bit j of a Q5 block's high-bit word.
inline uint32_t load_qh(const uint8_t qh[4]) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}

float dot_q4_0(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(act);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kQK8_0; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      isum += ((x[b].qs[j] & 0xF) - 8) * y[b].qs[j];
      isum += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + 16];
    }
    sum += static_cast<float>(isum) * fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d);
  }
  return sum;
}

float dot_q4_1(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(act);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kQK8_1; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      isum += (x[b].qs[j] & 0xF) * y[b].qs[j];
      isum += (x[b].qs[j] >> 4) * y[b].qs[j + 16];
    }
    sum += static_cast<float>(isum) * fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d) +
           fp16_to_f32(x[b].m) * fp16_to_f32(y[b].s);
  }
  return sum;
}

float dot_q5_0(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ5_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(act);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kQK8_0; ++b) {
    const uint32_t qh = load_qh(x[b].qh);
    int32_t isum = 0;
    for (int j = 0; j < kQK5_0 / 2; ++j) {
      const int lo = static_cast<int>((x[b].qs[j] & 0xF) | ((qh >> j) & 1u) << 4) - 16;
      const int hi = static_cast<int>((x[b].qs[j] >> 4) | ((qh >> (j + 16)) & 1u) << 4) - 16;
      isum += lo * y[b].qs[j] + hi * y[b].qs[j + 16];
    }
    sum += static_cast<float>(isum) * fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d);
  }
  return sum;
}

float dot_q5_1(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ5_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(act);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kQK8_1; ++b) {
    const uint32_t qh = load_qh(x[b].qh);
    int32_t isum = 0;
    for (int j = 0; j < kQK5_1 / 2; ++j) {
      const int lo = static_cast<int>((x[b].qs[j] & 0xF) | ((qh >> j) & 1u) << 4);
      const int hi = static_cast<int>((x[b].qs[j] >> 4) | ((qh >> (j + 16)) & 1u) << 4);
      isum += lo * y[b].qs[j] + hi * y[b].qs[j + 16];
    }
    sum += static_cast<float>(isum) * fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d) +
           fp16_to_f32(x[b].m) * fp16_to_f32(y[b].s);
  }
  return sum;
}

float dot_q8_0(int64_t k, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(act);
  float sum = 0.0f;
  for (int64_t b = 0; b < k / kQK8_0; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQK8_0; ++j) isum += x[b].qs[j] * y[b].qs[j];
    sum += static_cast<float>(isum) * fp16_to_f32(x[b].d) * fp16_to_f32(y[b].d);
  }
  return sum;
}

}  // namespace

void add_legacy_quant_kernels(KernelTable& table) {
  table[kernel_slot(DType::kQ4_0)] = {kActQ8_0, dot_q4_0, "scalar"};
  table[kernel_slot(DType::kQ4_1)] = {kActQ8_1, dot_q4_1, "scalar"};
  table[kernel_slot(DType::kQ5_0)] = {kActQ8_0, dot_q5_0, "scalar"};
  table[kernel_slot(DType::kQ5_1)] = {kActQ8_1, dot_q5_1, "scalar"};
  table[kernel_slot(DType::kQ8_0)] = {kActQ8_0, dot_q8_0, "scalar"};
}

}  // namespace luzao::cpu
