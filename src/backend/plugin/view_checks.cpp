// Validation on stand-in buffers: each device buffer is replaced by one of the same size whose
// host address is a fixed dummy, then the host_ops checks run. Nothing is read through it.
#include "backend/plugin/view_checks.h"

#include <array>
#include <cstdint>

#include "backend/host_ops.h"
#include "core/error.h"

namespace luzao {
namespace {

class ShadowBuffer final : public Buffer {
 public:
  size_t size() const override { return size_; }
  // Any non-null, 64-byte-aligned address works: the checks only add offsets to it.
  void* host_data() override { return reinterpret_cast<void*>(uintptr_t{1} << 20); }
  void reset(size_t size) { size_ = size; }

 private:
  size_t size_ = 0;
};

// Up to four distinct buffers per call; views of one buffer share one stand-in.
class Shadows {
 public:
  TensorView operator()(const TensorView& v) {
    if (v.buffer == nullptr) return v;
    TensorView out = v;
    for (size_t i = 0; i < used_; ++i) {
      if (originals_[i] == v.buffer) {
        out.buffer = &shadows_[i];
        return out;
      }
    }
    LUZAO_CHECK(used_ < shadows_.size());
    originals_[used_] = v.buffer;
    shadows_[used_].reset(v.buffer->size());
    out.buffer = &shadows_[used_++];
    return out;
  }

 private:
  std::array<const Buffer*, 4> originals_{};
  std::array<ShadowBuffer, 4> shadows_{};
  size_t used_ = 0;
};

}  // namespace

void validate_get_rows(const TensorView& table, std::span<const int32_t> ids,
                       const TensorView& out) {
  Shadows s;
  check_get_rows(s(table), ids, s(out));
}

void validate_rms_norm(const TensorView& x, const TensorView& weight, float eps,
                       const TensorView& out) {
  Shadows s;
  check_rms_norm(s(x), s(weight), eps, s(out));
}

void validate_matmul(const TensorView& x, const TensorView& w, const TensorView& out) {
  Shadows s;
  check_matmul(s(x), s(w), s(out));
}

void validate_rope(const TensorView& x, std::span<const int32_t> positions, const RopeParams& p) {
  Shadows s;
  check_rope(s(x), positions, p);
}

void validate_attention(const TensorView& q, const TensorView& k_pool, const TensorView& v_pool,
                        const AttentionParams& p, const TensorView& out) {
  Shadows s;
  check_attention(s(q), s(k_pool), s(v_pool), p, s(out));
}

void validate_swiglu(const TensorView& gate, const TensorView& up, const TensorView& out) {
  Shadows s;
  check_swiglu(s(gate), s(up), s(out));
}

void validate_binary(std::string_view op, const TensorView& a, const TensorView& b,
                     const TensorView& out) {
  Shadows s;
  check_binary(op, s(a), s(b), s(out));
}

void validate_scale(const TensorView& x, const TensorView& out) {
  Shadows s;
  check_scale(s(x), s(out));
}

void validate_softmax(const TensorView& x) {
  Shadows s;
  check_softmax(s(x));
}

void validate_set_rows(const TensorView& src, std::span<const int32_t> row_ids,
                       const TensorView& dst) {
  Shadows s;
  check_set_rows(s(src), row_ids, s(dst));
}

void require_support(const Device& dev, OpKind op, DType dtype) {
  if (!dev.supports(op, dtype)) {
    fail(ErrorKind::kUnsupported, "{}: {} with {} is not supported by this device", dev.info().name,
         op_name(op), dtype_name(dtype));
  }
}

}  // namespace luzao
