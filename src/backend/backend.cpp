// Names of the ops of the versioned op set, and the Stream ops with a default.
#include "backend/backend.h"

#include "core/error.h"

namespace luzao {

void Stream::matmul_shared_input(const TensorView& x, std::span<const TensorView> w,
                                 std::span<const TensorView> out) {
  if (w.size() != out.size()) {
    fail(ErrorKind::kInvalidArgument, "matmul_shared_input: {} weights but {} outputs", w.size(),
         out.size());
  }
  for (size_t i = 0; i < w.size(); ++i) matmul(x, w[i], out[i]);
}

std::string_view op_name(OpKind op) noexcept {
  switch (op) {
    case OpKind::kGetRows:
      return "get_rows";
    case OpKind::kRmsNorm:
      return "rms_norm";
    case OpKind::kMatMul:
      return "matmul";
    case OpKind::kRope:
      return "rope";
    case OpKind::kAttention:
      return "attention";
    case OpKind::kSwiGlu:
      return "swiglu";
    case OpKind::kAdd:
      return "add";
    case OpKind::kMul:
      return "mul";
    case OpKind::kScale:
      return "scale";
    case OpKind::kSoftmax:
      return "softmax";
    case OpKind::kSetRows:
      return "set_rows";
    case OpKind::kCount:
      break;
  }
  return "unknown";
}

}  // namespace luzao
