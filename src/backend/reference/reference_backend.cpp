// Scalar reference implementation of the op set: dequantize to F32, accumulate in double,
// round once. Written to be read and trusted, not to be fast.
#include "backend/reference/reference_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/host_device.h"
#include "backend/host_ops.h"
#include "core/half.h"

namespace luzao {
namespace {

// One row (or part of one) of a view as F32: dequantizes `n` elements starting at element
// `first`, which must be a multiple of the block size.
void load_f32(const HostView& v, int64_t row, int64_t first, int64_t n, float* dst) {
  const DTypeInfo& info = dtype_info(v.dtype);
  const size_t skip = static_cast<size_t>(first / info.block_size) * info.block_bytes;
  dequantize_row(v.dtype, v.row(row) + skip, dst, n);
}

class ReferenceStream final : public Stream {
 public:
  void get_rows(const TensorView& table, std::span<const int32_t> ids,
                const TensorView& out) override {
    const GetRowsArgs a = check_get_rows(table, ids, out);
    for (size_t i = 0; i < ids.size(); ++i) {
      load_f32(a.table, ids[i], 0, a.table.cols, a.out.f32(static_cast<int64_t>(i)));
    }
  }

  void rms_norm(const TensorView& x, const TensorView& weight, float eps,
                const TensorView& out) override {
    const RmsNormArgs a = check_rms_norm(x, weight, eps, out);
    const float* w = a.weight.f32(0);
    for (int64_t r = 0; r < a.x.rows; ++r) {
      const float* xr = a.x.f32(r);
      double sum = 0.0;
      for (int64_t j = 0; j < a.x.cols; ++j) sum += static_cast<double>(xr[j]) * xr[j];
      const double mean = a.x.cols > 0 ? sum / static_cast<double>(a.x.cols) : 0.0;
      const double inv = 1.0 / std::sqrt(mean + static_cast<double>(eps));
      float* o = a.out.f32(r);
      for (int64_t j = 0; j < a.x.cols; ++j) o[j] = static_cast<float>(xr[j] * inv * w[j]);
    }
  }

  void matmul(const TensorView& x, const TensorView& w, const TensorView& out) override {
    const MatMulArgs a = check_matmul(x, w, out);
    std::vector<float> wrow(static_cast<size_t>(a.w.cols));
    for (int64_t i = 0; i < a.w.rows; ++i) {
      load_f32(a.w, i, 0, a.w.cols, wrow.data());
      for (int64_t t = 0; t < a.x.rows; ++t) {
        const float* xr = a.x.f32(t);
        double sum = 0.0;
        for (int64_t j = 0; j < a.x.cols; ++j) sum += static_cast<double>(xr[j]) * wrow[j];
        a.out.f32(t)[i] = static_cast<float>(sum);
      }
    }
  }

  void rope(const TensorView& x, std::span<const int32_t> positions, const RopeParams& p) override {
    const HostView v = check_rope(x, positions, p);
    const int half = p.rot_dim / 2;
    for (int64_t t = 0; t < v.rows; ++t) {
      const double pos = positions[static_cast<size_t>(t)];
      for (int h = 0; h < p.n_heads; ++h) {
        float* head = v.f32(t) + static_cast<int64_t>(h) * p.head_dim;
        for (int i = 0; i < half; ++i) {
          const double theta =
              pos * std::pow(static_cast<double>(p.freq_base), -2.0 * i / p.rot_dim);
          const double c = std::cos(theta);
          const double s = std::sin(theta);
          float* a0 = p.neox ? &head[i] : &head[2 * i];
          float* a1 = p.neox ? &head[i + half] : &head[2 * i + 1];
          const double x0 = *a0;
          const double x1 = *a1;
          *a0 = static_cast<float>(x0 * c - x1 * s);
          *a1 = static_cast<float>(x0 * s + x1 * c);
        }
      }
    }
  }

  void attention(const TensorView& q, const TensorView& k_pool, const TensorView& v_pool,
                 const AttentionParams& p, const TensorView& out) override {
    const AttentionArgs a = check_attention(q, k_pool, v_pool, p, out);
    const int hd = p.head_dim;
    const int group = p.n_heads / p.n_kv_heads;
    std::vector<float> kv(static_cast<size_t>(hd));
    std::vector<double> scores;
    std::vector<double> acc(static_cast<size_t>(hd));
    for (int64_t r = 0; r < a.q.rows; ++r) {
      const int32_t seq = p.token_seq[static_cast<size_t>(r)];
      const int32_t pos = p.token_pos[static_cast<size_t>(r)];
      scores.assign(static_cast<size_t>(pos) + 1, 0.0);
      for (int h = 0; h < p.n_heads; ++h) {
        const int kvh = h / group;
        const float* qh = a.q.f32(r) + static_cast<int64_t>(h) * hd;
        const auto pool_row = [&](int32_t t) {
          const int32_t page = p.block_table[static_cast<size_t>(seq) * p.max_blocks +
                                             static_cast<size_t>(t / p.page_size)];
          return static_cast<int64_t>(page) * p.page_size + t % p.page_size;
        };
        double max_score = -INFINITY;
        for (int32_t t = 0; t <= pos; ++t) {
          load_f32(a.k, pool_row(t), static_cast<int64_t>(kvh) * hd, hd, kv.data());
          double dot = 0.0;
          for (int j = 0; j < hd; ++j) dot += static_cast<double>(qh[j]) * kv[j];
          scores[t] = dot * p.scale;
          max_score = std::max(max_score, scores[t]);
        }
        double denom = 0.0;
        for (double& s : scores) {
          s = std::exp(s - max_score);
          denom += s;
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int32_t t = 0; t <= pos; ++t) {
          load_f32(a.v, pool_row(t), static_cast<int64_t>(kvh) * hd, hd, kv.data());
          for (int j = 0; j < hd; ++j) acc[j] += scores[t] * kv[j];
        }
        float* o = a.out.f32(r) + static_cast<int64_t>(h) * hd;
        for (int j = 0; j < hd; ++j) o[j] = static_cast<float>(acc[j] / denom);
      }
    }
  }

