// The dtype table (names and block geometry as in GGUF/ggml), lookups, row sizes and the
// type-dispatching scalar reference quantize_row/dequantize_row.
#include "tensor/dtype.h"

#include <array>
#include <cstring>

#include "core/checked_math.h"
#include "core/error.h"
#include "core/half.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

constexpr std::array<DTypeInfo, 14> kInfos = {{
    {DType::kF32, "f32", 1, 4},
    {DType::kF16, "f16", 1, 2},
    {DType::kQ4_0, "q4_0", kQK4_0, sizeof(BlockQ4_0)},
    {DType::kQ4_1, "q4_1", kQK4_1, sizeof(BlockQ4_1)},
    {DType::kQ5_0, "q5_0", kQK5_0, sizeof(BlockQ5_0)},
    {DType::kQ5_1, "q5_1", kQK5_1, sizeof(BlockQ5_1)},
    {DType::kQ8_0, "q8_0", kQK8_0, sizeof(BlockQ8_0)},
    {DType::kQ2_K, "q2_K", kQK_K, sizeof(BlockQ2_K)},
    {DType::kQ3_K, "q3_K", kQK_K, sizeof(BlockQ3_K)},
    {DType::kQ4_K, "q4_K", kQK_K, sizeof(BlockQ4_K)},
    {DType::kQ5_K, "q5_K", kQK_K, sizeof(BlockQ5_K)},
    {DType::kQ6_K, "q6_K", kQK_K, sizeof(BlockQ6_K)},
    {DType::kQ8_K, "q8_K", kQK_K, sizeof(BlockQ8_K)},
    {DType::kBF16, "bf16", 1, 2},
}};

const DTypeInfo* find_info(DType type) noexcept {
  for (const DTypeInfo& info : kInfos) {
    if (info.type == type) return &info;
  }
  return nullptr;
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

void check_row(const char* what, DType type, int64_t n) {
  const DTypeInfo& info = dtype_info(type);
  if (n < 0 || n % info.block_size != 0) {
    fail(ErrorKind::kInvalidArgument,
         "{}: row of {} elements is not a multiple of the {} block size {}", what, n, info.name,
         info.block_size);
  }
}

}  // namespace

std::optional<DType> dtype_from_id(uint32_t id) noexcept {
  for (const DTypeInfo& info : kInfos) {
    if (static_cast<uint32_t>(info.type) == id) return info.type;
  }
  return std::nullopt;
}

std::optional<DType> dtype_from_name(std::string_view name) noexcept {
  for (const DTypeInfo& info : kInfos) {
    if (equal_ignoring_case(info.name, name)) return info.type;
  }
  return std::nullopt;
}

const DTypeInfo& dtype_info(DType type) noexcept {
  // Every enumerator is in the table; a value cast from an unchecked integer maps to f32's entry
  // rather than reading out of bounds (callers get types from dtype_from_id).
  const DTypeInfo* info = find_info(type);
  return info != nullptr ? *info : kInfos[0];
}

std::optional<uint64_t> row_bytes(DType type, uint64_t n) noexcept {
  const DTypeInfo* info = find_info(type);
  if (info == nullptr) return std::nullopt;
  const auto block = static_cast<uint64_t>(info->block_size);
  if (n % block != 0) return std::nullopt;
  return checked_mul(n / block, info->block_bytes);
}

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
  check_row("dequantize_row", type, n);
  switch (type) {
    case DType::kF32:
      if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
      return;
    }
    case DType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
      return;
    }
    case DType::kQ4_0:
      return dequantize_row_q4_0(static_cast<const BlockQ4_0*>(src), dst, n);
    case DType::kQ4_1:
      return dequantize_row_q4_1(static_cast<const BlockQ4_1*>(src), dst, n);
    case DType::kQ5_0:
      return dequantize_row_q5_0(static_cast<const BlockQ5_0*>(src), dst, n);
    case DType::kQ5_1:
      return dequantize_row_q5_1(static_cast<const BlockQ5_1*>(src), dst, n);
    case DType::kQ8_0:
      return dequantize_row_q8_0(static_cast<const BlockQ8_0*>(src), dst, n);
    case DType::kQ2_K:
      return dequantize_row_q2_K(static_cast<const BlockQ2_K*>(src), dst, n);
    case DType::kQ3_K:
      return dequantize_row_q3_K(static_cast<const BlockQ3_K*>(src), dst, n);
    case DType::kQ4_K:
      return dequantize_row_q4_K(static_cast<const BlockQ4_K*>(src), dst, n);
    case DType::kQ5_K:
      return dequantize_row_q5_K(static_cast<const BlockQ5_K*>(src), dst, n);
    case DType::kQ6_K:
      return dequantize_row_q6_K(static_cast<const BlockQ6_K*>(src), dst, n);
    case DType::kQ8_K:
      return dequantize_row_q8_K(static_cast<const BlockQ8_K*>(src), dst, n);
  }
  fail(ErrorKind::kUnsupported, "dequantize_row: unknown dtype id {}", static_cast<uint32_t>(type));
}

bool can_quantize(DType type) noexcept {
  switch (type) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ8_0:
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
    case DType::kQ8_K:
      return true;
    default:
      return false;
  }
}

DotActivation dot_activation(DType weight) noexcept {
  switch (weight) {
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ8_0:
      return DotActivation::kQ8_0;
    case DType::kQ4_1:
    case DType::kQ5_1:
      return DotActivation::kQ8_1;
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return DotActivation::kQ8_K;
    default:
      return DotActivation::kFloat;
  }
}

void quantize_row(DType type, const float* src, void* dst, int64_t n) {
  if (!can_quantize(type)) {
    fail(ErrorKind::kUnsupported, "quantize_row: no quantizer for dtype {}", dtype_name(type));
  }
  check_row("quantize_row", type, n);
  switch (type) {
    case DType::kF32:
      if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
      return;
    }
    case DType::kBF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
      return;
    }
    case DType::kQ4_0:
      return quantize_row_q4_0(src, static_cast<BlockQ4_0*>(dst), n);
    case DType::kQ4_1:
      return quantize_row_q4_1(src, static_cast<BlockQ4_1*>(dst), n);
    case DType::kQ5_0:
      return quantize_row_q5_0(src, static_cast<BlockQ5_0*>(dst), n);
    case DType::kQ5_1:
      return quantize_row_q5_1(src, static_cast<BlockQ5_1*>(dst), n);
    case DType::kQ8_0:
      return quantize_row_q8_0(src, static_cast<BlockQ8_0*>(dst), n);
    case DType::kQ2_K:
      return quantize_row_q2_K(src, static_cast<BlockQ2_K*>(dst), n);
    case DType::kQ3_K:
      return quantize_row_q3_K(src, static_cast<BlockQ3_K*>(dst), n);
    case DType::kQ4_K:
      return quantize_row_q4_K(src, static_cast<BlockQ4_K*>(dst), n);
    case DType::kQ5_K:
      return quantize_row_q5_K(src, static_cast<BlockQ5_K*>(dst), n);
    case DType::kQ6_K:
      return quantize_row_q6_K(src, static_cast<BlockQ6_K*>(dst), n);
    case DType::kQ8_K:
      return quantize_row_q8_K(src, static_cast<BlockQ8_K*>(dst), n);
    default:
      break;
  }
  fail(ErrorKind::kInternal, "quantize_row: dtype {} has no quantizer case", dtype_name(type));
}

}  // namespace luzao
