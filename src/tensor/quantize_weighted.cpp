// Importance-weighted quantizers for the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1) and the
// row-level entry point quantize_rows that picks the weighted or the reference path per format.
// The weighted paths match llama.cpp's quantize_q*_* with an imatrix bit for bit.
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "tensor/quantize_k_search.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

// sigma^2 of the whole row: the importance of each element is qw * sqrt(sigma^2 + x^2).
float row_sigma2(const float* x, int64_t n) {
  float sum_x2 = 0.0f;
  for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
  return sum_x2 / static_cast<float>(n);
}

void element_weights(const float* x, const float* qw, float sigma2, float* weights) {
  for (int j = 0; j < 32; ++j) weights[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
}

template <typename Block>
void pack_nibbles(const uint8_t* levels, Block* y) {
  for (int j = 0; j < 16; ++j)
    y->qs[j] = static_cast<uint8_t>((levels[j] & 0xF) | ((levels[j + 16] & 0xF) << 4));
}

void store_fifth_bits(const uint8_t* levels, uint8_t qh[4]) {
  uint32_t bits = 0;
  for (int j = 0; j < 32; ++j) bits |= static_cast<uint32_t>((levels[j] >> 4) & 1) << j;
  for (int i = 0; i < 4; ++i) qh[i] = static_cast<uint8_t>(bits >> (8 * i));
}

// Symmetric formats: levels l + nmax (nmax 8 for Q4_0, 16 for Q5_0) from the weighted search.
template <typename Block>
void quantize_symmetric(const float* x, Block* y, int64_t n, const float* importance, int nmax) {
  LUZAO_CHECK(n % 32 == 0 && importance != nullptr);
  const float sigma2 = row_sigma2(x, n);
  float weights[32];
  int8_t signed_levels[32];
  uint8_t levels[32];
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    element_weights(xb, importance + 32 * b, sigma2, weights);
    const float d = quant_detail::search_symmetric(32, nmax, xb, signed_levels, 1, weights);
    y[b].d = fp32_to_fp16(d);
    for (int j = 0; j < 32; ++j) levels[j] = static_cast<uint8_t>(signed_levels[j]);
    pack_nibbles(levels, &y[b]);
    if constexpr (requires { y[b].qh; }) store_fifth_bits(levels, y[b].qh);
  }
}

// Formats with a minimum: levels in [0, nmax] and m = -neg_min from the weighted affine search.
template <typename Block>
void quantize_affine(const float* x, Block* y, int64_t n, const float* importance, int nmax) {
  LUZAO_CHECK(n % 32 == 0 && importance != nullptr);
  const float sigma2 = row_sigma2(x, n);
  float weights[32];
  uint8_t levels[32];
  uint8_t scratch[32];
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    element_weights(xb, importance + 32 * b, sigma2, weights);
    float neg_min = 0.0f;
    const float d = quant_detail::search_affine_weighted(32, nmax, xb, weights, levels, &neg_min,
                                                         scratch, -0.9f, 0.05f, 36, false);
    y[b].d = fp32_to_fp16(d);
    y[b].m = fp32_to_fp16(-neg_min);
    pack_nibbles(levels, &y[b]);
    if constexpr (requires { y[b].qh; }) store_fifth_bits(levels, y[b].qh);
  }
}

}  // namespace

void quantize_row_q4_0_weighted(const float* x, BlockQ4_0* y, int64_t n, const float* importance) {
  quantize_symmetric(x, y, n, importance, 8);
}

void quantize_row_q5_0_weighted(const float* x, BlockQ5_0* y, int64_t n, const float* importance) {
  quantize_symmetric(x, y, n, importance, 16);
}

void quantize_row_q4_1_weighted(const float* x, BlockQ4_1* y, int64_t n, const float* importance) {
  quantize_affine(x, y, n, importance, 15);
}

void quantize_row_q5_1_weighted(const float* x, BlockQ5_1* y, int64_t n, const float* importance) {
  quantize_affine(x, y, n, importance, 31);
}

bool uses_importance(DType type) noexcept {
  switch (type) {
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

void quantize_rows(DType type, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                   std::span<const float> importance) {
  const std::optional<uint64_t> row_size = row_bytes(type, static_cast<uint64_t>(n_per_row));
  if (!row_size || nrows < 0) {
    fail(ErrorKind::kInvalidArgument, "quantize_rows: rows of {} elements cannot be stored as {}",
         n_per_row, dtype_name(type));
  }
  if (!importance.empty() && static_cast<int64_t>(importance.size()) != n_per_row) {
    fail(ErrorKind::kInvalidArgument, "quantize_rows: {} importance values for rows of {} elements",
         importance.size(), n_per_row);
  }
  auto* out = static_cast<std::byte*>(dst);
  const float* qw = importance.data();
  for (int64_t r = 0; r < nrows; ++r, src += n_per_row, out += *row_size) {
    if (importance.empty() || !uses_importance(type)) {
      quantize_row(type, src, out, n_per_row);
      continue;
    }
    switch (type) {
      case DType::kQ4_0:
        quantize_row_q4_0_weighted(src, reinterpret_cast<BlockQ4_0*>(out), n_per_row, qw);
        break;
      case DType::kQ4_1:
        quantize_row_q4_1_weighted(src, reinterpret_cast<BlockQ4_1*>(out), n_per_row, qw);
        break;
      case DType::kQ5_0:
        quantize_row_q5_0_weighted(src, reinterpret_cast<BlockQ5_0*>(out), n_per_row, qw);
        break;
      case DType::kQ5_1:
        quantize_row_q5_1_weighted(src, reinterpret_cast<BlockQ5_1*>(out), n_per_row, qw);
        break;
      case DType::kQ2_K:
        quantize_row_q2_K_weighted(src, reinterpret_cast<BlockQ2_K*>(out), n_per_row, qw);
        break;
      case DType::kQ3_K:
        quantize_row_q3_K_weighted(src, reinterpret_cast<BlockQ3_K*>(out), n_per_row, qw);
        break;
      case DType::kQ4_K:
        quantize_row_q4_K_weighted(src, reinterpret_cast<BlockQ4_K*>(out), n_per_row, qw);
        break;
      case DType::kQ5_K:
        quantize_row_q5_K_weighted(src, reinterpret_cast<BlockQ5_K*>(out), n_per_row, qw);
        break;
      case DType::kQ6_K:
        quantize_row_q6_K_weighted(src, reinterpret_cast<BlockQ6_K*>(out), n_per_row, qw);
        break;
      default:
        fail(ErrorKind::kInternal, "quantize_rows: no weighted quantizer for {}", dtype_name(type));
    }
  }
}

}  // namespace luzao
