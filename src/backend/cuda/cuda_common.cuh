// Device helpers shared by the CUDA kernels: fp16/bf16 conversions and dequantization of every
// GGUF block type, step for step as luzao's scalar reference (built with --fmad=false so that no
// multiply-add is fused), the same arithmetic as the OpenCL kernels.
#pragma once

#include <cstdint>

#include "backend/cuda/cuda_kernels.h"

namespace luzao::cuda {

enum : int {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30,
};

__device__ inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0)
    return __uint_as_float(__float_as_uint(static_cast<float>(mant) * 0x1.0p-24f) | sign);
  if (exp == 31) return __uint_as_float(sign | 0x7f800000u | (mant << 13));
  return __uint_as_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

__device__ inline uint16_t f32_to_f16(float f) {
  const uint32_t x = __float_as_uint(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (a < 0x38800000u) {
    if (a < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t shift = 126u - (a >> 23);
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    uint32_t r = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = (a >> 13) - (112u << 10);
  const uint32_t rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return static_cast<uint16_t>(sign | r);
}

__device__ inline float bf16_to_f32(uint16_t h) {
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
}

__device__ inline uint16_t f32_to_bf16(float f) {
  const uint32_t x = __float_as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

__device__ inline float round_f16(float f) {
  return f16_to_f32(f32_to_f16(f));
}

__device__ inline float ld_f16(const uint8_t* p) {
  return f16_to_f32(*reinterpret_cast<const uint16_t*>(p));
}

__device__ inline int trunc_to_int(float v) {
  return fabsf(v) < 2147483648.0f ? static_cast<int>(v) : 0;
}

__device__ inline bool is_plain(int t) {
  return t == kF32 || t == kF16 || t == kBF16;
}

__device__ inline float load_plain(int t, const uint8_t* row, int j) {
  if (t == kF32) return reinterpret_cast<const float*>(row)[j];
  const uint16_t h = reinterpret_cast<const uint16_t*>(row)[j];
  return t == kF16 ? f16_to_f32(h) : bf16_to_f32(h);
}

__device__ inline float* row_f32(View v, int64_t r) {
  return reinterpret_cast<float*>(v.data + static_cast<uint64_t>(r) * v.stride);
}

__device__ inline const uint8_t* row_bytes(View v, int64_t r) {
  return v.data + static_cast<uint64_t>(r) * v.stride;
}

__device__ inline int q3k_scale(const uint8_t* packed, int j) {
  const int low = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
  const int high = (packed[8 + (j % 4)] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

__device__ inline void q4k_scale_min(const uint8_t* s, int g, float* sc, float* m) {
  if (g < 4) {
    *sc = static_cast<float>(s[g] & 63);
    *m = static_cast<float>(s[g + 4] & 63);
  } else {
    *sc = static_cast<float>((s[g + 4] & 0xF) | ((s[g - 4] >> 6) << 4));
    *m = static_cast<float>((s[g + 4] >> 4) | ((s[g] >> 6) << 4));
  }
}

// Elements 32c .. 32c+31 of a row of block type t.
__device__ inline void dequant_chunk(int t, const uint8_t* row, int c, float* y) {
  switch (t) {
    case kQ4_0: {
      const uint8_t* b = row + static_cast<uint64_t>(c) * 18;
      const float d = ld_f16(b);
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((b[2 + j] & 0xF) - 8) * d;
        y[j + 16] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
      }
      break;
    }
    case kQ4_1: {
      const uint8_t* b = row + static_cast<uint64_t>(c) * 20;
      const float d = ld_f16(b), m = ld_f16(b + 2);
      for (int j = 0; j < 16; ++j) {
        const float lo = static_cast<float>(b[4 + j] & 0xF) * d;
        const float hi = static_cast<float>(b[4 + j] >> 4) * d;
        y[j] = lo + m;
        y[j + 16] = hi + m;
      }
      break;
    }
    case kQ5_0:
    case kQ5_1: {
      const bool one = t == kQ5_1;
      const uint8_t* b = row + static_cast<uint64_t>(c) * (one ? 24 : 22);
      const float d = ld_f16(b), m = one ? ld_f16(b + 2) : 0.0f;
      const uint8_t* h = b + (one ? 4 : 2);
      const uint32_t qh = h[0] | (h[1] << 8) | (h[2] << 16) | (static_cast<uint32_t>(h[3]) << 24);
      const uint8_t* qs = h + 4;
      for (int j = 0; j < 16; ++j) {
        const int x0 = (qs[j] & 0xF) | (((qh >> j) & 1) << 4);
        const int x1 = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
        if (one) {
          const float a0 = static_cast<float>(x0) * d, a1 = static_cast<float>(x1) * d;
          y[j] = a0 + m;
          y[j + 16] = a1 + m;
        } else {
          y[j] = static_cast<float>(x0 - 16) * d;
          y[j + 16] = static_cast<float>(x1 - 16) * d;
        }
      }
      break;
    }
    case kQ8_0: {
      const uint8_t* b = row + static_cast<uint64_t>(c) * 34;
      const float d = ld_f16(b);
      for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
      break;
    }
    case kQ2_K: {
      const uint8_t* b = row + static_cast<uint64_t>(c / 8) * 84;
      const int sub = c % 8, h = sub / 4, s = sub % 4;
      const float d = ld_f16(b + 80), dmin = ld_f16(b + 82);
      for (int l = 0; l < 32; ++l) {
        const uint8_t sc = b[(32 * sub + l) / 16];
        const float dl = d * static_cast<float>(sc & 0xF);
        const float ml = dmin * static_cast<float>(sc >> 4);
        const float scaled = dl * static_cast<float>((b[16 + 32 * h + l] >> (2 * s)) & 3);
        y[l] = scaled - ml;
      }
      break;
    }
    case kQ3_K: {
      const uint8_t* b = row + static_cast<uint64_t>(c / 8) * 110;
      const int sub = c % 8, h = sub / 4, s = sub % 4;
      const float d = ld_f16(b + 108);
      for (int l = 0; l < 32; ++l) {
        const int low = (b[32 + 32 * h + l] >> (2 * s)) & 3;
        const int high = (b[l] >> sub) & 1;
        const float dl = d * static_cast<float>(q3k_scale(b + 96, (32 * sub + l) / 16));
        y[l] = dl * static_cast<float>(low - (high ? 0 : 4));
      }
      break;
    }
    case kQ4_K:
    case kQ5_K: {
      const bool five = t == kQ5_K;
      const uint8_t* b = row + static_cast<uint64_t>(c / 8) * (five ? 176 : 144);
      const int g = c % 8;
      float sc, m;
      q4k_scale_min(b + 4, g, &sc, &m);
      const float dl = ld_f16(b) * sc, ml = ld_f16(b + 2) * m;
      const uint8_t* q = b + (five ? 48 : 16) + 32 * (g / 2);
      const int shift = 4 * (g % 2);
      for (int l = 0; l < 32; ++l) {
        int v = (q[l] >> shift) & 0xF;
        if (five) v |= ((b[16 + l] >> g) & 1) << 4;
        const float scaled = dl * static_cast<float>(v);
        y[l] = scaled - ml;
      }
      break;
    }
    case kQ6_K: {
      const uint8_t* b = row + static_cast<uint64_t>(c / 8) * 210;
      const int sub = c % 8, h = sub / 4, s = sub % 4;
      const float d = ld_f16(b + 208);
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo_byte = b[64 * h + 32 * (s & 1) + l];
        const int lo = s >= 2 ? lo_byte >> 4 : lo_byte & 0xF;
        const int hi = (b[128 + 32 * h + l] >> (2 * s)) & 3;
        const float dl = d * static_cast<float>(static_cast<int8_t>(b[192 + (32 * sub + l) / 16]));
        y[l] = dl * static_cast<float>((lo | (hi << 4)) - 32);
      }
      break;
    }
    case kQ8_K: {
      const uint8_t* b = row + static_cast<uint64_t>(c / 8) * 292;
      const float d = *reinterpret_cast<const float*>(b);
      const int8_t* q = reinterpret_cast<const int8_t*>(b + 4) + 32 * (c % 8);
      for (int l = 0; l < 32; ++l) y[l] = d * static_cast<float>(q[l]);
      break;
    }
    default:
      for (int l = 0; l < 32; ++l) y[l] = __int_as_float(0x7fc00000);  // unreachable
  }
}

// Q4_1 / Q5_1 without their minimum: y = d * q for elements 32c .. 32c+31; returns m.
__device__ inline float dequant_chunk_scaled(int t, const uint8_t* row, int c, float* y) {
  const bool five = t == kQ5_1;
  const uint8_t* b = row + static_cast<uint64_t>(c) * (five ? 24 : 20);
  const float d = ld_f16(b);
  const uint32_t qh =
      five ? (b[4] | (b[5] << 8) | (b[6] << 16) | (static_cast<uint32_t>(b[7]) << 24)) : 0u;
  const uint8_t* qs = b + (five ? 8 : 4);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0xF) | (((qh >> j) & 1) << 4)) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) * d;
  }
  return ld_f16(b + 2);
}

__device__ inline float warp_sum(float v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  return __shfl_sync(0xffffffffu, v, 0);
}

inline unsigned blocks_for(int64_t n, int per) {
  return static_cast<unsigned>((n + per - 1) / per);
}

}  // namespace luzao::cuda
