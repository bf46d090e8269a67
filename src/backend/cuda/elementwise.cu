// add, mul, swiglu and scale: one thread per element; b broadcasts when it has one row.
#include "backend/cuda/cuda_common.cuh"

namespace luzao::cuda {
namespace {

__global__ void elementwise_kernel(int op, View a, View b, int b_rows, View out, int cols,
                                   float scale) {
  const int r = blockIdx.y;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  const float x = row_f32(a, r)[j];
  const float y = op == kOpScale ? 0.0f : row_f32(b, b_rows == 1 ? 0 : r)[j];
  float v;
  switch (op) {
    case kOpAdd:
      v = x + y;
      break;
    case kOpMul:
      v = x * y;
      break;
    case kOpSwiGlu:
      v = x / (1.0f + expf(-x)) * y;
      break;
    default:
      v = x * scale;
      break;
  }
  row_f32(out, r)[j] = v;
}

}  // namespace

cudaError_t launch_elementwise(int op, View a, View b, int b_rows, View out, int rows, int cols,
                               float scale, cudaStream_t s) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  elementwise_kernel<<<dim3(blocks_for(cols, 256), rows), 256, 0, s>>>(op, a, b, b_rows, out, cols,
                                                                       scale);
  return cudaGetLastError();
}

}  // namespace luzao::cuda
