// Causal attention over the paged KV cache with grouped-query heads: one work-item per (query
// row, head), three passes over the keys (max, denominator, weighted values) so that no scratch
// memory is needed. With an F16 K cache the query is rounded to F16 first, with an F16 V cache
// the normalised probabilities are: llama.cpp's non-flash path does both, and so does the cpu
// backend.

#define MAX_HEAD_DIM 256

float key_dot(const float* q, __global const uchar* k, int k_f16, int hd) {
  float s = 0.0f;
  if (k_f16) {
    __global const ushort* kh = (__global const ushort*)k;
    for (int j = 0; j < hd; ++j) s += q[j] * f16_to_f32(kh[j]);
  } else {
    __global const float* kf = (__global const float*)k;
    for (int j = 0; j < hd; ++j) s += q[j] * kf[j];
  }
  return s;
}

__kernel void attention(__global const uchar* q, ulong q_off, ulong q_stride,
                        __global const uchar* kp, ulong k_off, ulong k_stride, int k_f16,
                        __global const uchar* vp, ulong v_off, ulong v_stride, int v_f16,
                        __global uchar* out, ulong o_off, ulong o_stride,
                        __global const int* token_seq, __global const int* token_pos,
                        __global const int* block_table, int n_heads, int n_kv_heads,
                        int head_dim, int page_size, int max_blocks, float scale) {
  const int r = get_global_id(0);
  const int h = get_global_id(1);
  const int hd = head_dim;
  const int kvh = h / (n_heads / n_kv_heads);
  const int pos = token_pos[r];
  __global const int* pages = block_table + (long)token_seq[r] * max_blocks;
  float qh[MAX_HEAD_DIM], acc[MAX_HEAD_DIM];
  __global const float* qsrc = ROW_F32(q, q_off, q_stride, r) + h * hd;
  for (int j = 0; j < hd; ++j) {
    qh[j] = k_f16 ? round_f16(qsrc[j]) : qsrc[j];
    acc[j] = 0.0f;
  }
  const ulong k_col = (ulong)kvh * hd * (k_f16 ? 2 : 4);
  const ulong v_col = (ulong)kvh * hd * (v_f16 ? 2 : 4);
#define POOL_ROW(t) ((long)pages[(t) / page_size] * page_size + (t) % page_size)
  float max_score = -INFINITY;
  for (int t = 0; t <= pos; ++t) {
    const float s = key_dot(qh, ROW(kp, k_off, k_stride, POOL_ROW(t)) + k_col, k_f16, hd) * scale;
    max_score = fmax(max_score, s);
  }
  wide_t denom = 0;
  for (int t = 0; t <= pos; ++t) {
    const float s = key_dot(qh, ROW(kp, k_off, k_stride, POOL_ROW(t)) + k_col, k_f16, hd) * scale;
    denom += exp(s - max_score);
  }
  const float inv = (float)((wide_t)1 / denom);
  for (int t = 0; t <= pos; ++t) {
    const float s = key_dot(qh, ROW(kp, k_off, k_stride, POOL_ROW(t)) + k_col, k_f16, hd) * scale;
    float p = exp(s - max_score) * inv;
    __global const uchar* v = ROW(vp, v_off, v_stride, POOL_ROW(t)) + v_col;
    if (v_f16) {
      p = round_f16(p);
      for (int j = 0; j < hd; ++j) acc[j] += p * f16_to_f32(((__global const ushort*)v)[j]);
    } else {
      for (int j = 0; j < hd; ++j) acc[j] += p * ((__global const float*)v)[j];
    }
  }
#undef POOL_ROW
  __global float* o = ROW_F32(out, o_off, o_stride, r) + h * hd;
  for (int j = 0; j < hd; ++j) o[j] = acc[j];
}
