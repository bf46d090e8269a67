// Shared helpers of the luzao OpenCL kernels (concatenated first into one program): view
// addressing, fp16/bf16 conversions without the `half` type, and dequantization of every GGUF
// block type. Arithmetic follows luzao's scalar reference (src/tensor) step by step, with
// contraction off, so that values match the cpu backend bit for bit where the formulas agree.
#pragma OPENCL FP_CONTRACT OFF

#ifdef cl_khr_fp64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double wide_t;  // long sums (norms, softmax denominators), as the cpu backend
#else
typedef float wide_t;
#endif

// GGUF type ids.
#define T_F32 0
#define T_F16 1
#define T_Q4_0 2
#define T_Q4_1 3
#define T_Q5_0 6
#define T_Q5_1 7
#define T_Q8_0 8
#define T_Q2_K 10
#define T_Q3_K 11
#define T_Q4_K 12
#define T_Q5_K 13
#define T_Q6_K 14
#define T_Q8_K 15
#define T_BF16 30

// A view is (buffer, byte offset, row stride in bytes).
#define ROW(base, off, stride, r) ((base) + (off) + (ulong)(r) * (stride))
#define ROW_F32(base, off, stride, r) ((__global float*)ROW(base, off, stride, r))

float f16_to_f32(ushort h) {
  const uint sign = (uint)(h & 0x8000u) << 16;
  const uint exp = (h >> 10) & 0x1fu;
  const uint mant = h & 0x3ffu;
  if (exp == 0) {
    const float v = (float)mant * 0x1.0p-24f;  // zero and subnormals, exact
    return as_float(as_uint(v) | sign);
  }
  if (exp == 31) return as_float(sign | 0x7f800000u | (mant << 13));
  return as_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

// Round to nearest even; NaN stays NaN, overflow goes to infinity.
ushort f32_to_f16(float f) {
  const uint x = as_uint(f);
  const uint sign = (x >> 16) & 0x8000u;
  const uint a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return (ushort)(sign | 0x7e00u);
  if (a >= 0x477ff000u) return (ushort)(sign | 0x7c00u);
  if (a < 0x38800000u) {
    if (a < 0x33000000u) return (ushort)sign;
    const uint shift = 126u - (a >> 23);
    const uint mant = (a & 0x7fffffu) | 0x800000u;
    uint r = mant >> shift;
    const uint rem = mant & ((1u << shift) - 1u);
    const uint halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return (ushort)(sign | r);
  }
  uint r = (a >> 13) - (112u << 10);
  const uint rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return (ushort)(sign | r);
}

float bf16_to_f32(ushort h) {
  return as_float((uint)h << 16);
}

ushort f32_to_bf16(float f) {
  const uint x = as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (ushort)((x >> 16) | 0x40u);
  return (ushort)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

float round_f16(float f) {
  return f16_to_f32(f32_to_f16(f));
}

float ld_f16(__global const uchar* p) {
  return f16_to_f32(*(__global const ushort*)p);
}

// C's (int) cast with a defined result (0) for values no int holds, as the reference quantizers.
int trunc_to_int(float v) {
  return fabs(v) < 2147483648.0f ? (int)v : 0;
}

// Element j of a row of a plain float type.
float load_plain(int t, __global const uchar* row, int j) {
  if (t == T_F32) return ((__global const float*)row)[j];
  const ushort h = ((__global const ushort*)row)[j];
  return t == T_F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

bool is_plain(int t) {
  return t == T_F32 || t == T_F16 || t == T_BF16;
}

// Signed scale j (0..15) of a Q3_K block from its 12 packed bytes.
int q3k_scale(__global const uchar* packed, int j) {
  const int low = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
  const int high = (packed[8 + (j % 4)] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

// Scale and minimum of group g (0..7) of a Q4_K/Q5_K block.
void q4k_scale_min(__global const uchar* s, int g, float* sc, float* m) {
  if (g < 4) {
    *sc = (float)(s[g] & 63);
    *m = (float)(s[g + 4] & 63);
  } else {
    *sc = (float)((s[g + 4] & 0xF) | ((s[g - 4] >> 6) << 4));
    *m = (float)((s[g + 4] >> 4) | ((s[g] >> 6) << 4));
  }
}

// Elements 32c .. 32c+31 of a row of block type t (every block is 32 or 8 x 32 elements).
void dequant_chunk(int t, __global const uchar* row, int c, float* y) {
  switch (t) {
    case T_Q4_0: {
      __global const uchar* b = row + (ulong)c * 18;
      const float d = ld_f16(b);
      for (int j = 0; j < 16; ++j) {
        y[j] = (float)((b[2 + j] & 0xF) - 8) * d;
        y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
      }
      break;
    }
    case T_Q4_1: {
      __global const uchar* b = row + (ulong)c * 20;
      const float d = ld_f16(b), m = ld_f16(b + 2);
      for (int j = 0; j < 16; ++j) {
        const float lo = (float)(b[4 + j] & 0xF) * d;
        const float hi = (float)(b[4 + j] >> 4) * d;
        y[j] = lo + m;
        y[j + 16] = hi + m;
      }
      break;
    }
    case T_Q5_0: {
      __global const uchar* b = row + (ulong)c * 22;
      const float d = ld_f16(b);
      const uint qh = (uint)b[2] | ((uint)b[3] << 8) | ((uint)b[4] << 16) | ((uint)b[5] << 24);
      for (int j = 0; j < 16; ++j) {
        const int x0 = (b[6 + j] & 0xF) | (((qh >> j) & 1) << 4);
        const int x1 = (b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
        y[j] = (float)(x0 - 16) * d;
        y[j + 16] = (float)(x1 - 16) * d;
      }
      break;
    }
    case T_Q5_1: {
      __global const uchar* b = row + (ulong)c * 24;
      const float d = ld_f16(b), m = ld_f16(b + 2);
      const uint qh = (uint)b[4] | ((uint)b[5] << 8) | ((uint)b[6] << 16) | ((uint)b[7] << 24);
      for (int j = 0; j < 16; ++j) {
        const int x0 = (b[8 + j] & 0xF) | (((qh >> j) & 1) << 4);
        const int x1 = (b[8 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
        const float a0 = (float)x0 * d;
        const float a1 = (float)x1 * d;
        y[j] = a0 + m;
        y[j + 16] = a1 + m;
      }
      break;
    }
    case T_Q8_0: {
      __global const uchar* b = row + (ulong)c * 34;
      const float d = ld_f16(b);
      for (int j = 0; j < 32; ++j) y[j] = (float)((__global const char*)b)[2 + j] * d;
      break;
    }
    case T_Q2_K: {  // scales[16] qs[64] d dmin
      __global const uchar* b = row + (ulong)(c / 8) * 84;
      const int sub = c % 8, h = sub / 4, s = sub % 4;
      const float d = ld_f16(b + 80), dmin = ld_f16(b + 82);
      for (int l = 0; l < 32; ++l) {
        const uchar sc = b[(32 * sub + l) / 16];
        const float dl = d * (float)(sc & 0xF);
        const float ml = dmin * (float)(sc >> 4);
        const float scaled = dl * (float)((b[16 + 32 * h + l] >> (2 * s)) & 3);
        y[l] = scaled - ml;
      }
      break;
    }
    case T_Q3_K: {  // hmask[32] qs[64] scales[12] d
      __global const uchar* b = row + (ulong)(c / 8) * 110;
      const int sub = c % 8, h = sub / 4, s = sub % 4;
      const float d = ld_f16(b + 108);
      for (int l = 0; l < 32; ++l) {
        const int low = (b[32 + 32 * h + l] >> (2 * s)) & 3;
        const int high = (b[l] >> sub) & 1;
        const float dl = d * (float)q3k_scale(b + 96, (32 * sub + l) / 16);
        y[l] = dl * (float)(low - (high ? 0 : 4));
      }
      break;
    }
    case T_Q4_K: {  // d dmin scales[12] qs[128]
      __global const uchar* b = row + (ulong)(c / 8) * 144;
      const int g = c % 8;
      float sc, m;
      q4k_scale_min(b + 4, g, &sc, &m);
      const float dl = ld_f16(b) * sc, ml = ld_f16(b + 2) * m;
      __global const uchar* q = b + 16 + 32 * (g / 2);
      const int shift = 4 * (g % 2);
      for (int l = 0; l < 32; ++l) {
        const float scaled = dl * (float)((q[l] >> shift) & 0xF);
        y[l] = scaled - ml;
      }
      break;
    }
    case T_Q5_K: {  // d dmin scales[12] qh[32] qs[128]
      __global const uchar* b = row + (ulong)(c / 8) * 176;
      const int g = c % 8;
      float sc, m;
      q4k_scale_min(b + 4, g, &sc, &m);
      const float dl = ld_f16(b) * sc, ml = ld_f16(b + 2) * m;
      __global const uchar* q = b + 48 + 32 * (g / 2);
      const int shift = 4 * (g % 2);
      for (int l = 0; l < 32; ++l) {
        const int v = ((q[l] >> shift) & 0xF) | (((b[16 + l] >> g) & 1) << 4);
        const float scaled = dl * (float)v;
        y[l] = scaled - ml;
      }
      break;
    }
    case T_Q6_K: {  // ql[128] qh[64] scales[16] d
      __global const uchar* b = row + (ulong)(c / 8) * 210;
      const int sub = c % 8, h = sub / 4, s = sub % 4;
      const float d = ld_f16(b + 208);
      for (int l = 0; l < 32; ++l) {
        const uchar lo_byte = b[64 * h + 32 * (s & 1) + l];
        const int lo = s >= 2 ? lo_byte >> 4 : lo_byte & 0xF;
        const int hi = (b[128 + 32 * h + l] >> (2 * s)) & 3;
        const float dl = d * (float)((__global const char*)b)[192 + (32 * sub + l) / 16];
        y[l] = dl * (float)((lo | (hi << 4)) - 32);
      }
      break;
    }
    case T_Q8_K: {  // float d, qs[256], bsums[16]
      __global const uchar* b = row + (ulong)(c / 8) * 292;
      const float d = *(__global const float*)b;
      __global const char* q = (__global const char*)(b + 4) + 32 * (c % 8);
      for (int l = 0; l < 32; ++l) y[l] = d * (float)q[l];
      break;
    }
    default:
      for (int l = 0; l < 32; ++l) y[l] = NAN;  // unreachable: the host checks supports()
  }
}

// Q4_1 / Q5_1 without their minimum: y = d * q for elements 32c .. 32c+31; returns m.
float dequant_chunk_scaled(int t, __global const uchar* row, int c, float* y) {
  const bool five = t == T_Q5_1;
  __global const uchar* b = row + (ulong)c * (five ? 24 : 20);
  const float d = ld_f16(b);
  const uint qh = five ? ((uint)b[4] | ((uint)b[5] << 8) | ((uint)b[6] << 16) | ((uint)b[7] << 24))
                       : 0u;
  __global const uchar* qs = b + (five ? 8 : 4);
  for (int j = 0; j < 16; ++j) {
    const int x0 = (qs[j] & 0xF) | (((qh >> j) & 1) << 4);
    const int x1 = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = (float)x0 * d;
    y[j + 16] = (float)x1 * d;
  }
  return ld_f16(b + 2);
}
