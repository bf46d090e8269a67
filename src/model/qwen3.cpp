// Qwen3 (dense): per-head RMSNorm on Q and K before RoPE, no Q/K/V bias, neox-layout RoPE, head
// size from attention.key_length (it need not be embedding_length / head_count).
#include "model/decoder.h"
#include "model/hparams.h"

namespace luzao {

std::unique_ptr<Model> load_qwen3(std::shared_ptr<const GgufFile> file, Device& device,
                                  const LoadOptions& options) {
  HParams hp = read_llama_like_hparams(*file, "qwen3");
  hp.rope_neox = true;
  DecoderFeatures features;
  features.qk_norm = true;
  return make_decoder_model(std::move(file), device, options, std::move(hp), features);
}

}  // namespace luzao
