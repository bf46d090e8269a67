// matmul on any GGUF weight type: activations rounded through llama.cpp's format for the weight
// type (as the cpu and OpenCL backends; Q4_1/Q5_1 weights meet the block sums of Q8_1), then one
// warp per (weight row, tile of 4 tokens): lanes take 32-element chunks of the row, dequantize
// each once and use it for every token of the tile.
#include "backend/cuda/cuda_common.cuh"

namespace luzao::cuda {
namespace {

constexpr int kTokenTile = 4;

__global__ void round_activations_kernel(int fmt, View x, float* y, float* sums, int k) {
  const int r = blockIdx.y;
  const int blk = fmt == kActQ8_K ? 256 : 32;
  const int first = (blockIdx.x * blockDim.x + threadIdx.x) * blk;
  if (first >= k) return;
  const int n = min(blk, k - first);
  const float* src = row_f32(x, r) + first;
  float* dst = y + static_cast<int64_t>(r) * k + first;
  if (fmt == kActF16 || fmt == kActBf16) {
    for (int j = 0; j < n; ++j) {
      dst[j] = fmt == kActF16 ? round_f16(src[j]) : bf16_to_f32(f32_to_bf16(src[j]));
    }
  } else if (fmt == kActQ8_0 || fmt == kActQ8_1) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) {
      const float v = fabsf(src[j]);
      amax = amax > v ? amax : v;
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const float d16 = round_f16(d);
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      const float v = src[j] * id;
      const int q = max(-128, min(127, trunc_to_int(roundf(v))));
      dst[j] = static_cast<float>(q) * d16;
      sum += q;
    }
    if (fmt == kActQ8_1) {
      sums[static_cast<int64_t>(r) * (k / 32) + first / 32] =
          round_f16(static_cast<float>(sum) * d);
    }
  } else {
    float amax = 0.0f, mx = 0.0f;
    for (int j = 0; j < 256; ++j) {
      const float ax = fabsf(src[j]);
      if (ax > amax) {
        amax = ax;
        mx = src[j];
      }
    }
    if (amax == 0.0f) {
      for (int j = 0; j < 256; ++j) dst[j] = 0.0f;
      return;
    }
    const float iscale = -127.0f / mx;
    const float d = 1.0f / iscale;
    for (int j = 0; j < 256; ++j) {
      const float v = iscale * src[j];
      dst[j] = d * static_cast<float>(max(-128, min(127, trunc_to_int(rintf(v)))));
    }
  }
}

__global__ void matmul_kernel(int wtype, View w, View x, const float* sums, View out, int n, int m,
                              int k) {
  const int i = blockIdx.x;
  const int t0 = blockIdx.y * kTokenTile;
  const int lane = threadIdx.x;
  if (i >= m || t0 >= n) return;
  const int nt = min(kTokenTile, n - t0);
  const uint8_t* wrow = row_bytes(w, i);
  float acc[kTokenTile] = {};
  float wv[32];
  const int n_chunks = (k + 31) / 32;
  for (int c = lane; c < n_chunks; c += 32) {
    const int len = min(32, k - 32 * c);
    float wmin = 0.0f;
    if (is_plain(wtype)) {
      for (int j = 0; j < len; ++j) wv[j] = load_plain(wtype, wrow, 32 * c + j);
    } else if (sums != nullptr) {
      wmin = dequant_chunk_scaled(wtype, wrow, c, wv);
    } else {
      dequant_chunk(wtype, wrow, c, wv);
    }
    for (int t = 0; t < kTokenTile; ++t) {
      if (t >= nt) break;
      const float* xr = row_f32(x, t0 + t) + 32 * c;
      float part = 0.0f;
      for (int j = 0; j < len; ++j) part += wv[j] * xr[j];
      if (sums != nullptr) part += wmin * sums[static_cast<int64_t>(t0 + t) * (k / 32) + c];
      acc[t] += part;
    }
  }
  for (int t = 0; t < nt; ++t) {
    const float v = warp_sum(acc[t]);
    if (lane == 0) row_f32(out, t0 + t)[i] = v;
  }
}

}  // namespace

cudaError_t launch_round_activations(int fmt, View x, float* y, float* sums, int n, int k,
                                     cudaStream_t s) {
  const int blk = fmt == kActQ8_K ? 256 : 32;
  const int chunks = (k + blk - 1) / blk;
  if (n == 0 || chunks == 0) return cudaSuccess;
  round_activations_kernel<<<dim3(blocks_for(chunks, 64), n), 64, 0, s>>>(fmt, x, y, sums, k);
  return cudaGetLastError();
}

cudaError_t launch_matmul(int wtype, View w, View x, const float* sums, View out, int n, int m,
                          int k, cudaStream_t s) {
  if (n == 0 || m == 0) return cudaSuccess;
  matmul_kernel<<<dim3(m, blocks_for(n, kTokenTile)), 32, 0, s>>>(wtype, w, x, sums, out, n, m, k);
  return cudaGetLastError();
}

}  // namespace luzao::cuda
