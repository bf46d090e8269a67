// Names of the ops of the versioned op set.
#include "backend/backend.h"

namespace luzao {

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
