// matmul: activations first rounded through the format llama.cpp's cpu backend pairs with the
// weight type (F16, BF16, Q8_0, Q8_1, Q8_K), so results track the cpu backend; then one work-item
// per (weight row, tile of tokens) dequantizes 32 weights at a time and reuses them for the tile.
// Q4_1/Q5_1 weights meet Q8_1 activations as in llama.cpp: the weight minimum m multiplies the
// block's fp16-rounded sum s = fp16(d * sum(q)) rather than the sum of the rounded values.

#define ACT_NONE 0
#define ACT_F16 1
#define ACT_BF16 2
#define ACT_Q8_0 3
#define ACT_Q8_K 4
#define ACT_Q8_1 5  // Q8_0's values, plus each block's s in `sums`

// x [n, k] (view) -> dense y [n, k] (and, for Q8_1, sums [n, k / 32]); one work-item per
// (row, 32 or 256 elements).
__kernel void round_activations(int fmt, __global const uchar* x, ulong x_off, ulong x_stride,
                                __global float* y, __global float* sums, int k) {
  const int r = get_global_id(0);
  const int blk = fmt == ACT_Q8_K ? 256 : 32;
  const int first = get_global_id(1) * blk;
  if (first >= k) return;
  const int n = min(blk, k - first);
  __global const float* src = ROW_F32(x, x_off, x_stride, r) + first;
  __global float* dst = y + (ulong)r * k + first;
  if (fmt == ACT_F16 || fmt == ACT_BF16) {
    for (int j = 0; j < n; ++j) {
      dst[j] = fmt == ACT_F16 ? round_f16(src[j]) : bf16_to_f32(f32_to_bf16(src[j]));
    }
  } else if (fmt == ACT_Q8_0 || fmt == ACT_Q8_1) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) {
      const float v = fabs(src[j]);
      amax = amax > v ? amax : v;
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const float d16 = round_f16(d);
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      const float v = src[j] * id;
      const int q = clamp(trunc_to_int(round(v)), -128, 127);
      dst[j] = (float)q * d16;
      sum += q;
    }
    if (fmt == ACT_Q8_1) sums[(ulong)r * (k / 32) + first / 32] = round_f16((float)sum * d);
  } else {  // ACT_Q8_K
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 256; ++j) {
      const float ax = fabs(src[j]);
      if (ax > amax) {
        amax = ax;
        max = src[j];
      }
    }
    if (amax == 0.0f) {
      for (int j = 0; j < 256; ++j) dst[j] = 0.0f;
      return;
    }
    const float iscale = -127.0f / max;
    const float d = 1.0f / iscale;
    for (int j = 0; j < 256; ++j) {
      const float v = iscale * src[j];
      const int q = clamp(trunc_to_int(rint(v)), -128, 127);
      dst[j] = d * (float)q;
    }
  }
}

#define TOKEN_TILE 4

// Dot products of the 32 weights of chunk c of a row with 32 activations, one function per block
// type, each weight formed exactly as dequant_chunk forms it. Fusing the two keeps the weights in
// registers instead of a private array, which matters to CPU-hosted OpenCL.
float dot_q4_0(__global const uchar* row, int c, __global const float* x) {
  __global const uchar* b = row + (ulong)c * 18;
  const float d = ld_f16(b);
  float s = 0.0f;
  for (int j = 0; j < 16; ++j) s += (float)((b[2 + j] & 0xF) - 8) * d * x[j];
  for (int j = 0; j < 16; ++j) s += (float)((b[2 + j] >> 4) - 8) * d * x[j + 16];
  return s;
}

// Q4_1 / Q5_1: with `msum` (Q8_1 activations) the minimum multiplies the block's rounded sum.
float dot_q4_1(__global const uchar* row, int c, __global const float* x, bool use_msum,
               float msum) {
  __global const uchar* b = row + (ulong)c * 20;
  const float d = ld_f16(b), m = ld_f16(b + 2);
  float s = 0.0f;
  if (use_msum) {
    for (int j = 0; j < 16; ++j) s += (float)(b[4 + j] & 0xF) * d * x[j];
    for (int j = 0; j < 16; ++j) s += (float)(b[4 + j] >> 4) * d * x[j + 16];
    return s + m * msum;
  }
  for (int j = 0; j < 16; ++j) {
    const float lo = (float)(b[4 + j] & 0xF) * d;
    s += (lo + m) * x[j];
  }
  for (int j = 0; j < 16; ++j) {
    const float hi = (float)(b[4 + j] >> 4) * d;
    s += (hi + m) * x[j + 16];
  }
  return s;
}

float dot_q8_0(__global const uchar* row, int c, __global const float* x) {
  __global const uchar* b = row + (ulong)c * 34;
  __global const char* q = (__global const char*)(b + 2);
  const float d = ld_f16(b);
  float s = 0.0f;
  for (int j = 0; j < 32; ++j) s += (float)q[j] * d * x[j];
  return s;
}

