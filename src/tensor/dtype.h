// Element types and quantization block layouts, numbered and laid out exactly as in GGUF.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace luzao {

// Values are the GGUF/ggml type ids; a GGUF file stores them verbatim.
enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30,
};

struct DTypeInfo {
  DType type;
  std::string_view name;  // "f32", "q4_0", "q4_K", ... exactly as ggml's type names
  int64_t block_size;     // elements per block (1 for plain float types)
  size_t block_bytes;     // bytes per block
};

// nullopt for an id luzao does not know (the GGUF reader reports it as an unknown dtype).
std::optional<DType> dtype_from_id(uint32_t id) noexcept;
// Case-insensitive lookup by name ("q4_0", "Q4_0", "f16"); nullopt if unknown.
std::optional<DType> dtype_from_name(std::string_view name) noexcept;
const DTypeInfo& dtype_info(DType type) noexcept;
inline std::string_view dtype_name(DType type) noexcept {
  return dtype_info(type).name;
}

// Bytes of a row of n elements; nullopt when n is not a multiple of the block size or on overflow.
std::optional<uint64_t> row_bytes(DType type, uint64_t n) noexcept;

// Scalar reference conversions of one row of n elements; Error(kInvalidArgument) when n is not a
// multiple of the block size. These are the specification every SIMD/GPU kernel is tested against.
// Quantized data is read through the block structs of tensor/blocks.h, so src/dst need the block's
// alignment (2 bytes; 4 for Q8_K). Typed per-format functions and the Q8_1 activation format are
// in tensor/quants.h.
void dequantize_row(DType type, const void* src, float* dst, int64_t n);
// Throws Error(kUnsupported) for a type without a quantizer (see can_quantize).
void quantize_row(DType type, const float* src, void* dst, int64_t n);
// True for F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K and Q8_K.
bool can_quantize(DType type) noexcept;

// Whether quantize_rows uses importance weights for `type` (Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K).
bool uses_importance(DType type) noexcept;
// Quantizes `nrows` rows of `n_per_row` floats into dst (row_bytes(type, n_per_row) per row).
// `importance` is empty or holds n_per_row non-negative column weights (an imatrix entry); with it
// the weighted quantizers of tensor/quants.h run where uses_importance(type), else it is ignored
// and the result equals quantize_row row by row. Throws Error(kInvalidArgument) for a row length
// the type cannot store or an importance vector of the wrong length, kUnsupported as quantize_row.
void quantize_rows(DType type, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                   std::span<const float> importance);

}  // namespace luzao
