// Qwen2 / Qwen2.5 / DeepSeek-R1-Distill-Qwen: biases on Q, K and V, neox-layout RoPE with a large
// base, tied embeddings in the small sizes.
#include "model/decoder.h"
#include "model/hparams.h"

namespace luzao {

std::unique_ptr<Model> load_qwen2(std::shared_ptr<const GgufFile> file, Device& device,
                                  const LoadOptions& options) {
  HParams hp = read_llama_like_hparams(*file, "qwen2");
  hp.rope_neox = true;
  DecoderFeatures features;
  features.qkv_bias = true;
  return make_decoder_model(std::move(file), device, options, std::move(hp), features);
}

}  // namespace luzao
