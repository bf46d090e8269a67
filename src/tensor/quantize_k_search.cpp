// Scale searches for the K-quant and importance-weighted quantizers (see quantize_k_search.h).
// Float expressions are written in llama.cpp's evaluation order, one rounding per operation
// (the tensor library is built without FMA contraction), so results match it bit for bit.
#include "tensor/quantize_k_search.h"

#include <cmath>
#include <cstring>

#include "tensor/quant_math.h"

namespace luzao::quant_detail {
namespace {

// Value with the largest magnitude (the first on ties) and that magnitude.
float extreme(int n, const float* x, float* magnitude) {
  float max = 0.0f;
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  *magnitude = amax;
  return max;
}

int clamp_symmetric(int l, int nmax) {
  return clamp_int(l, -nmax, nmax - 1);
}

float weight_of(const float* weights, const float* x, int i) {
  return weights != nullptr ? weights[i] : x[i] * x[i];
}

}  // namespace

float search_symmetric(int n, int nmax, const float* x, int8_t* levels, int mode,
                       const float* weights) {
  float amax = 0.0f;
  const float max = extreme(n, x, &amax);
  if (amax < kGroupMaxEps) {
    std::memset(levels, 0, static_cast<size_t>(n));
    return 0.0f;
  }
  const auto fnmax = static_cast<float>(nmax);
  float iscale = -fnmax / max;
  if (mode == 0) {
    for (int i = 0; i < n; ++i) {
      levels[i] = static_cast<int8_t>(nmax + clamp_symmetric(round_even(iscale * x[i]), nmax));
    }
    return 1.0f / iscale;
  }
  float sumlx = 0.0f;
  float suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_symmetric(round_even(iscale * x[i]), nmax);
    levels[i] = static_cast<int8_t>(l + nmax);
    const float w = weight_of(weights, x, i);
    const auto fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(fnmax + 0.1f * static_cast<float>(step)) / max;
    sumlx = 0.0f;
    suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
      const auto fl = static_cast<float>(clamp_symmetric(round_even(iscale * x[i]), nmax));
      const float w = weight_of(weights, x, i);
      sumlx += w * x[i] * fl;
      suml2 += w * fl * fl;
    }
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        levels[i] = static_cast<int8_t>(nmax + clamp_symmetric(round_even(iscale * x[i]), nmax));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

float search_symmetric_refined(int n, int nmax, const float* x, int8_t* levels) {
  float amax = 0.0f;
  const float max = extreme(n, x, &amax);
  if (amax < kGroupMaxEps) {
    std::memset(levels, 0, static_cast<size_t>(n));
    return 0.0f;
  }
  const float iscale = -static_cast<float>(nmax) / max;
  float sumlx = 0.0f;
  float suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_symmetric(round_even(iscale * x[i]), nmax);
    levels[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    const auto fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const auto old_l = static_cast<float>(levels[i]);
      float slx = sumlx - w * x[i] * old_l;
      if (!(slx > 0.0f)) continue;
      float sl2 = suml2 - w * old_l * old_l;
      const int new_l = clamp_symmetric(round_even(x[i] * sl2 / slx), nmax);
      if (new_l == levels[i]) continue;
      const auto fl = static_cast<float>(new_l);
      slx += w * x[i] * fl;
      sl2 += w * fl * fl;
      if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
        levels[i] = static_cast<int8_t>(new_l);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) levels[i] = static_cast<int8_t>(levels[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

namespace {

// The shared body of the two affine searches; `weighted` selects llama.cpp's make_qkx3 details.
float search_affine_impl(int n, int nmax, const float* x, const float* weights, uint8_t* levels,
                         float* neg_min, uint8_t* scratch, float rmin, float rdelta, int nstep,
                         bool abs_error, bool weighted) {
  float min = x[0];
  float max = x[0];
  float sum_w = weight_of(weights, x, 0);
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weight_of(weights, x, i);
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0.0f) min = 0.0f;
  if (weighted ? max <= min : max == min) {
    std::memset(levels, 0, static_cast<size_t>(n));
    *neg_min = -min;
    return 0.0f;
  }
  const auto fnmax = static_cast<float>(nmax);
  float iscale = fnmax / (max - min);
  float scale = 1.0f / iscale;
  float best_error = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = round_even(iscale * (x[i] - min));
    levels[i] = static_cast<uint8_t>(clamp_int(l, 0, nmax));
    float diff = scale * static_cast<float>(levels[i]) + min - x[i];
    diff = abs_error ? std::fabs(diff) : diff * diff;
    best_error += weight_of(weights, x, i) * diff;
  }
  if (nstep < 1) {
    *neg_min = -min;
    return scale;
  }
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * static_cast<float>(step) + fnmax) / (max - min);
    float sum_l = 0.0f;
    float sum_l2 = 0.0f;
    float sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      int l = 0;
      if (weighted) {
        const float v = iscale * (x[i] - min);
        l = v > 0.0f ? round_even(v < fnmax ? v : fnmax) : 0;
      } else {
        l = clamp_int(round_even(iscale * (x[i] - min)), 0, nmax);
      }
      scratch[i] = static_cast<uint8_t>(l);
      const float w = weight_of(weights, x, i);
      const auto fl = static_cast<float>(l);
      sum_l += w * fl;
      sum_l2 += w * fl * fl;
      sum_xl += w * fl * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0.0f)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0.0f) {
      this_min = 0.0f;
      this_scale = sum_xl / sum_l2;
    }
    float error = 0.0f;
    for (int i = 0; i < n; ++i) {
      float diff = this_scale * static_cast<float>(scratch[i]) + this_min - x[i];
      diff = abs_error ? std::fabs(diff) : diff * diff;
      error += weight_of(weights, x, i) * diff;
    }
    if (error < best_error) {
      std::memcpy(levels, scratch, static_cast<size_t>(n));
      best_error = error;
      scale = this_scale;
      min = this_min;
    }
  }
  *neg_min = -min;
  return scale;
}

}  // namespace

