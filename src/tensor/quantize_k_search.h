// Internal to the tensor layer: the scale searches behind the K-quant and importance-weighted
// quantizers. Each picks a scale (and for the asymmetric ones a minimum) for one small group of
// values, minimising a weighted squared (or absolute) error; the arithmetic order follows
// llama.cpp's make_q*_quants helpers so that the results are bit-identical.
#pragma once

#include <cstdint>

namespace luzao::quant_detail {

// Groups whose largest magnitude is below this are stored as all zeros.
inline constexpr float kGroupMaxEps = 1e-15f;

// Symmetric levels in [-nmax, nmax - 1], stored as l + nmax in `levels`. Returns the scale d
// (x ~ d * (level - nmax)). `mode` 0: plain rounding from the extreme value; 1: error weighted by
// `weights` (or x^2 when null) with a search over 18 nearby scales, then the least-squares scale.
float search_symmetric(int n, int nmax, const float* x, int8_t* levels, int mode,
                       const float* weights);

// Q3_K's reference search: symmetric levels, x^2 weights, then up to five passes that move single
// elements to the level that improves the least-squares fit. Levels stored as l + nmax.
float search_symmetric_refined(int n, int nmax, const float* x, int8_t* levels);

// Levels in [0, nmax] with a minimum: x ~ scale * level - *neg_min (returns scale, *neg_min >= 0).
// Tries nstep + 1 scales (rmin + rdelta * i + nmax) / (max - min), fitting scale and minimum by
// weighted least squares each time; keeps the one with the least weighted error (absolute error
// when `abs_error`). `scratch` holds n bytes. `weights` may not be null.
float search_affine(int n, int nmax, const float* x, const float* weights, uint8_t* levels,
                    float* neg_min, uint8_t* scratch, float rmin, float rdelta, int nstep,
                    bool abs_error);

// As search_affine, the variant llama.cpp uses with importance weights (null weights mean x^2;
// values at or below the minimum map to level 0 without rounding).
float search_affine_weighted(int n, int nmax, const float* x, const float* weights, uint8_t* levels,
                             float* neg_min, uint8_t* scratch, float rmin, float rdelta, int nstep,
                             bool abs_error);

// Non-negative values (the block scales of Q2_K/Q4_K/Q5_K under an imatrix) to levels in
// [0, nmax] with weights `weights`: returns the scale.
float search_positive(int n, int nmax, const float* x, uint8_t* levels, const float* weights);

}  // namespace luzao::quant_detail
