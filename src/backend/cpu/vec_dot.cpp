// Assembles the cpu matmul kernel table from the per-family kernels and the runtime CPU check.
#include "backend/cpu/vec_dot.h"

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
void convert_q8_0(const float* x, void* dst, int64_t k) {
  quantize_row_q8_0(x, static_cast<BlockQ8_0*>(dst), k);
}
void convert_q8_1(const float* x, void* dst, int64_t k) {
  quantize_row_q8_1(x, static_cast<BlockQ8_1*>(dst), k);
}
void convert_q8_K(const float* x, void* dst, int64_t k) {
  quantize_row_q8_K(x, static_cast<BlockQ8_K*>(dst), k);
}

}  // namespace

const ActFormat kActF32{"f32", 1, 4, nullptr};
const ActFormat kActF16{"f16", 1, 2, convert_f16};
const ActFormat kActBF16{"bf16", 1, 2, convert_bf16};
const ActFormat kActQ8_0{"q8_0", kQK8_0, sizeof(BlockQ8_0), convert_q8_0};
const ActFormat kActQ8_1{"q8_1", kQK8_1, sizeof(BlockQ8_1), convert_q8_1};
const ActFormat kActQ8_K{"q8_K", kQK_K, sizeof(BlockQ8_K), convert_q8_K};

CpuFeatures detect_cpu_features() noexcept {
  CpuFeatures f;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
#endif
  return f;
}

KernelTable make_kernel_table(const CpuFeatures& features) {
  KernelTable table;
  table.fill(MatMulKernel{kActF32, nullptr, "dequantize"});
  add_float_kernels(table);
  add_legacy_quant_kernels(table);
  add_k_quant_kernels(table);
#if defined(__x86_64__)
  if (features.avx2) add_avx2_kernels(table);
#else
  (void)features;
#endif
  return table;
}

}  // namespace luzao::cpu
