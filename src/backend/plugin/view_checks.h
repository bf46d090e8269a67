// Argument validation for devices whose memory the host cannot read (plugins, OpenCL, CUDA): the
// checks of backend/host_ops.h run on stand-in buffers, so these devices accept and reject exactly
// the calls the host backends do, with the same messages.
#pragma once

#include <span>

#include "backend/backend.h"

namespace luzao {

// Each throws Error(kInvalidArgument) naming the op and argument, as its host_ops counterpart.
void validate_get_rows(const TensorView& table, std::span<const int32_t> ids,
                       const TensorView& out);
void validate_rms_norm(const TensorView& x, const TensorView& weight, float eps,
                       const TensorView& out);
void validate_matmul(const TensorView& x, const TensorView& w, const TensorView& out);
void validate_rope(const TensorView& x, std::span<const int32_t> positions, const RopeParams& p);
void validate_attention(const TensorView& q, const TensorView& k_pool, const TensorView& v_pool,
                        const AttentionParams& p, const TensorView& out);
void validate_swiglu(const TensorView& gate, const TensorView& up, const TensorView& out);
void validate_binary(std::string_view op, const TensorView& a, const TensorView& b,
                     const TensorView& out);
void validate_scale(const TensorView& x, const TensorView& out);
void validate_softmax(const TensorView& x);
void validate_set_rows(const TensorView& src, std::span<const int32_t> row_ids,
                       const TensorView& dst);

// Throws Error(kUnsupported) naming the device, op and dtype unless dev.supports(op, dtype).
void require_support(const Device& dev, OpKind op, DType dtype);

}  // namespace luzao
