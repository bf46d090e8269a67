// Argument validation of every op for backends whose tensors live in host memory, turning
// TensorViews into raw row pointers. Both the reference and the cpu backend call these, so they
// accept and reject exactly the same calls; each failure throws Error(kInvalidArgument) naming
// the op and the argument at fault.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "backend/backend.h"

namespace luzao {

// A validated view: rows lie inside the buffer, `stride` keeps rows aligned for the dtype.
struct HostView {
  std::byte* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t stride = 0;

  std::byte* row(int64_t i) const { return data + static_cast<size_t>(i) * stride; }
  float* f32(int64_t i) const { return reinterpret_cast<float*>(row(i)); }
};

// Validates one view: host memory, in bounds, cols a multiple of the block size, aligned.
HostView host_view(const TensorView& v, std::string_view op, std::string_view field);

// Element types a host backend can dequantize (get_rows, matmul weights) or write (set_rows).
bool host_can_dequantize(DType type) noexcept;
bool host_can_store(DType type) noexcept;
// The dtypes each op accepts on a host backend (Device::supports of reference and cpu).
bool host_supports(OpKind op, DType type) noexcept;

struct GetRowsArgs {
  HostView table, out;
};
struct RmsNormArgs {
  HostView x, weight, out;
};
struct MatMulArgs {
  HostView x, w, out;
};
struct AttentionArgs {
  HostView q, k, v, out;
  int64_t pool_pages = 0;
};
struct TernaryArgs {
  HostView a, b, out;  // swiglu: a = gate, b = up
};
struct UnaryArgs {
  HostView x, out;
};
struct SetRowsArgs {
  HostView src, dst;
};

GetRowsArgs check_get_rows(const TensorView& table, std::span<const int32_t> ids,
                           const TensorView& out);
RmsNormArgs check_rms_norm(const TensorView& x, const TensorView& weight, float eps,
                           const TensorView& out);
// out must not overlap x or w.
MatMulArgs check_matmul(const TensorView& x, const TensorView& w, const TensorView& out);
HostView check_rope(const TensorView& x, std::span<const int32_t> positions, const RopeParams& p);
// Also checks every page a query row can reach: its sequence, position and block-table entries.
AttentionArgs check_attention(const TensorView& q, const TensorView& k_pool,
                              const TensorView& v_pool, const AttentionParams& p,
                              const TensorView& out);
TernaryArgs check_swiglu(const TensorView& gate, const TensorView& up, const TensorView& out);
// add/mul: b has a.rows rows or one row (broadcast). out may alias a.
TernaryArgs check_binary(std::string_view op, const TensorView& a, const TensorView& b,
                         const TensorView& out);
UnaryArgs check_scale(const TensorView& x, const TensorView& out);
HostView check_softmax(const TensorView& x);
SetRowsArgs check_set_rows(const TensorView& src, std::span<const int32_t> row_ids,
                           const TensorView& dst);

}  // namespace luzao
