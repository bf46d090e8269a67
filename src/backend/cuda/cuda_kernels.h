// Launchers of the CUDA kernels (one .cu file per op family), callable from host C++ code. Views
// arrive as a pointer to their first row plus a row stride; arguments are already validated.
// Every launcher queues work on `stream` and returns the launch status.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace luzao::cuda {

struct View {
  uint8_t* data;    // first row (buffer + offset)
  uint64_t stride;  // bytes between rows
};

// Activation formats (matmul.cu), as the OpenCL backend. Q8_1 also writes each 32-block's
// fp16-rounded sum s = fp16(d * sum(q)), which Q4_1/Q5_1 weights multiply by their minimum.
enum ActFormat : int {
  kActNone = 0,
  kActF16 = 1,
  kActBf16 = 2,
  kActQ8_0 = 3,
  kActQ8_K = 4,
  kActQ8_1 = 5
};
enum ElementOp : int { kOpAdd = 0, kOpMul = 1, kOpSwiGlu = 2, kOpScale = 3 };

struct AttentionDims {
  int n_heads, n_kv_heads, head_dim, page_size, max_blocks;
  float scale;
};

inline constexpr int kMaxHeadDim = 256;

// matmul.cu: y (dense [n, k]) = x rounded through `fmt` (and sums [n, k / 32] for kActQ8_1);
// out[n, m] = x[n, k] . w[m, k]^T, with `sums` (non-null) for Q8_1 activations.
cudaError_t launch_round_activations(int fmt, View x, float* y, float* sums, int n, int k,
                                     cudaStream_t s);
cudaError_t launch_matmul(int wtype, View w, View x, const float* sums, View out, int n, int m,
                          int k, cudaStream_t s);

// rows.cu
cudaError_t launch_get_rows(int ttype, View table, const int32_t* ids, int n_ids, View out,
                            int cols, cudaStream_t s);
cudaError_t launch_set_rows(int dtype, View src, const int32_t* src_rows, const int32_t* ids, int n,
                            View dst, int cols, cudaStream_t s);

// norm.cu
cudaError_t launch_rms_norm(View x, const float* w, View out, int rows, int cols, float eps,
                            cudaStream_t s);
cudaError_t launch_rope(View x, const int32_t* positions, int rows, int n_heads, int head_dim,
                        int rot_dim, int neox, float theta_scale, cudaStream_t s);
cudaError_t launch_softmax(View x, int rows, int cols, cudaStream_t s);

// elementwise.cu: out = a op b (b broadcast when b_rows == 1; b unused for kOpScale).
cudaError_t launch_elementwise(int op, View a, View b, int b_rows, View out, int rows, int cols,
                               float scale, cudaStream_t s);

// attention.cu
cudaError_t launch_attention(View q, View k_pool, int k_f16, View v_pool, int v_f16, View out,
                             const int32_t* token_seq, const int32_t* token_pos,
                             const int32_t* block_table, int rows, const AttentionDims& d,
                             cudaStream_t s);

}  // namespace luzao::cuda
