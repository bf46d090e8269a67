// cpu row-wise ops: get_rows, rms_norm, rope, swiglu, add, mul, scale, softmax, set_rows.
// Rows are spread over the pool once a call has enough elements to pay for the hand-off.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_ops.h"
#include "core/half.h"

namespace luzao::cpu {
namespace {

// A batched decode step (8 rows of 576) is already worth splitting: done inline, the other
// threads spin through it (at 16,384 these ops took a tenth of an 8-sequence step).
constexpr int64_t kParallelElements = 4096;

template <typename Fn>
void for_rows(CpuContext& ctx, int64_t rows, int64_t cols, Fn&& fn) {
  if (rows <= 1 || rows * cols < kParallelElements) {
    if (rows > 0) fn(int64_t{0}, rows, 0);
  } else {
    ctx.pool.parallel_for(rows, fn);
  }
}

}  // namespace

void get_rows(CpuContext& ctx, const GetRowsArgs& a, std::span<const int32_t> ids) {
  for_rows(ctx, a.out.rows, a.out.cols, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      dequantize_row(a.table.dtype, a.table.row(ids[static_cast<size_t>(i)]), a.out.f32(i),
                     a.table.cols);
    }
  });
}

void rms_norm(CpuContext& ctx, const RmsNormArgs& a, float eps) {
  const float* w = a.weight.f32(0);
  const int64_t n = a.x.cols;
  for_rows(ctx, a.x.rows, n, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      if (ctx.features.avx512) {
        rms_norm_row_avx512(a.x.f32(r), w, a.out.f32(r), n, eps);
        continue;
      }
      const float* x = a.x.f32(r);
      double sum = 0.0;  // llama.cpp sums squares in double too
      for (int64_t j = 0; j < n; ++j) sum += static_cast<double>(x[j] * x[j]);
      const float mean = n > 0 ? static_cast<float>(sum / static_cast<double>(n)) : 0.0f;
      const float inv = 1.0f / std::sqrt(mean + eps);
      float* o = a.out.f32(r);
      for (int64_t j = 0; j < n; ++j) o[j] = (x[j] * inv) * w[j];
    }
  });
}

void rope(CpuContext& ctx, const HostView& x, std::span<const int32_t> positions,
          const RopeParams& p) {
  const int half = p.rot_dim / 2;
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.rot_dim));
  for_rows(ctx, x.rows, x.cols, [&](int64_t begin, int64_t end, int thread) {
    float* cache =
        ctx.per_thread[static_cast<size_t>(thread)].get_as<float>(2 * static_cast<size_t>(half));
    for (int64_t t = begin; t < end; ++t) {
      float theta = static_cast<float>(positions[static_cast<size_t>(t)]);
      for (int i = 0; i < half; ++i) {
        cache[2 * i] = std::cos(theta);
        cache[2 * i + 1] = std::sin(theta);
        theta *= theta_scale;
      }
      for (int h = 0; h < p.n_heads; ++h) {
        float* head = x.f32(t) + static_cast<int64_t>(h) * p.head_dim;
        for (int i = 0; i < half; ++i) {
          float* a0 = p.neox ? &head[i] : &head[2 * i];
          float* a1 = p.neox ? &head[i + half] : &head[2 * i + 1];
          const float x0 = *a0;
          const float x1 = *a1;
          *a0 = x0 * cache[2 * i] - x1 * cache[2 * i + 1];
          *a1 = x0 * cache[2 * i + 1] + x1 * cache[2 * i];
        }
      }
    }
  });
}

void swiglu(CpuContext& ctx, const TernaryArgs& a) {
  for_rows(ctx, a.a.rows, a.a.cols, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const float* g = a.a.f32(r);
      const float* u = a.b.f32(r);
      float* o = a.out.f32(r);
      if (ctx.features.avx512) {
        swiglu_row_avx512(g, u, o, a.a.cols);
        continue;
      }
      for (int64_t j = 0; j < a.a.cols; ++j) o[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
    }
  });
}

template <typename Op>
static void binary(CpuContext& ctx, const TernaryArgs& a, Op op) {
  for_rows(ctx, a.a.rows, a.a.cols, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const float* x = a.a.f32(r);
      const float* y = a.b.f32(a.b.rows == 1 ? 0 : r);
      float* o = a.out.f32(r);
      for (int64_t j = 0; j < a.a.cols; ++j) o[j] = op(x[j], y[j]);
    }
  });
}

void add(CpuContext& ctx, const TernaryArgs& a) {
  binary(ctx, a, [](float x, float y) { return x + y; });
}

void mul(CpuContext& ctx, const TernaryArgs& a) {
  binary(ctx, a, [](float x, float y) { return x * y; });
}

void scale(CpuContext& ctx, const UnaryArgs& a, float s) {
  for_rows(ctx, a.x.rows, a.x.cols, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const float* x = a.x.f32(r);
      float* o = a.out.f32(r);
      for (int64_t j = 0; j < a.x.cols; ++j) o[j] = x[j] * s;
    }
  });
}

void softmax(CpuContext& ctx, const HostView& x) {
  for_rows(ctx, x.rows, x.cols, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = x.f32(r);
      if (x.cols == 0) continue;
      const float max_x = *std::max_element(row, row + x.cols);
      double denom = 0.0;
      for (int64_t j = 0; j < x.cols; ++j) {
        row[j] = std::exp(row[j] - max_x);
        denom += row[j];
      }
      const float inv = static_cast<float>(1.0 / denom);
      for (int64_t j = 0; j < x.cols; ++j) row[j] *= inv;
    }
  });
}

// Serial on purpose: with repeated row ids the last source row wins, as in the reference.
void set_rows(CpuContext& ctx, const SetRowsArgs& a, std::span<const int32_t> row_ids) {
  const int64_t n = a.src.cols;
  {
    for (int64_t i = 0; i < a.src.rows; ++i) {
      const float* s = a.src.f32(i);
      std::byte* d = a.dst.row(row_ids[static_cast<size_t>(i)]);
      switch (a.dst.dtype) {
        case DType::kF32:
          std::memmove(d, s, static_cast<size_t>(n) * sizeof(float));
          break;
        case DType::kF16: {
          auto* h = reinterpret_cast<uint16_t*>(d);
          if (ctx.features.avx512) {
            f32_to_f16_row_avx512(s, h, n);
            break;
          }
          for (int64_t j = 0; j < n; ++j) h[j] = fp32_to_fp16(s[j]);
          break;
        }
        case DType::kBF16: {
          auto* h = reinterpret_cast<uint16_t*>(d);
          for (int64_t j = 0; j < n; ++j) h[j] = fp32_to_bf16(s[j]);
          break;
        }
        default:
          quantize_row(a.dst.dtype, s, d, n);
          break;
      }
    }
  }
}

}  // namespace luzao::cpu
