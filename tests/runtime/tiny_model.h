// Builds tiny random-weight llama GGUF files for runtime tests (no tokenizer metadata needed).
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "tensor/dtype.h"

namespace luzao::testing {

struct TinyLlama {
  std::string arch = "llama";  // "qwen2" adds Q/K/V biases, "qwen3" per-head Q/K norms
  int n_layer = 2, n_embd = 64, n_head = 4, n_head_kv = 2, n_ff = 96, n_vocab = 80;
  DType weight_type = DType::kF32;
  bool tied_output = false;
  std::vector<std::string> skip_tensors;  // to make broken files
};

inline std::vector<std::byte> encode(DType type, const std::vector<float>& values, int64_t row) {
  std::vector<std::byte> out(*row_bytes(type, values.size()));
  const size_t rows = values.size() / static_cast<size_t>(row);
  const size_t stride = *row_bytes(type, static_cast<uint64_t>(row));
  for (size_t r = 0; r < rows; ++r)
    quantize_row(type, values.data() + r * row, out.data() + r * stride, row);
  return out;
}

inline void write_tiny_llama(const std::filesystem::path& path, const TinyLlama& m,
                             uint32_t seed = 7) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  GgufWriter w;
  const std::string& a = m.arch;
  w.set_string("general.architecture", a);
  w.set_uint32(a + ".block_count", m.n_layer);
  w.set_uint32(a + ".context_length", 256);
  w.set_uint32(a + ".embedding_length", m.n_embd);
  w.set_uint32(a + ".feed_forward_length", m.n_ff);
  w.set_uint32(a + ".attention.head_count", m.n_head);
  w.set_uint32(a + ".attention.head_count_kv", m.n_head_kv);
  w.set_float32(a + ".rope.freq_base", 10000.0f);
  w.set_float32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
  const int head_dim = m.n_embd / m.n_head;
  auto add = [&](const std::string& name, std::vector<uint64_t> shape, float scale, bool quantize) {
    for (const auto& skip : m.skip_tensors) {
      if (skip == name) return;
    }
    uint64_t count = 1;
    for (uint64_t d : shape) count *= d;
    std::vector<float> v(count);
    for (float& x : v) x = normal(rng) * scale;
    if (!quantize) {
      for (float& x : v) x = 1.0f + x;  // norm weights around 1
    }
    const DType type = quantize ? m.weight_type : DType::kF32;
    const auto bytes = encode(type, v, static_cast<int64_t>(shape[0]));
    w.add_tensor(name, type, shape, bytes);
  };
  const uint64_t d = m.n_embd, q = static_cast<uint64_t>(m.n_head) * head_dim,
                 kv = static_cast<uint64_t>(m.n_head_kv) * head_dim;
  add("token_embd.weight", {d, static_cast<uint64_t>(m.n_vocab)}, 0.5f, true);
  for (int i = 0; i < m.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    add(p + "attn_norm.weight", {d}, 0.1f, false);
    add(p + "attn_q.weight", {d, q}, 0.2f, true);
    add(p + "attn_k.weight", {d, kv}, 0.2f, true);
    add(p + "attn_v.weight", {d, kv}, 0.2f, true);
    add(p + "attn_output.weight", {q, d}, 0.2f, true);
    if (a == "qwen2") {
      add(p + "attn_q.bias", {q}, 0.1f, false);
      add(p + "attn_k.bias", {kv}, 0.1f, false);
      add(p + "attn_v.bias", {kv}, 0.1f, false);
    }
    if (a == "qwen3") {
      add(p + "attn_q_norm.weight", {static_cast<uint64_t>(head_dim)}, 0.1f, false);
      add(p + "attn_k_norm.weight", {static_cast<uint64_t>(head_dim)}, 0.1f, false);
    }
    add(p + "ffn_norm.weight", {d}, 0.1f, false);
    add(p + "ffn_gate.weight", {d, static_cast<uint64_t>(m.n_ff)}, 0.2f, true);
    add(p + "ffn_up.weight", {d, static_cast<uint64_t>(m.n_ff)}, 0.2f, true);
    add(p + "ffn_down.weight", {static_cast<uint64_t>(m.n_ff), d}, 0.2f, true);
  }
  add("output_norm.weight", {d}, 0.1f, false);
  if (!m.tied_output) add("output.weight", {d, static_cast<uint64_t>(m.n_vocab)}, 0.3f, true);
  w.write(path);
}

}  // namespace luzao::testing
