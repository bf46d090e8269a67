// get_rows (dequantize table rows) and set_rows (convert F32 rows into a table: F32, F16, BF16,
// and the GGUF quantizers of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_K, rounding as src/tensor).

// One work-item per (output row, 32 elements).
__kernel void get_rows(int ttype, __global const uchar* table, ulong t_off, ulong t_stride,
                       __global const int* ids, __global uchar* out, ulong o_off, ulong o_stride,
                       int cols) {
  const int r = get_global_id(0);
  const int c = get_global_id(1);
  if (32 * c >= cols) return;
  __global const uchar* src = ROW(table, t_off, t_stride, ids[r]);
  __global float* dst = ROW_F32(out, o_off, o_stride, r) + 32 * c;
  if (is_plain(ttype)) {
    const int len = min(32, cols - 32 * c);
    for (int j = 0; j < len; ++j) dst[j] = load_plain(ttype, src, 32 * c + j);
  } else {
    float y[32];
    dequant_chunk(ttype, src, c, y);
    for (int j = 0; j < 32; ++j) dst[j] = y[j];
  }
}

void store_f16(__global uchar* p, float v) {
  *(__global ushort*)p = f32_to_f16(v);
}

// Packs 32 values into 4-bit nibbles (+ the fifth bits into *qh) as the reference pack_block.
void pack32(__global const float* x, float id, float shift, float offset, int max_q,
            __global uchar* qs, uint* qh) {
  uint h = 0;
  for (int j = 0; j < 16; ++j) {
    const float a = (x[j] - shift) * id;
    const float b = (x[j + 16] - shift) * id;
    const int q0 = clamp(trunc_to_int(a + offset), 0, max_q);
    const int q1 = clamp(trunc_to_int(b + offset), 0, max_q);
    qs[j] = (uchar)((q0 & 0xF) | ((q1 & 0xF) << 4));
    h |= (uint)((q0 >> 4) & 1) << j;
    h |= (uint)((q1 >> 4) & 1) << (j + 16);
  }
  *qh = h;
}

float signed_absmax(__global const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < fabs(x[j])) {
      amax = fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void store_u32(__global uchar* p, uint v) {
  for (int i = 0; i < 4; ++i) p[i] = (uchar)(v >> (8 * i));
}

// One work-item per (write, block); plain types take 32 elements per work-item. Write r copies
// source row src_rows[r] into row ids[r]; the ids are distinct (the host keeps the last write of
// repeated ids).
__kernel void set_rows(int dtype, __global const uchar* src, ulong s_off, ulong s_stride,
                       __global const int* src_rows, __global const int* ids,
                       __global uchar* dst, ulong d_off, ulong d_stride, int cols) {
  const int r = get_global_id(0);
  const int c = get_global_id(1);
  const int blk = dtype == T_Q8_K ? 256 : 32;
  if (c * blk >= cols) return;
  __global const float* x = ROW_F32(src, s_off, s_stride, src_rows[r]) + c * blk;
  __global uchar* row = ROW(dst, d_off, d_stride, ids[r]);
  if (is_plain(dtype)) {
    const int len = min(32, cols - 32 * c);
    for (int j = 0; j < len; ++j) {
      const int e = 32 * c + j;
      if (dtype == T_F32) {
        ((__global float*)row)[e] = x[j];
      } else {
        ((__global ushort*)row)[e] = dtype == T_F16 ? f32_to_f16(x[j]) : f32_to_bf16(x[j]);
      }
    }
    return;
  }
  uint qh = 0;
  switch (dtype) {
    case T_Q4_0: {
      __global uchar* b = row + (ulong)c * 18;
      const float d = signed_absmax(x, 32) / -8.0f;
      pack32(x, d != 0.0f ? 1.0f / d : 0.0f, 0.0f, 8.5f, 15, b + 2, &qh);
      store_f16(b, d);
      break;
    }
    case T_Q5_0: {
      __global uchar* b = row + (ulong)c * 22;
      const float d = signed_absmax(x, 32) / -16.0f;
      pack32(x, d != 0.0f ? 1.0f / d : 0.0f, 0.0f, 16.5f, 31, b + 6, &qh);
      store_u32(b + 2, qh);
      store_f16(b, d);
      break;
    }
    case T_Q4_1:
    case T_Q5_1: {
      const bool five = dtype == T_Q5_1;
      __global uchar* b = row + (ulong)c * (five ? 24 : 20);
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
    case T_Q8_0: {
      __global uchar* b = row + (ulong)c * 34;
      float amax = 0.0f;
      for (int j = 0; j < 32; ++j) {
        const float v = fabs(x[j]);
        amax = amax > v ? amax : v;
      }
      const float d = amax / 127.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      for (int j = 0; j < 32; ++j) {
        const float v = x[j] * id;
        ((__global char*)b)[2 + j] = (char)clamp(trunc_to_int(round(v)), -128, 127);
      }
      store_f16(b, d);
      break;
    }
    case T_Q8_K: {
      __global uchar* b = row + (ulong)c * 292;
      __global char* q = (__global char*)(b + 4);
      float amax = 0.0f, max = 0.0f;
      for (int j = 0; j < 256; ++j) {
        const float ax = fabs(x[j]);
        if (ax > amax) {
          amax = ax;
          max = x[j];
        }
      }
      const float iscale = amax == 0.0f ? 0.0f : -127.0f / max;
      for (int j = 0; j < 256; ++j) {
        const float v = iscale * x[j];
        q[j] = (char)clamp(trunc_to_int(rint(v)), -128, 127);
      }
      for (int g = 0; g < 16; ++g) {
        int sum = 0;
        for (int l = 0; l < 16; ++l) sum += q[16 * g + l];
        ((__global short*)(b + 260))[g] = (short)sum;
      }
      *(__global float*)b = amax == 0.0f ? 0.0f : 1.0f / iscale;
      break;
    }
  }
}
