// Typed scalar reference quantizers and dequantizers, one pair per block format. These are the
// specification for SIMD/GPU kernels; they are bit-identical with llama.cpp's *_ref functions.
#pragma once

#include <cstdint>

#include "tensor/blocks.h"
#include "tensor/dtype.h"

namespace luzao {

// NOLINTBEGIN(readability-identifier-naming): q*_K as in ggml's type names.

// Every function converts one row of n elements; n must be a multiple of the format's block size
// (checked with LUZAO_CHECK). Source and destination must not overlap. Thread-safe (no state).

// Weight formats with a quantizer, rounding exactly as llama.cpp / the gguf Python package.
// - Q4_0, Q5_0: d = (signed value of largest magnitude) / -8 (/ -16),
//   q = min(15 (31), trunc(x / d + 8.5 (16.5))).
// - Q4_1, Q5_1: d = (max - min) / 15 (/ 31), m = min, q = trunc((x - min) / d + 0.5).
// - Q8_0: d = max|x| / 127, q = round-half-away(x / d).
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n);
void quantize_row_q4_1(const float* x, BlockQ4_1* y, int64_t n);
void quantize_row_q5_0(const float* x, BlockQ5_0* y, int64_t n);
void quantize_row_q5_1(const float* x, BlockQ5_1* y, int64_t n);
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n);

// K-quants (tensor/quantize_k.cpp), bit-identical with llama.cpp's quantize_row_q*_K_ref: per group
// a scale (and minimum) search minimising a weighted error, the group scales stored in 4/6/8 bits
// relative to a per-block fp16 scale, then every value requantized with the stored scales.
void quantize_row_q2_K(const float* x, BlockQ2_K* y, int64_t n);
void quantize_row_q3_K(const float* x, BlockQ3_K* y, int64_t n);
void quantize_row_q4_K(const float* x, BlockQ4_K* y, int64_t n);
void quantize_row_q5_K(const float* x, BlockQ5_K* y, int64_t n);
void quantize_row_q6_K(const float* x, BlockQ6_K* y, int64_t n);

// Importance-weighted ("imatrix") quantizers: `importance` holds n non-negative values, the mean
// squared activation each column of the weight matrix meets; rounding errors are weighted by
// importance * sqrt(sigma^2 + x^2). The bytes equal llama.cpp's quantize_q*_* with quant_weights.
// Q4_0/Q4_1/Q5_0/Q5_1 are in tensor/quantize_weighted.cpp, the K-quants in quantize_k.cpp.
void quantize_row_q4_0_weighted(const float* x, BlockQ4_0* y, int64_t n, const float* importance);
void quantize_row_q4_1_weighted(const float* x, BlockQ4_1* y, int64_t n, const float* importance);
void quantize_row_q5_0_weighted(const float* x, BlockQ5_0* y, int64_t n, const float* importance);
void quantize_row_q5_1_weighted(const float* x, BlockQ5_1* y, int64_t n, const float* importance);
void quantize_row_q2_K_weighted(const float* x, BlockQ2_K* y, int64_t n, const float* importance);
void quantize_row_q3_K_weighted(const float* x, BlockQ3_K* y, int64_t n, const float* importance);
void quantize_row_q4_K_weighted(const float* x, BlockQ4_K* y, int64_t n, const float* importance);
void quantize_row_q5_K_weighted(const float* x, BlockQ5_K* y, int64_t n, const float* importance);
void quantize_row_q6_K_weighted(const float* x, BlockQ6_K* y, int64_t n, const float* importance);

// Activation formats for integer dot products (what llama.cpp's CPU backend pairs with each weight
// type): Q8_0 for Q4_0/Q5_0/Q8_0 weights, Q8_1 for Q4_1/Q5_1, Q8_K for all K-quants.
//   Q8_1: d = max|x| / 127, q = round-half-away(x/d), s = fp16(d * sum(q))
//   Q8_K: iscale = -127 / (signed value of largest magnitude), q = min(127, round-half-even(iscale
//         * x)), d = 1 / iscale (fp32), bsums per 16; an all-zero block gets d = 0, q = 0.
void quantize_row_q8_1(const float* x, BlockQ8_1* y, int64_t n);
void quantize_row_q8_K(const float* x, BlockQ8_K* y, int64_t n);

// The activation format of integer dot products with rows of `weight` (llama.cpp's vec_dot_type):
// kQ8_0 for Q4_0/Q5_0/Q8_0, kQ8_1 for Q4_1/Q5_1, kQ8_K for Q2_K..Q6_K; kFloat for F32/F16/BF16
// (and Q8_K, which is itself an activation format), where activations stay floating point.
enum class DotActivation { kFloat, kQ8_0, kQ8_1, kQ8_K };
DotActivation dot_activation(DType weight) noexcept;

void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n);
void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t n);
void dequantize_row_q5_0(const BlockQ5_0* x, float* y, int64_t n);
void dequantize_row_q5_1(const BlockQ5_1* x, float* y, int64_t n);
void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n);
void dequantize_row_q8_1(const BlockQ8_1* x, float* y, int64_t n);
void dequantize_row_q2_K(const BlockQ2_K* x, float* y, int64_t n);
void dequantize_row_q3_K(const BlockQ3_K* x, float* y, int64_t n);
void dequantize_row_q4_K(const BlockQ4_K* x, float* y, int64_t n);
void dequantize_row_q5_K(const BlockQ5_K* x, float* y, int64_t n);
void dequantize_row_q6_K(const BlockQ6_K* x, float* y, int64_t n);
void dequantize_row_q8_K(const BlockQ8_K* x, float* y, int64_t n);

// NOLINTEND(readability-identifier-naming)

}  // namespace luzao
