// What `luzao quantize` does with each tensor: the quantization schemes (llama.cpp's file types,
// including the Q*_K_S/M/L mixes) and the per-tensor type choice llama-quantize makes for them.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "format/gguf.h"
#include "tensor/dtype.h"

namespace luzao::cli {

// A target named on the command line: the default tensor type and llama.cpp's file type number
// (general.file_type), which also selects the mix rules.
struct QuantScheme {
  std::string_view name;  // "Q4_K_M"
  DType base;             // type of most weight matrices
  uint32_t file_type;     // llama_ftype value
  std::string_view help;
};

std::span<const QuantScheme> quant_schemes();
// Case-insensitive; also accepts llama-quantize's aliases Q3_K, Q4_K, Q5_K (the _M mixes).
// Throws Error(kInvalidArgument) listing the known names.
const QuantScheme& find_quant_scheme(std::string_view name);

struct TensorOverride {
  std::string pattern;  // ECMAScript regex, searched in the tensor name
  DType type;
};
// Parses "REGEX=TYPE"; throws Error(kInvalidArgument) naming the bad part.
TensorOverride parse_override(std::string_view spec);

struct TensorPlan {
  std::string name;
  DType from = DType::kF32;
  DType to = DType::kF32;
  std::vector<uint64_t> shape;
  bool convert = false;  // false: the bytes are copied unchanged
  std::string note;      // why the type differs from the scheme's base type, if it does
};

// The llama.cpp rules: only 2-D+ tensors whose name ends in "weight" and that are not norms are
// quantized; output.weight (or token_embd.weight when the output is tied to it) gets Q6_K (Q8_0
// for Q8_0, or when its rows do not fit 256); the _M/_S/_L mixes raise attn_v, ffn_down,
// attn_output by layer position; a type whose block does not divide the row length falls back
// (Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0, Q2_K/Q3_K->Q4_0, as the llama.cpp of llama-cpp-python
// 0.3.36 does; other versions pick IQ4_NL, which luzao lacks). Overrides apply last. Throws
// Error(kInvalidArgument) when an override asks for a type that cannot store a tensor's rows,
// Error(kUnsupported) for a source type that cannot be dequantized.
std::vector<TensorPlan> plan_quantization(const GgufFile& file, const QuantScheme& scheme,
                                          std::span<const TensorOverride> overrides,
                                          bool has_imatrix);

}  // namespace luzao::cli
