// Causal attention over the paged KV cache, one warp per (query row, head): each lane holds
// head_dim / 32 query and accumulator values; three passes over the keys (max, denominator,
// weighted values) need no scratch. F16 caches round the query (K) and the probabilities (V) to
// F16 first, as llama.cpp's non-flash path and the cpu backend do.
#include "backend/cuda/cuda_common.cuh"

namespace luzao::cuda {
namespace {

constexpr int kPerLane = kMaxHeadDim / 32;

__device__ float load_kv(const uint8_t* p, int f16, int j) {
  return f16 ? f16_to_f32(reinterpret_cast<const uint16_t*>(p)[j])
             : reinterpret_cast<const float*>(p)[j];
}

__global__ void attention_kernel(View q, View kp, int k_f16, View vp, int v_f16, View out,
                                 const int32_t* token_seq, const int32_t* token_pos,
                                 const int32_t* block_table, AttentionDims d) {
  const int h = blockIdx.x;
  const int r = blockIdx.y;
  const int lane = threadIdx.x;
  const int hd = d.head_dim;
  const int kvh = h / (d.n_heads / d.n_kv_heads);
  const int pos = token_pos[r];
  const int32_t* pages = block_table + static_cast<int64_t>(token_seq[r]) * d.max_blocks;
  const float* qsrc = row_f32(q, r) + h * hd;
  float qv[kPerLane], acc[kPerLane];
  for (int i = 0; i < kPerLane; ++i) {
    const int j = lane + 32 * i;
    qv[i] = j < hd ? (k_f16 ? round_f16(qsrc[j]) : qsrc[j]) : 0.0f;
    acc[i] = 0.0f;
  }
  const uint64_t k_col = static_cast<uint64_t>(kvh) * hd * (k_f16 ? 2 : 4);
  const uint64_t v_col = static_cast<uint64_t>(kvh) * hd * (v_f16 ? 2 : 4);
  const auto pool_row = [&](int t) {
    return static_cast<int64_t>(pages[t / d.page_size]) * d.page_size + t % d.page_size;
  };
  const auto score = [&](int t) {
    const uint8_t* k = row_bytes(kp, pool_row(t)) + k_col;
    float part = 0.0f;
    for (int i = 0; i < kPerLane; ++i) {
      const int j = lane + 32 * i;
      if (j < hd) part += qv[i] * load_kv(k, k_f16, j);
    }
    return warp_sum(part) * d.scale;
  };
  float mx = -INFINITY;
  for (int t = 0; t <= pos; ++t) mx = fmaxf(mx, score(t));
  double denom = 0.0;
  for (int t = 0; t <= pos; ++t) denom += expf(score(t) - mx);
  const float inv = static_cast<float>(1.0 / denom);
  for (int t = 0; t <= pos; ++t) {
    float p = expf(score(t) - mx) * inv;
    if (v_f16) p = round_f16(p);
    const uint8_t* v = row_bytes(vp, pool_row(t)) + v_col;
    for (int i = 0; i < kPerLane; ++i) {
      const int j = lane + 32 * i;
      if (j < hd) acc[i] += p * load_kv(v, v_f16, j);
    }
  }
  float* o = row_f32(out, r) + h * hd;
  for (int i = 0; i < kPerLane; ++i) {
    const int j = lane + 32 * i;
    if (j < hd) o[j] = acc[i];
  }
}

}  // namespace

cudaError_t launch_attention(View q, View k_pool, int k_f16, View v_pool, int v_f16, View out,
                             const int32_t* token_seq, const int32_t* token_pos,
                             const int32_t* block_table, int rows, const AttentionDims& d,
                             cudaStream_t s) {
  if (rows == 0 || d.head_dim > kMaxHeadDim) return rows == 0 ? cudaSuccess : cudaErrorInvalidValue;
  attention_kernel<<<dim3(d.n_heads, rows), 32, 0, s>>>(q, k_pool, k_f16, v_pool, v_f16, out,
                                                        token_seq, token_pos, block_table, d);
  return cudaGetLastError();
}

}  // namespace luzao::cuda