  void swiglu(const TensorView& gate, const TensorView& up, const TensorView& out) override {
    const TernaryArgs a = check_swiglu(gate, up, out);
    for (int64_t r = 0; r < a.a.rows; ++r) {
      const float* g = a.a.f32(r);
      const float* u = a.b.f32(r);
      float* o = a.out.f32(r);
      for (int64_t j = 0; j < a.a.cols; ++j) {
        const double gj = g[j];
        o[j] = static_cast<float>(gj / (1.0 + std::exp(-gj)) * u[j]);
      }
    }
  }

  void add(const TensorView& a, const TensorView& b, const TensorView& out) override {
    binary(check_binary("add", a, b, out), [](float x, float y) { return x + y; });
  }

  void mul(const TensorView& a, const TensorView& b, const TensorView& out) override {
    binary(check_binary("mul", a, b, out), [](float x, float y) { return x * y; });
  }

  void scale(const TensorView& x, float s, const TensorView& out) override {
    const UnaryArgs a = check_scale(x, out);
    for (int64_t r = 0; r < a.x.rows; ++r) {
      for (int64_t j = 0; j < a.x.cols; ++j) a.out.f32(r)[j] = a.x.f32(r)[j] * s;
    }
  }

  void softmax(const TensorView& x) override {
    const HostView v = check_softmax(x);
    for (int64_t r = 0; r < v.rows; ++r) {
      float* row = v.f32(r);
      if (v.cols == 0) continue;
      const double max_x = *std::max_element(row, row + v.cols);
      double denom = 0.0;
      for (int64_t j = 0; j < v.cols; ++j) denom += std::exp(row[j] - max_x);
      for (int64_t j = 0; j < v.cols; ++j) {
        row[j] = static_cast<float>(std::exp(row[j] - max_x) / denom);
      }
    }
  }

  void set_rows(const TensorView& src, std::span<const int32_t> row_ids,
                const TensorView& dst) override {
    const SetRowsArgs a = check_set_rows(src, row_ids, dst);
    for (int64_t i = 0; i < a.src.rows; ++i) {
      const float* s = a.src.f32(i);
      std::byte* d = a.dst.row(row_ids[static_cast<size_t>(i)]);
      const int64_t n = a.src.cols;
      switch (a.dst.dtype) {
        case DType::kF32:
          std::memmove(d, s, static_cast<size_t>(n) * sizeof(float));
          break;
        case DType::kF16:
          for (int64_t j = 0; j < n; ++j) {
            const uint16_t h = fp32_to_fp16(s[j]);
            std::memcpy(d + 2 * j, &h, 2);
          }
          break;
        case DType::kBF16:
          for (int64_t j = 0; j < n; ++j) {
            const uint16_t h = fp32_to_bf16(s[j]);
            std::memcpy(d + 2 * j, &h, 2);
          }
          break;
        default:
          quantize_row(a.dst.dtype, s, d, n);
          break;
      }
    }
  }

  void synchronize() override {}

 private:
  template <typename Op>
  static void binary(const TernaryArgs& a, Op op) {
    for (int64_t r = 0; r < a.a.rows; ++r) {
      const float* x = a.a.f32(r);
      const float* y = a.b.f32(a.b.rows == 1 ? 0 : r);
      float* o = a.out.f32(r);
      for (int64_t j = 0; j < a.a.cols; ++j) o[j] = op(x[j], y[j]);
    }
  }
};

class ReferenceDevice final : public HostDevice {
 public:
  ReferenceDevice() {
    info_.name = "reference";
    info_.backend = "reference";
    info_.vendor = "luzao";
    info_.description = "scalar reference implementation (the specification; slow)";
    info_.memory_bytes = host_memory_bytes();
  }
  const DeviceInfo& info() const override { return info_; }
  bool supports(OpKind op, DType dtype) const override { return host_supports(op, dtype); }
  std::unique_ptr<Stream> create_stream() override { return std::make_unique<ReferenceStream>(); }

 private:
  DeviceInfo info_;
};

}  // namespace

std::unique_ptr<Device> make_reference_device() {
  return std::make_unique<ReferenceDevice>();
}

}  // namespace luzao
