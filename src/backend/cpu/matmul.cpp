// cpu matmul: activations are converted once to the weight's activation format, then tiles of
// (weight rows x tokens) are spread over the pool; weights stay in their stored format.
#include <algorithm>

#include "backend/cpu/cpu_ops.h"

namespace luzao::cpu {
namespace {

constexpr int64_t kRowTile = 16;    // weight rows per tile: a few KB that stay in L1
constexpr int64_t kTokenTile = 32;  // activation rows per tile when prefilling

size_t align64(size_t v) {
  return (v + 63) / 64 * 64;
}

}  // namespace

void matmul(CpuContext& ctx, const MatMulArgs& a) {
  const int64_t n = a.x.rows;
  const int64_t m = a.w.rows;
  const int64_t k = a.x.cols;
  if (n == 0 || m == 0) return;
  const MatMulKernel& kern = ctx.kernels[kernel_slot(a.w.dtype)];

  if (kern.dot == nullptr) {
    // No direct kernel: dequantize each weight row once and dot it with every token in F32.
    const VecDotFn dot_f32 = ctx.kernels[kernel_slot(DType::kF32)].dot;
    ctx.pool.parallel_for(m, [&](int64_t begin, int64_t end, int thread) {
      float* wrow = ctx.per_thread[static_cast<size_t>(thread)].get_as<float>(
          static_cast<size_t>(std::max<int64_t>(k, 1)));
      for (int64_t i = begin; i < end; ++i) {
        dequantize_row(a.w.dtype, a.w.row(i), wrow, k);
        for (int64_t t = 0; t < n; ++t) a.out.f32(t)[i] = dot_f32(k, wrow, a.x.f32(t));
      }
    });
    return;
  }

  const std::byte* act = a.x.data;
  size_t act_stride = a.x.stride;
  if (kern.act.convert != nullptr) {
    act_stride = align64(kern.act.row_bytes(k));
    auto* buf = static_cast<std::byte*>(ctx.shared.get(static_cast<size_t>(n) * act_stride));
    const auto convert = [&](int64_t begin, int64_t end, int) {
      for (int64_t t = begin; t < end; ++t) {
        kern.act.convert(a.x.f32(t), buf + static_cast<size_t>(t) * act_stride, k);
      }
    };
    if (n == 1) {
      convert(0, 1, 0);
    } else {
      ctx.pool.parallel_for(n, convert);
    }
    act = buf;
  }

  const VecDotFn dot = kern.dot;
  if (n == 1) {
    ctx.pool.parallel_for(m, [&](int64_t begin, int64_t end, int) {
      float* o = a.out.f32(0);
      for (int64_t i = begin; i < end; ++i) o[i] = dot(k, a.w.row(i), act);
    });
    return;
  }
  const int64_t row_tiles = (m + kRowTile - 1) / kRowTile;
  const int64_t token_tiles = (n + kTokenTile - 1) / kTokenTile;
  ctx.pool.parallel_for_dynamic(row_tiles * token_tiles, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t r0 = (tile % row_tiles) * kRowTile;
      const int64_t r1 = std::min(m, r0 + kRowTile);
      const int64_t t0 = (tile / row_tiles) * kTokenTile;
      const int64_t t1 = std::min(n, t0 + kTokenTile);
      for (int64_t t = t0; t < t1; ++t) {
        const std::byte* at = act + static_cast<size_t>(t) * act_stride;
        float* o = a.out.f32(t);
        for (int64_t i = r0; i < r1; ++i) o[i] = dot(k, a.w.row(i), at);
      }
    }
  });
}

}  // namespace luzao::cpu
