// Hyper-parameter reading shared by llama-like architecture families.
#pragma once

#include <string>

#include "model/model.h"

namespace luzao {

// Reads `<arch>.block_count`, `.embedding_length`, attention and rope keys; throws Error(kBadFile)
// naming the file and key when one is missing or out of range.
HParams read_llama_like_hparams(const GgufFile& file, const std::string& arch);

}  // namespace luzao