float search_affine(int n, int nmax, const float* x, const float* weights, uint8_t* levels,
                    float* neg_min, uint8_t* scratch, float rmin, float rdelta, int nstep,
                    bool abs_error) {
  return search_affine_impl(n, nmax, x, weights, levels, neg_min, scratch, rmin, rdelta, nstep,
                            abs_error, false);
}

float search_affine_weighted(int n, int nmax, const float* x, const float* weights, uint8_t* levels,
                             float* neg_min, uint8_t* scratch, float rmin, float rdelta, int nstep,
                             bool abs_error) {
  return search_affine_impl(n, nmax, x, weights, levels, neg_min, scratch, rmin, rdelta, nstep,
                            abs_error, true);
}

float search_positive(int n, int nmax, const float* x, uint8_t* levels, const float* weights) {
  float max = 0.0f;
  for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
  if (max < kGroupMaxEps) {
    std::memset(levels, 0, static_cast<size_t>(n));
    return 0.0f;
  }
  const auto fnmax = static_cast<float>(nmax);
  float iscale = fnmax / max;
  for (int i = 0; i < n; ++i) levels[i] = static_cast<uint8_t>(round_even(iscale * x[i]));
  const float scale = 1.0f / iscale;
  float best_mse = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * static_cast<float>(levels[i]);
    best_mse += weights[i] * diff * diff;
  }
  for (int step = -4; step <= 4; ++step) {
    if (step == 0) continue;
    const float iscale_step = (0.1f * static_cast<float>(step) + fnmax) / max;
    const float scale_step = 1.0f / iscale_step;
    float mse = 0.0f;
    for (int i = 0; i < n; ++i) {
      int l = round_even(iscale_step * x[i]);
      l = l < nmax ? l : nmax;
      const float diff = x[i] - scale_step * static_cast<float>(l);
      mse += weights[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_step;
    }
  }
  float sumlx = 0.0f;
  float suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    int l = round_even(iscale * x[i]);
    l = l < nmax ? l : nmax;
    levels[i] = static_cast<uint8_t>(l);
    const auto fl = static_cast<float>(l);
    sumlx += weights[i] * x[i] * fl;
    suml2 += weights[i] * fl * fl;
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = weights[i];
      const auto old_l = static_cast<float>(levels[i]);
      float slx = sumlx - w * x[i] * old_l;
      float sl2 = suml2 - w * old_l * old_l;
      if (!(slx > 0.0f && sl2 > 0.0f)) continue;
      int new_l = round_even(x[i] * sl2 / slx);
      new_l = new_l < nmax ? new_l : nmax;
      if (new_l == levels[i]) continue;
      const auto fl = static_cast<float>(new_l);
      slx += w * x[i] * fl;
      sl2 += w * fl * fl;
      if (slx * slx * suml2 > sumlx * sumlx * sl2) {
        levels[i] = static_cast<uint8_t>(new_l);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

}  // namespace luzao::quant_detail
