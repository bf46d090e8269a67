// cpu attention over the paged KV cache: one work item per (query row, head), scores in F32 with
// a max-subtracted softmax. With an F16 K cache the query is rounded to F16 before the dot, as in
// llama.cpp (F16 is the activation format of F16 weights there). A Q8_0 cache is dequantized one
// head row at a time and used in F32 (query and probabilities unrounded).
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_ops.h"
#include "core/half.h"
#include "tensor/blocks.h"

namespace luzao::cpu {
namespace {

float dot_f32_f32(const float* q, const std::byte* k, int n) {
  const auto* kf = reinterpret_cast<const float*>(k);
  float acc[8] = {};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += q[i + l] * kf[i + l];
  }
  float s = 0.0f;
  for (; i < n; ++i) s += q[i] * kf[i];
  for (float v : acc) s += v;
  return s;
}

// q already holds F16-rounded values widened back to F32.
float dot_f32_f16(const float* q, const std::byte* k, int n) {
  const auto* kh = reinterpret_cast<const uint16_t*>(k);
  float acc[8] = {};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += q[i + l] * fp16_to_f32(kh[i + l]);
  }
  float s = 0.0f;
  for (; i < n; ++i) s += q[i] * fp16_to_f32(kh[i]);
  for (float v : acc) s += v;
  return s;
}

// Bytes from the start of a pool row to kv head `kvh` (Q8_0 heads start on a block: checked).
size_t head_offset(DType type, int kvh, int hd) {
  const int64_t first = static_cast<int64_t>(kvh) * hd;
  if (type == DType::kQ8_0) return static_cast<size_t>(first / 32) * sizeof(BlockQ8_0);
  return static_cast<size_t>(first) * (type == DType::kF32 ? 4 : 2);
}

void axpy(float p, const std::byte* v, DType type, int n, float* acc) {
  if (type == DType::kF32) {
    const auto* vf = reinterpret_cast<const float*>(v);
    for (int j = 0; j < n; ++j) acc[j] += p * vf[j];
  } else {
    const auto* vh = reinterpret_cast<const uint16_t*>(v);
    for (int j = 0; j < n; ++j) acc[j] += p * fp16_to_f32(vh[j]);
  }
}

}  // namespace

void attention(CpuContext& ctx, const AttentionArgs& a, const AttentionParams& p) {
  if (attention_avx512(ctx, a, p)) return;
  const int64_t rows = a.q.rows;
  const int hd = p.head_dim;
  const int group = p.n_heads / p.n_kv_heads;
  const bool q8_k = a.k.dtype == DType::kQ8_0;
  const bool q8_v = a.v.dtype == DType::kQ8_0;
  const int64_t units = rows * p.n_heads;
  const int64_t grain = std::max<int64_t>(1, units / (static_cast<int64_t>(ctx.pool.size()) * 8));

  ctx.pool.parallel_for_dynamic(units, grain, [&](int64_t begin, int64_t end, int thread) {
    Scratch& scratch = ctx.per_thread[static_cast<size_t>(thread)];
    for (int64_t u = begin; u < end; ++u) {
      const int64_t r = u / p.n_heads;
      const int h = static_cast<int>(u % p.n_heads);
      const int kvh = h / group;
      const int32_t seq = p.token_seq[static_cast<size_t>(r)];
      const int32_t pos = p.token_pos[static_cast<size_t>(r)];
      const int32_t* pages = p.block_table.data() + static_cast<size_t>(seq) * p.max_blocks;

      float* buf =
          scratch.get_as<float>(static_cast<size_t>(pos) + 1 + 3 * static_cast<size_t>(hd));
      float* scores = buf;
      float* qh = buf + pos + 1;
      float* acc = qh + hd;
      float* row32 = acc + hd;  // one dequantized Q8_0 head

      const float* q = a.q.f32(r) + static_cast<int64_t>(h) * hd;
      for (int j = 0; j < hd; ++j) {
        qh[j] = a.k.dtype == DType::kF16 ? fp16_to_f32(fp32_to_fp16(q[j])) : q[j];
      }
      const size_t k_off = head_offset(a.k.dtype, kvh, hd);
      const size_t v_off = head_offset(a.v.dtype, kvh, hd);
      const auto pool_row = [&](int32_t t) {
        return static_cast<int64_t>(pages[t / p.page_size]) * p.page_size + t % p.page_size;
      };

      float max_score = -INFINITY;
      for (int32_t t = 0; t <= pos; ++t) {
        const std::byte* kr = a.k.row(pool_row(t)) + k_off;
        if (q8_k) {
          dequantize_row(DType::kQ8_0, kr, row32, hd);
          kr = reinterpret_cast<const std::byte*>(row32);
        }
        const float d =
            a.k.dtype == DType::kF16 ? dot_f32_f16(qh, kr, hd) : dot_f32_f32(qh, kr, hd);
        scores[t] = d * p.scale;
        max_score = std::max(max_score, scores[t]);
      }
      // Normalise first (sum in double), then, with an F16 V cache, round the probabilities to
      // F16 before weighting V: llama.cpp's non-flash path does both, and matching it keeps
      // greedy decoding on the same tokens.
      double denom = 0.0;
      for (int32_t t = 0; t <= pos; ++t) {
        scores[t] = std::exp(scores[t] - max_score);
        denom += scores[t];
      }
      const float inv = static_cast<float>(1.0 / denom);
      const bool f16_v = a.v.dtype == DType::kF16;
      for (int32_t t = 0; t <= pos; ++t) {
        scores[t] *= inv;
        if (f16_v) scores[t] = fp16_to_f32(fp32_to_fp16(scores[t]));
      }
      std::fill(acc, acc + hd, 0.0f);
      for (int32_t t = 0; t <= pos; ++t) {
        const std::byte* vr = a.v.row(pool_row(t)) + v_off;
        if (q8_v) {
          dequantize_row(DType::kQ8_0, vr, row32, hd);
          axpy(scores[t], reinterpret_cast<const std::byte*>(row32), DType::kF32, hd, acc);
        } else {
          axpy(scores[t], vr, a.v.dtype, hd, acc);
        }
      }
      float* o = a.out.f32(r) + static_cast<int64_t>(h) * hd;
      std::copy(acc, acc + hd, o);
    }
  });
}

}  // namespace luzao::cpu
