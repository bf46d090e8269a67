// Assembles the cpu matmul kernel table from the per-family kernels and the runtime CPU check.
#include "backend/cpu/vec_dot.h"

#include <algorithm>
#include <cmath>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

#include "core/half.h"
#include "tensor/blocks.h"
#include "tensor/quants.h"

namespace luzao::cpu {
namespace {

void convert_f16(const float* x, void* dst, int64_t k) {
  auto* d = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < k; ++i) d[i] = fp32_to_fp16(x[i]);
}
void convert_bf16(const float* x, void* dst, int64_t k) {
  auto* d = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < k; ++i) d[i] = fp32_to_bf16(x[i]);
}
// Activation quantization with the reference rounding (scale 1/d, round half away from zero),
// bit-identical to tensor/quants.h. (llama.cpp's x86 kernels scale by 127/amax and round half to
// even instead; trying that did not bring greedy output closer to llama.cpp's on SmolLM2, since
// both differ from it only by rounding noise, so luzao keeps the documented reference rule.)
template <typename Block>
void quantize_activation_row(const float* x, Block* y, int64_t k, bool with_sum) {
  for (int64_t b = 0; b < k / 32; ++b, x += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      const int q = static_cast<int>(std::round(x[j] * id));
      y[b].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    y[b].d = fp32_to_fp16(d);
    if constexpr (requires { y[b].s; }) {
      if (with_sum) y[b].s = fp32_to_fp16(d * static_cast<float>(sum));
    }
  }
}

void convert_q8_0(const float* x, void* dst, int64_t k) {
  quantize_activation_row(x, static_cast<BlockQ8_0*>(dst), k, false);
}
void convert_q8_1(const float* x, void* dst, int64_t k) {
  quantize_activation_row(x, static_cast<BlockQ8_1*>(dst), k, true);
}
void convert_q8_K(const float* x, void* dst, int64_t k) {
  quantize_row_q8_K(x, static_cast<BlockQ8_K*>(dst), k);
}

// The X layouts (vec_dot.h): the same codes and scales as Q8_0/Q8_1, rearranged per row.
template <bool kWithS>
void convert_q8_x(const float* x, void* dst, int64_t k) {
  const int64_t nb = k / 32;
  auto* qs = static_cast<int8_t*>(dst);
  auto* d = reinterpret_cast<float*>(qs + k);
  auto* extra = d + nb;
  for (int64_t b = 0; b < nb; ++b) {
    BlockQ8_1 blk;
    quantize_activation_row(x + 32 * b, &blk, 32, kWithS);
    std::copy(blk.qs, blk.qs + 32, qs + 32 * b);
    d[b] = fp16_to_fp32(blk.d);
    if constexpr (kWithS) {
      extra[b] = fp16_to_fp32(blk.s) * 0.125f;
    } else {
      int32_t sum = 0;
      for (int8_t q : blk.qs) sum += q;
      reinterpret_cast<int32_t*>(extra)[b] = sum;
    }
  }
}
void convert_f16_x(const float* x, void* dst, int64_t k) {
  auto* d = static_cast<float*>(dst);
  for (int64_t i = 0; i < k; ++i) d[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

}  // namespace

const ActFormat kActF32{"f32", 1, 4, nullptr};
const ActFormat kActF16{"f16", 1, 2, convert_f16};
const ActFormat kActBF16{"bf16", 1, 2, convert_bf16};
const ActFormat kActQ8_0{"q8_0", kQK8_0, sizeof(BlockQ8_0), convert_q8_0};
const ActFormat kActQ8_1{"q8_1", kQK8_1, sizeof(BlockQ8_1), convert_q8_1};
const ActFormat kActQ8_K{"q8_K", kQK_K, sizeof(BlockQ8_K), convert_q8_K};
const ActFormat kActQ8_0X{"q8_0x", 32, 40, convert_q8_x<false>};
const ActFormat kActQ8_1X{"q8_1x", 32, 40, convert_q8_x<true>};
const ActFormat kActF16X{"f16x", 1, 4, convert_f16_x};

CpuFeatures detect_cpu_features() noexcept {
  CpuFeatures f;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
  f.avx512_vnni = f.avx512 && __builtin_cpu_supports("avx512vnni");
  // CPUID.(EAX=7,ECX=0):EDX bit 25 (AMX-INT8) and bit 24 (AMX-TILE).
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) f.amx_int8 = (d >> 24 & 1) && (d >> 25 & 1);
#endif
  return f;
}

const char* kernel_isa_name(const CpuFeatures& f) noexcept {
  if (f.avx512_vnni) return "avx512vnni";
  if (f.avx2) return "avx2";
  return "portable";
}

KernelTable make_kernel_table(const CpuFeatures& features) {
  KernelTable table;
  table.fill(MatMulKernel{kActF32, nullptr, "dequantize"});
  add_float_kernels(table);
  add_legacy_quant_kernels(table);
  add_k_quant_kernels(table);
#if defined(__x86_64__)
  if (features.avx2) add_avx2_kernels(table);
  if (features.avx512_vnni) add_avx512_kernels(table);
#else
  (void)features;
#endif
  return table;
}

}  // namespace luzao::cpu