float dot_q4_k(__global const uchar* row, int c, __global const float* x) {
  __global const uchar* b = row + (ulong)(c / 8) * 144;
  const int g = c % 8;
  float sc, mn;
  q4k_scale_min(b + 4, g, &sc, &mn);
  const float dl = ld_f16(b) * sc, ml = ld_f16(b + 2) * mn;
  __global const uchar* q = b + 16 + 32 * (g / 2);
  const int shift = 4 * (g % 2);
  float s = 0.0f;
  for (int l = 0; l < 32; ++l) {
    const float scaled = dl * (float)((q[l] >> shift) & 0xF);
    s += (scaled - ml) * x[l];
  }
  return s;
}

float dot_q6_k(__global const uchar* row, int c, __global const float* x) {
  __global const uchar* b = row + (ulong)(c / 8) * 210;
  const int sub = c % 8, h = sub / 4, sh = sub % 4;
  const float d = ld_f16(b + 208);
  __global const uchar* ql = b + 64 * h + 32 * (sh & 1);
  __global const uchar* qh = b + 128 + 32 * h;
  __global const char* scales = (__global const char*)(b + 192);
  float s = 0.0f;
  for (int l = 0; l < 32; ++l) {
    const int lo = sh >= 2 ? ql[l] >> 4 : ql[l] & 0xF;
    const int hi = (qh[l] >> (2 * sh)) & 3;
    const float dl = d * (float)scales[(32 * sub + l) / 16];
    s += dl * (float)((lo | (hi << 4)) - 32) * x[l];
  }
  return s;
}

// The other block types through dequant_chunk.
float dot_generic(int t, __global const uchar* row, int c, __global const float* x) {
  float w[32];
  dequant_chunk(t, row, c, w);
  float s = 0.0f;
  for (int j = 0; j < 32; ++j) s += w[j] * x[j];
  return s;
}

// out[t, i] = sum_j x[t, j] * w[i, j] for the tokens of one tile, summed per 32-element chunk
// (partial sums keep F32 error near that of a pairwise sum). With `use_sums` (Q8_1 activations of
// Q4_1 / Q5_1 weights) each block adds m * s instead of m * sum(x).
__kernel void matmul(int wtype, __global const uchar* w, ulong w_off, ulong w_stride,
                     __global const uchar* x, ulong x_off, ulong x_stride,
                     __global const float* sums, int use_sums,
                     __global uchar* out, ulong o_off, ulong o_stride, int n, int m, int k) {
  const int i = get_global_id(0);
  const int t0 = get_global_id(1) * TOKEN_TILE;
  if (i >= m || t0 >= n) return;
  const int nt = min(TOKEN_TILE, n - t0);
  __global const uchar* wrow = ROW(w, w_off, w_stride, i);
  const int chunks = k / 32;
  for (int t = 0; t < nt; ++t) {
    __global const float* xr = ROW_F32(x, x_off, x_stride, t0 + t);
    __global const float* tsums = sums + (ulong)(t0 + t) * chunks;
    float acc = 0.0f;
    switch (wtype) {
      case T_Q4_0:
        for (int c = 0; c < chunks; ++c) acc += dot_q4_0(wrow, c, xr + 32 * c);
        break;
      case T_Q4_1:
        for (int c = 0; c < chunks; ++c) {
          acc += dot_q4_1(wrow, c, xr + 32 * c, use_sums != 0, use_sums ? tsums[c] : 0.0f);
        }
        break;
      case T_Q8_0:
        for (int c = 0; c < chunks; ++c) acc += dot_q8_0(wrow, c, xr + 32 * c);
        break;
      case T_Q4_K:
        for (int c = 0; c < chunks; ++c) acc += dot_q4_k(wrow, c, xr + 32 * c);
        break;
      case T_Q6_K:
        for (int c = 0; c < chunks; ++c) acc += dot_q6_k(wrow, c, xr + 32 * c);
        break;
      case T_Q5_1:
        if (use_sums) {
          float wv[32];
          for (int c = 0; c < chunks; ++c) {
            const float mn = dequant_chunk_scaled(wtype, wrow, c, wv);
            float part = 0.0f;
            for (int j = 0; j < 32; ++j) part += wv[j] * xr[32 * c + j];
            acc += part + mn * tsums[c];
          }
          break;
        }
        for (int c = 0; c < chunks; ++c) acc += dot_generic(wtype, wrow, c, xr + 32 * c);
        break;
      case T_F32:
      case T_F16:
      case T_BF16:
        for (int c = 0; 32 * c < k; ++c) {
          const int len = min(32, k - 32 * c);
          float part = 0.0f;
          for (int j = 0; j < len; ++j) part += load_plain(wtype, wrow, 32 * c + j) * xr[32 * c + j];
          acc += part;
        }
        break;
      default:
        for (int c = 0; c < chunks; ++c) acc += dot_generic(wtype, wrow, c, xr + 32 * c);
        break;
    }
    ROW_F32(out, o_off, o_stride, t0 + t)[i] = acc;
  }
}
