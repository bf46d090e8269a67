// The conformance suite: every op x dtype x shape sweep a device claims to support, run on that
// device and on the reference backend, compared by normalised mean squared error against per-op
// limits. A backend is "supported" exactly when it passes. tests/conformance runs the full depth
// on every available device; `luzao devices` runs the quick depth.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace luzao::conformance {

enum class Depth {
  kQuick,  // a few small shapes per op x dtype: about a second on a slow device
  kFull,   // odd sizes, padded views, every GQA ratio: the suite CI runs
};

// One op x dtype, pooled over its shapes.
struct CaseResult {
  OpKind op = OpKind::kCount;
  DType dtype = DType::kF32;
  int shapes = 0;       // shapes run
  double error = 0.0;   // pooled NMSE over all shapes
  double worst = 0.0;   // largest single-shape NMSE
  double limit = 0.0;   // pooled limit; each single shape may reach kSingleFactor * limit
  std::string failure;  // empty when passed; else the first problem (limit, exception)
  bool passed() const { return failure.empty(); }
  std::string name() const;  // "matmul/q4_K"
};

inline constexpr double kSingleFactor = 10.0;

// Every dtype the suite knows (the GGUF types luzao reads).
std::span<const DType> all_dtypes();

// The pooled NMSE limit of `op` with weights/tables/pools/destination of `dtype`. Limits admit
// activations rounded as llama.cpp does (Q8 for block weights, F16 for F16 weights and caches).
double nmse_limit(OpKind op, DType dtype);

// Runs `op` for every dtype `device` supports (F32 only for the plain ops) against a reference
// device of its own. Never throws for a device failure: it becomes the case's `failure`.
std::vector<CaseResult> run_op(Device& device, OpKind op, Depth depth, uint32_t seed = 1);
// run_op for every op of the op set, plus one case per required op the device does not support
// (every op on F32, attention on F16 pools), failing with "not supported".
std::vector<CaseResult> run_all(Device& device, Depth depth, uint32_t seed = 1);

// Test data: `rows` x `cols` of `dtype`, quantized from uniform [-1, 1) floats where a quantizer
// exists, else random blocks with small fp16 scales.
std::vector<uint8_t> random_rows(DType dtype, int64_t rows, int64_t cols, std::mt19937& rng);

}  // namespace luzao::conformance
