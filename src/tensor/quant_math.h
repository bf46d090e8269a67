// Internal helpers of the reference quantizers: float-to-int conversions with defined results for
// every input, so that NaN/inf or a degenerate scale never reaches an undefined cast.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace luzao::quant_detail {

// Truncation toward zero, as a C cast. Non-finite or out-of-range values give 0, which is also
// what llama.cpp's casts produce on x86 for them (the value becomes INT_MIN, whose low byte is 0).
inline int32_t trunc_to_int(float v) {
  if (!(std::fabs(v) < 2147483648.0f)) return 0;
  return static_cast<int32_t>(v);
}

// Round half away from zero (C roundf).
inline int32_t round_away(float v) {
  return trunc_to_int(std::round(v));
}

// Round half to even (llama.cpp's nearest_int, under the default rounding mode). Within
// +-2^22 the float addition of 1.5 * 2^23 does the rounding (no library call on baseline x86-64,
// where nearbyint is not inlined); outside it, nearbyint.
inline int32_t round_even(float v) {
  if (std::fabs(v) <= 4194303.0f) {
    const float shifted = v + 12582912.0f;
    uint32_t bits = 0;
    std::memcpy(&bits, &shifted, sizeof(bits));
    return static_cast<int32_t>(bits & 0x007fffffu) - 0x00400000;
  }
  return trunc_to_int(std::nearbyint(v));
}

inline int32_t clamp_int(int32_t v, int32_t lo, int32_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

}  // namespace luzao::quant_detail
