// The Llama architecture (Llama 2/3, SmolLM2, TinyLlama, DeepSeek-R1-Distill-Llama): normal-layout
// RoPE, no biases, tied or separate output projection.
#include "model/decoder.h"
#include "model/hparams.h"

namespace luzao {

std::unique_ptr<Model> load_llama(std::shared_ptr<const GgufFile> file, Device& device,
                                  const LoadOptions& options) {
  HParams hp = read_llama_like_hparams(*file, "llama");
  hp.rope_neox = false;
  return make_decoder_model(std::move(file), device, options, std::move(hp), {});
}

}  // namespace luzao
