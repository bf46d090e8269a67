// Portable dot products for float weights: F32 x F32, F16 x F16 and BF16 x BF16 (the activation
// is rounded to the weight's format first, as llama.cpp does), accumulated in F32 lanes.
#include "backend/cpu/cpu_math.h"
#include "backend/cpu/vec_dot.h"

namespace luzao::cpu {
namespace {

// Eight independent partial sums so the loop vectorises without -ffast-math.
constexpr int kLanes = 8;

float dot_f32(int64_t k, const void* w, const void* act) {
  const auto* a = static_cast<const float*>(w);
  const auto* b = static_cast<const float*>(act);
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= k; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float sum = 0.0f;
  for (; i < k; ++i) sum += a[i] * b[i];
  for (float v : acc) sum += v;
  return sum;
}

template <float (*Widen)(uint16_t)>
float dot_half(int64_t k, const void* w, const void* act) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const uint16_t*>(act);
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= k; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += Widen(a[i + l]) * Widen(b[i + l]);
  }
  float sum = 0.0f;
  for (; i < k; ++i) sum += Widen(a[i]) * Widen(b[i]);
  for (float v : acc) sum += v;
  return sum;
}

}  // namespace

void add_float_kernels(KernelTable& table) {
  table[kernel_slot(DType::kF32)] = {kActF32, dot_f32, "scalar"};
  table[kernel_slot(DType::kF16)] = {kActF16, dot_half<fp16_to_f32>, "scalar"};
  table[kernel_slot(DType::kBF16)] = {kActBF16, dot_half<bf16_to_f32>, "scalar"};
}

}  // namespace luzao::cpu
