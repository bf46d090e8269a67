// `luzao quantize`'s per-tensor choices on a synthetic 8-layer llama GGUF, against llama.cpp's
// llama_tensor_get_type rules worked out by hand (the bench and e2e tests compare whole files
// byte for byte with llama.cpp's quantizer), plus scheme names and --override parsing.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "cli/quantize_plan.h"
#include "core/error.h"
#include "format/gguf.h"

namespace luzao::cli {
namespace {

constexpr int kLayers = 8;

// Tensors as a llama.cpp conversion names them. Rows are 256 long except attn_k's 96 (three
// 32-blocks, no 256-block: the K-quants fall back there); without `with_output` the output is tied
// to token_embd.weight.
GgufFile synthetic_model(bool with_output, std::vector<std::byte>& storage) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_uint32("llama.attention.head_count", 8);
  w.set_uint32("llama.attention.head_count_kv", 2);  // n_gqa 4
  auto add = [&w](const std::string& name, std::vector<uint64_t> shape) {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    std::vector<std::byte> zeros(n * 2);
    w.add_tensor(name, DType::kF16, std::move(shape), zeros);
  };
  add("token_embd.weight", {256, 64});
  if (with_output) add("output.weight", {256, 64});
  w.add_tensor("output_norm.weight", DType::kF32, {256}, std::vector<std::byte>(1024));
  for (int i = 0; i < kLayers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    w.add_tensor(p + "attn_norm.weight", DType::kF32, {256}, std::vector<std::byte>(1024));
    add(p + "attn_q.weight", {256, 16});
    add(p + "attn_k.weight", {96, 16});
    add(p + "attn_v.weight", {256, 16});
    add(p + "attn_output.weight", {256, 16});
    add(p + "ffn_gate.weight", {256, 16});
    add(p + "ffn_up.weight", {256, 16});
    add(p + "ffn_down.weight", {512, 16});
  }
  storage = w.to_bytes();
  return GgufFile::parse(storage, "synthetic.gguf");
}

std::map<std::string, DType> plan_types(const std::string& scheme, bool with_output = true,
                                        bool imatrix = false,
                                        const std::vector<TensorOverride>& overrides = {}) {
  std::vector<std::byte> storage;
  const GgufFile file = synthetic_model(with_output, storage);
  std::map<std::string, DType> out;
  for (const TensorPlan& p :
       plan_quantization(file, find_quant_scheme(scheme), overrides, imatrix)) {
    out[p.name] = p.to;
  }
  return out;
}

std::string layer(int i, const char* what) {
  return "blk." + std::to_string(i) + "." + what + ".weight";
}

// use_more_bits(i, 8): i < 1, i >= 7, or (i - 1) % 3 == 2  ->  layers 0, 3, 6, 7.
bool more_bits(int i) {
  return i == 0 || i == 3 || i == 6 || i == 7;
}

TEST(QuantizePlan, SchemeNamesAndAliases) {
  EXPECT_EQ(find_quant_scheme("q4_k_m").name, "Q4_K_M");
  EXPECT_EQ(find_quant_scheme("Q4_K").name, "Q4_K_M");  // llama-quantize's alias
  EXPECT_EQ(find_quant_scheme("Q3_K").name, "Q3_K_M");
  EXPECT_EQ(find_quant_scheme("Q5_K").name, "Q5_K_M");
  EXPECT_EQ(find_quant_scheme("Q8_0").file_type, 7u);  // llama_ftype numbers
  EXPECT_EQ(find_quant_scheme("Q4_K_M").file_type, 15u);
  EXPECT_EQ(find_quant_scheme("Q2_K").base, DType::kQ2_K);
  try {
    find_quant_scheme("Q7_K");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("Q7_K"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("Q4_K_M"), std::string::npos) << "lists the known types";
  }
}

TEST(QuantizePlan, OverrideParsing) {
  const TensorOverride o = parse_override("attn_(q|k)=q8_0");
  EXPECT_EQ(o.pattern, "attn_(q|k)");
  EXPECT_EQ(o.type, DType::kQ8_0);
  EXPECT_THROW(parse_override("attn_q"), Error);        // no '='
  EXPECT_THROW(parse_override("=q8_0"), Error);         // no regex
  EXPECT_THROW(parse_override("attn_q=q9_0"), Error);   // no such type
  EXPECT_THROW(parse_override("attn_(q=q8_0"), Error);  // bad regex
  EXPECT_THROW(parse_override("attn_q=q8_K"), Error);   // activation format, not storage
}

TEST(QuantizePlan, Q4KMRaisesHalfOfAttnVAndFfnDown) {
  const auto t = plan_types("Q4_K_M");
  EXPECT_EQ(t.at("output.weight"), DType::kQ6_K);
  EXPECT_EQ(t.at("token_embd.weight"), DType::kQ4_K);
  EXPECT_EQ(t.at("output_norm.weight"), DType::kF32);  // 1-D: copied
  for (int i = 0; i < kLayers; ++i) {
    const DType raised = more_bits(i) ? DType::kQ6_K : DType::kQ4_K;
    EXPECT_EQ(t.at(layer(i, "attn_v")), raised) << i;
    EXPECT_EQ(t.at(layer(i, "ffn_down")), raised) << i;
    EXPECT_EQ(t.at(layer(i, "attn_q")), DType::kQ4_K) << i;
    EXPECT_EQ(t.at(layer(i, "attn_k")), DType::kQ5_0) << i;  // rows of 96: Q4_K falls back
    EXPECT_EQ(t.at(layer(i, "attn_norm")), DType::kF32) << i;
  }
}

TEST(QuantizePlan, Q2KAndQ3KMixes) {
  const auto q2 = plan_types("Q2_K");
  for (int i = 0; i < kLayers; ++i) {
    EXPECT_EQ(q2.at(layer(i, "attn_v")), DType::kQ4_K) << i;  // n_gqa 4
    EXPECT_EQ(q2.at(layer(i, "ffn_down")), DType::kQ3_K) << i;
    EXPECT_EQ(q2.at(layer(i, "attn_output")), DType::kQ3_K) << i;
    EXPECT_EQ(q2.at(layer(i, "ffn_up")), DType::kQ2_K) << i;
    EXPECT_EQ(q2.at(layer(i, "attn_k")), DType::kQ4_0) << i;  // fallback
  }
  const auto q3 = plan_types("Q3_K_M");
  for (int i = 0; i < kLayers; ++i) {
    EXPECT_EQ(q3.at(layer(i, "attn_v")), i < 2 ? DType::kQ5_K : DType::kQ4_K) << i;
    EXPECT_EQ(q3.at(layer(i, "ffn_down")), DType::kQ4_K) << i;  // i < 8/16 never holds
    EXPECT_EQ(q3.at(layer(i, "attn_output")), DType::kQ4_K) << i;
  }
}

TEST(QuantizePlan, TiedOutputAndLegacyTypes) {
  const auto tied = plan_types("Q4_0", false);
  EXPECT_EQ(tied.at("token_embd.weight"), DType::kQ6_K);  // the output treatment
  const auto q8 = plan_types("Q8_0");
  EXPECT_EQ(q8.at("output.weight"), DType::kQ8_0);
  // Q4_0 with an imatrix: the first eighth of ffn_down gets Q4_1.
  const auto q4 = plan_types("Q4_0", true, true);
  EXPECT_EQ(q4.at(layer(0, "ffn_down")), DType::kQ4_1);
  EXPECT_EQ(q4.at(layer(1, "ffn_down")), DType::kQ4_0);
  EXPECT_EQ(plan_types("Q4_0").at(layer(0, "ffn_down")), DType::kQ4_0);
  const auto f16 = plan_types("F16");
  EXPECT_EQ(f16.at("output.weight"), DType::kF16);
  EXPECT_EQ(f16.at(layer(0, "attn_k")), DType::kF16);
}

TEST(QuantizePlan, OverridesApplyLastAndAreChecked) {
  const auto t = plan_types("Q4_K_M", true, false, {parse_override("ffn_(up|gate)=q8_0")});
  EXPECT_EQ(t.at(layer(2, "ffn_up")), DType::kQ8_0);
  EXPECT_EQ(t.at(layer(2, "ffn_gate")), DType::kQ8_0);
  EXPECT_EQ(t.at(layer(2, "attn_q")), DType::kQ4_K);
  try {
    plan_types("Q4_0", true, false, {parse_override("attn_k=q4_K")});
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attn_k"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace luzao::cli
