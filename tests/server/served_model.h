// A tiny random-weight llama with an SPM byte vocabulary, small enough for scheduler tests under
// sanitizers; the Engine needs the tokenizer metadata that tests/runtime/tiny_model.h leaves out.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "format/gguf.h"
#include "tensor/dtype.h"

namespace luzao::testing {

constexpr int kServedVocab = 300;  // <unk> <s> </s>, 256 byte tokens, then plain pieces

inline std::filesystem::path write_served_model(const std::string& name, int n_ctx = 256) {
  const auto path =
      std::filesystem::temp_directory_path() / fmt::format("{}_{}.gguf", name, ::getpid());
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int n_layer = 2, n_embd = 64, n_head = 4, n_head_kv = 2, n_ff = 96;
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_uint32("llama.block_count", n_layer);
  w.set_uint32("llama.context_length", static_cast<uint32_t>(n_ctx));
  w.set_uint32("llama.embedding_length", n_embd);
  w.set_uint32("llama.feed_forward_length", n_ff);
  w.set_uint32("llama.attention.head_count", n_head);
  w.set_uint32("llama.attention.head_count_kv", n_head_kv);
  w.set_float32("llama.rope.freq_base", 10000.0f);
  w.set_float32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(fmt::format("<0x{:02X}>", b));
    types.push_back(6);
  }
  const char* pieces[] = {"\xe2\x96\x81",
                          "a",
                          "b",
                          "c",
                          "d",
                          "e",
                          "\xe2\x96\x81the",
                          "\xe2\x96\x81"
                          "a",
                          "lo",
                          "he"};
  for (int i = 0; static_cast<int>(tokens.size()) < kServedVocab; ++i) {
    tokens.push_back(i < 10 ? std::string(pieces[i]) : fmt::format("w{}", i));
    types.push_back(1);
  }
  std::vector<float> scores(tokens.size(), 0.0f);
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_float32_array("tokenizer.ggml.scores", scores);
  w.set_int32_array("tokenizer.ggml.token_type", types);
  w.set_uint32("tokenizer.ggml.bos_token_id", 1);
  w.set_uint32("tokenizer.ggml.eos_token_id", 2);
  w.set_uint32("tokenizer.ggml.unknown_token_id", 0);
  auto add = [&](const std::string& tensor, std::vector<uint64_t> shape, float scale, bool norm) {
    uint64_t count = 1;
    for (uint64_t d : shape) count *= d;
    std::vector<float> v(count);
    for (float& x : v) x = (norm ? 1.0f : 0.0f) + normal(rng) * scale;
    std::vector<std::byte> bytes(v.size() * sizeof(float));
    std::memcpy(bytes.data(), v.data(), bytes.size());
    w.add_tensor(tensor, DType::kF32, shape, bytes);
  };
  const uint64_t d = n_embd, kv = static_cast<uint64_t>(n_head_kv) * (n_embd / n_head),
                 V = kServedVocab;
  add("token_embd.weight", {d, V}, 0.5f, false);
  for (int i = 0; i < n_layer; ++i) {
    const std::string p = fmt::format("blk.{}.", i);
    add(p + "attn_norm.weight", {d}, 0.1f, true);
    add(p + "attn_q.weight", {d, d}, 0.2f, false);
    add(p + "attn_k.weight", {d, kv}, 0.2f, false);
    add(p + "attn_v.weight", {d, kv}, 0.2f, false);
    add(p + "attn_output.weight", {d, d}, 0.2f, false);
    add(p + "ffn_norm.weight", {d}, 0.1f, true);
    add(p + "ffn_gate.weight", {d, static_cast<uint64_t>(n_ff)}, 0.2f, false);
    add(p + "ffn_up.weight", {d, static_cast<uint64_t>(n_ff)}, 0.2f, false);
    add(p + "ffn_down.weight", {static_cast<uint64_t>(n_ff), d}, 0.2f, false);
  }
  add("output_norm.weight", {d}, 0.1f, true);
  add("output.weight", {d, V}, 0.3f, false);
  w.write(path);
  return path;
}

}  // namespace luzao::testing
