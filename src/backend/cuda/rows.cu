// get_rows (dequantize table rows) and set_rows (F32 rows into F32, F16, BF16, or the GGUF
// quantizers of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_K, rounding as src/tensor).
#include "backend/cuda/cuda_common.cuh"

namespace luzao::cuda {
namespace {

__global__ void get_rows_kernel(int ttype, View table, const int32_t* ids, View out, int cols) {
  const int r = blockIdx.y;
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (32 * c >= cols) return;
  const uint8_t* src = row_bytes(table, ids[r]);
  float* dst = row_f32(out, r) + 32 * c;
  if (is_plain(ttype)) {
    const int len = min(32, cols - 32 * c);
    for (int j = 0; j < len; ++j) dst[j] = load_plain(ttype, src, 32 * c + j);
  } else {
    float y[32];
    dequant_chunk(ttype, src, c, y);
    for (int j = 0; j < 32; ++j) dst[j] = y[j];
  }
}

__device__ void store_f16(uint8_t* p, float v) {
  *reinterpret_cast<uint16_t*>(p) = f32_to_f16(v);
}

__device__ void pack32(const float* x, float id, float shift, float offset, int max_q, uint8_t* qs,
                       uint32_t* qh) {
  uint32_t h = 0;
  for (int j = 0; j < 16; ++j) {
    const float a = (x[j] - shift) * id;
    const float b = (x[j + 16] - shift) * id;
    const int q0 = max(0, min(max_q, trunc_to_int(a + offset)));
    const int q1 = max(0, min(max_q, trunc_to_int(b + offset)));
    qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
    h |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
    h |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
  }
  *qh = h;
}

__device__ float signed_absmax(const float* x, int n) {
  float amax = 0.0f, mx = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < fabsf(x[j])) {
      amax = fabsf(x[j]);
      mx = x[j];
    }
  }
  return mx;
}

__device__ void store_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

__global__ void set_rows_kernel(int dtype, View src, const int32_t* src_rows, const int32_t* ids,
                                View dst, int cols) {
  const int r = blockIdx.y;
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int blk = dtype == kQ8_K ? 256 : 32;
  if (c * blk >= cols) return;
  const float* x = row_f32(src, src_rows[r]) + c * blk;
  uint8_t* row = dst.data + static_cast<uint64_t>(ids[r]) * dst.stride;
  if (is_plain(dtype)) {
    const int len = min(32, cols - 32 * c);
    for (int j = 0; j < len; ++j) {
      const int e = 32 * c + j;
      if (dtype == kF32) {
        reinterpret_cast<float*>(row)[e] = x[j];
      } else {
        reinterpret_cast<uint16_t*>(row)[e] = dtype == kF16 ? f32_to_f16(x[j]) : f32_to_bf16(x[j]);
      }
    }
    return;
  }
  uint32_t qh = 0;
  switch (dtype) {
    case kQ4_0:
    case kQ5_0: {
      const bool five = dtype == kQ5_0;
      uint8_t* b = row + static_cast<uint64_t>(c) * (five ? 22 : 18);
      const float d = signed_absmax(x, 32) / (five ? -16.0f : -8.0f);
      pack32(x, d != 0.0f ? 1.0f / d : 0.0f, 0.0f, five ? 16.5f : 8.5f, five ? 31 : 15,
             b + (five ? 6 : 2), &qh);
      if (five) store_u32(b + 2, qh);
      store_f16(b, d);
      break;
    }
    case kQ4_1:
    case kQ5_1: {
      const bool five = dtype == kQ5_1;
      uint8_t* b = row + static_cast<uint64_t>(c) * (five ? 24 : 20);
      float mn = x[0], mx = x[0];
      for (int j = 1; j < 32; ++j) {
        if (x[j] < mn) mn = x[j];
        if (x[j] > mx) mx = x[j];
      }
      const float d = (mx - mn) / (five ? 31.0f : 15.0f);
      pack32(x, d != 0.0f ? 1.0f / d : 0.0f, mn, 0.5f, five ? 31 : 15, b + (five ? 8 : 4), &qh);
      if (five) store_u32(b + 4, qh);
      store_f16(b, d);
      store_f16(b + 2, mn);
      break;
    }
    case kQ8_0: {
      uint8_t* b = row + static_cast<uint64_t>(c) * 34;
      float amax = 0.0f;
      for (int j = 0; j < 32; ++j) {
        const float v = fabsf(x[j]);
        amax = amax > v ? amax : v;
      }
      const float d = amax / 127.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      for (int j = 0; j < 32; ++j) {
        const float v = x[j] * id;
        b[2 + j] =
            static_cast<uint8_t>(static_cast<int8_t>(max(-128, min(127, trunc_to_int(roundf(v))))));
      }
      store_f16(b, d);
      break;
    }
    case kQ8_K: {
      uint8_t* b = row + static_cast<uint64_t>(c) * 292;
      int8_t* q = reinterpret_cast<int8_t*>(b + 4);
      float amax = 0.0f, mx = 0.0f;
      for (int j = 0; j < 256; ++j) {
        const float ax = fabsf(x[j]);
        if (ax > amax) {
          amax = ax;
          mx = x[j];
        }
      }
      const float iscale = amax == 0.0f ? 0.0f : -127.0f / mx;
      for (int j = 0; j < 256; ++j) {
        const float v = iscale * x[j];
        q[j] = static_cast<int8_t>(max(-128, min(127, trunc_to_int(rintf(v)))));
      }
      for (int g = 0; g < 16; ++g) {
        int sum = 0;
        for (int l = 0; l < 16; ++l) sum += q[16 * g + l];
        reinterpret_cast<int16_t*>(b + 260)[g] = static_cast<int16_t>(sum);
      }
      *reinterpret_cast<float*>(b) = amax == 0.0f ? 0.0f : 1.0f / iscale;
      break;
    }
    default:
      break;
  }
}

}  // namespace

cudaError_t launch_get_rows(int ttype, View table, const int32_t* ids, int n_ids, View out,
                            int cols, cudaStream_t s) {
  const int chunks = (cols + 31) / 32;
  if (n_ids == 0 || chunks == 0) return cudaSuccess;
  get_rows_kernel<<<dim3(blocks_for(chunks, 64), n_ids), 64, 0, s>>>(ttype, table, ids, out, cols);
  return cudaGetLastError();
}

cudaError_t launch_set_rows(int dtype, View src, const int32_t* src_rows, const int32_t* ids, int n,
                            View dst, int cols, cudaStream_t s) {
  const int blk = dtype == kQ8_K ? 256 : 32;
  const int chunks = (cols + blk - 1) / blk;
  if (n == 0 || chunks == 0) return cudaSuccess;
  set_rows_kernel<<<dim3(blocks_for(chunks, 64), n), 64, 0, s>>>(dtype, src, src_rows, ids, dst,
                                                                 cols);
  return cudaGetLastError();
}

}  // namespace luzao::cuda
