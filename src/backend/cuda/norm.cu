// rms_norm and softmax (one warp per row, sums of squares and denominators in double as the cpu
// backend) and rope (one thread per row x rotation pair, angles by iterated F32 products).
#include "backend/cuda/cuda_common.cuh"

namespace luzao::cuda {
namespace {

__device__ double warp_sum_d(double v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  return __shfl_sync(0xffffffffu, v, 0);
}

__device__ float warp_max(float v) {
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, off));
  return __shfl_sync(0xffffffffu, v, 0);
}

__global__ void rms_norm_kernel(View x, const float* w, View out, int cols, float eps) {
  const int r = blockIdx.x;
  const float* xr = row_f32(x, r);
  float* o = row_f32(out, r);
  double sum = 0.0;
  for (int j = threadIdx.x; j < cols; j += 32) sum += static_cast<double>(xr[j] * xr[j]);
  sum = warp_sum_d(sum);
  const float mean = cols > 0 ? static_cast<float>(sum / cols) : 0.0f;
  const float inv = 1.0f / sqrtf(mean + eps);
  for (int j = threadIdx.x; j < cols; j += 32) o[j] = (xr[j] * inv) * w[j];
}

__global__ void rope_kernel(View x, const int32_t* positions, int rows, int n_heads, int head_dim,
                            int rot_dim, int neox, float theta_scale) {
  const int r = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int half = rot_dim / 2;
  if (i >= half || r >= rows) return;
  float theta = static_cast<float>(positions[r]);
  for (int s = 0; s < i; ++s) theta *= theta_scale;
  const float c = cosf(theta), sn = sinf(theta);
  float* row = row_f32(x, r);
  for (int h = 0; h < n_heads; ++h) {
    float* head = row + h * head_dim;
    const int a = neox ? i : 2 * i;
    const int b = neox ? i + half : 2 * i + 1;
    const float x0 = head[a], x1 = head[b];
    head[a] = x0 * c - x1 * sn;
    head[b] = x0 * sn + x1 * c;
  }
}

__global__ void softmax_kernel(View x, int cols) {
  float* row = row_f32(x, blockIdx.x);
  if (cols == 0) return;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < cols; j += 32) mx = fmaxf(mx, row[j]);
  mx = warp_max(mx);
  double denom = 0.0;
  for (int j = threadIdx.x; j < cols; j += 32) {
    row[j] = expf(row[j] - mx);
    denom += row[j];
  }
  denom = warp_sum_d(denom);
  const float inv = static_cast<float>(1.0 / denom);
  for (int j = threadIdx.x; j < cols; j += 32) row[j] *= inv;
}

}  // namespace

cudaError_t launch_rms_norm(View x, const float* w, View out, int rows, int cols, float eps,
                            cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  rms_norm_kernel<<<rows, 32, 0, s>>>(x, w, out, cols, eps);
  return cudaGetLastError();
}

cudaError_t launch_rope(View x, const int32_t* positions, int rows, int n_heads, int head_dim,
                        int rot_dim, int neox, float theta_scale, cudaStream_t s) {
  if (rows == 0 || rot_dim < 2) return cudaSuccess;
  rope_kernel<<<dim3(blocks_for(rot_dim / 2, 64), rows), 64, 0, s>>>(
      x, positions, rows, n_heads, head_dim, rot_dim, neox, theta_scale);
  return cudaGetLastError();
}

cudaError_t launch_softmax(View x, int rows, int cols, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  softmax_kernel<<<rows, 32, 0, s>>>(x, cols);
  return cudaGetLastError();
}

}  // namespace luzao::cuda
