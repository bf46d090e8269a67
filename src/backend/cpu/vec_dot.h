// The cpu matmul kernel table: for each weight dtype, the format the activations are converted
// to (as llama.cpp's "vec_dot_type") and the dot product of one weight row with one converted
// activation row. Portable kernels live in vec_dot_*.cpp; ISA-specific ones (AVX2, ...) replace
// table entries at device creation after a runtime CPU check.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace luzao::cpu {

// Converts one row of k F32 activations to the activation format.
using ConvertRowFn = void (*)(const float* x, void* dst, int64_t k);
// Dot product over k elements of a weight row and an activation row in the kernel's format.
using VecDotFn = float (*)(int64_t k, const void* w, const void* act);

struct ActFormat {
  const char* name;    // "f32", "f16", "bf16", "q8_0", "q8_1", "q8_K"
  int64_t block_size;  // elements per block
  size_t block_bytes;
  ConvertRowFn convert;  // nullptr: activations are used as F32 in place

  size_t row_bytes(int64_t k) const { return static_cast<size_t>(k / block_size) * block_bytes; }
};

// A register-blocked tile: out[t * out_stride + r] = dot(weight row r, activation row t) for
// r < rows <= MatMulKernel::tile_rows and t < tokens <= MatMulKernel::tile_tokens. Each output
// is summed in the same order whatever the tile shape, so results do not depend on tiling.
using GemmFn = void (*)(int64_t k, const void* w, size_t w_stride, int rows, const void* act,
                        size_t act_stride, int tokens, float* out, size_t out_stride);

struct MatMulKernel {
  ActFormat act;
  VecDotFn dot;     // nullptr: no direct kernel; the weight row is dequantized and dotted in F32
  const char* isa;  // "scalar", "avx2", "avx512vnni", ...
  GemmFn gemm = nullptr;  // optional tile kernel (same results as dot); used when present
  int tile_rows = 1;
  int tile_tokens = 1;
};

// Kernels for every dtype, indexed by kernel_slot(dtype).
inline constexpr size_t kKernelSlots = 32;
inline size_t kernel_slot(DType t) {
  return static_cast<size_t>(t) % kKernelSlots;
}
using KernelTable = std::array<MatMulKernel, kKernelSlots>;

struct CpuFeatures {
  bool avx2 = false;         // with FMA and F16C
  bool avx512 = false;       // F, BW, VL (with avx2)
  bool avx512_vnni = false;  // with avx512
  bool amx_int8 = false;     // the CPU has AMX tiles (the OS must still grant them)
};
CpuFeatures detect_cpu_features() noexcept;
// Short name of the best kernel set `f` selects: "avx512vnni", "avx2" or "portable".
const char* kernel_isa_name(const CpuFeatures& f) noexcept;

// The portable table (plain C++ the compiler vectorises), then upgraded with what `features`
// allow. Entries the table lacks have dot == nullptr and act = f32.
KernelTable make_kernel_table(const CpuFeatures& features);

// Registration helpers, one per source file (the table is assembled from them).
void add_float_kernels(KernelTable& table);
void add_legacy_quant_kernels(KernelTable& table);
void add_k_quant_kernels(KernelTable& table);
void add_avx2_kernels(KernelTable& table);    // only called when CpuFeatures::avx2
void add_avx512_kernels(KernelTable& table);  // only called when CpuFeatures::avx512_vnni

// Activation formats, shared by portable and ISA kernels.
extern const ActFormat kActF32;
extern const ActFormat kActF16;
extern const ActFormat kActBF16;
extern const ActFormat kActQ8_0;
extern const ActFormat kActQ8_1;
extern const ActFormat kActQ8_K;
// AVX-512 layouts of the same values: per row, the int8 codes of all blocks, then one float
// scale per block (the fp16 d widened), then per block Q8_0X: the int32 code sum; Q8_1X: s / 8
// (the fp16 s widened). F16X: F32 values rounded to F16 (the F16 activation, widened).
extern const ActFormat kActQ8_0X;
extern const ActFormat kActQ8_1X;
extern const ActFormat kActF16X;

}  // namespace luzao::cpu
