// The pre-norm decoder-only transformer that llama-like families share (Llama, Qwen2, Qwen3...):
// RMSNorm, RoPE, GQA attention over the paged KV cache, SwiGLU. A family's file reads its
// hyper-parameters and picks its features; this file binds the tensors and runs the forward.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "model/model.h"
#include "model/weights.h"

namespace luzao {

struct DecoderFeatures {
  bool qkv_bias = false;  // blk.N.attn_{q,k,v}.bias (Qwen2)
  bool qk_norm = false;   // blk.N.attn_{q,k}_norm.weight: per-head RMSNorm before RoPE (Qwen3)
};

std::unique_ptr<Model> make_decoder_model(std::shared_ptr<const GgufFile> file, Device& device,
                                          const LoadOptions& options, HParams hparams,
                                          DecoderFeatures features);

}  // namespace luzao
