// The tokenizer part of `luzao convert`: a Hugging Face tokenizer.json (byte-level BPE) plus
// tokenizer_config.json / config.json special tokens and chat template, as GGUF tokenizer keys.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "format/gguf.h"

namespace luzao::cli {

// Reads `path` as JSON. Throws Error(kIo) when it cannot be read, Error(kBadFile) naming the file
// when it is not valid JSON.
nlohmann::json read_json_file(const std::filesystem::path& path);

// The tokenizer.ggml.pre name for a tokenizer.json "pre_tokenizer" value, recognised by the
// Split regexes and pre-tokenizer sequence that llama.cpp's known models use ("llama-bpe",
// "qwen2", "smollm", "gpt-2"). Throws Error(kUnsupported) naming `file` for anything else.
std::string detect_bpe_pre(const nlohmann::json& pre_tokenizer, const std::string& file);

struct VocabOptions {
  int64_t vocab_size = 0;  // rows of the embedding (config.json vocab_size); 0: from the vocab
  std::string pre;         // tokenizer.ggml.pre override; empty: detect_bpe_pre
  // Copy tokenizer_config.json add_prefix_space to tokenizer.ggml.add_space_prefix (llama.cpp
  // does so for the llama family only).
  bool copy_add_prefix_space = false;
};

// Writes tokenizer.ggml.* (model "gpt2", pre, tokens, token_type, merges, special token ids, add
// flags) and tokenizer.chat_template the way llama.cpp's convert_hf_to_gguf.py does for a GPT-2
// style BPE tokenizer. `config` is config.json. Throws Error(kBadFile / kUnsupported) naming the
// file and field at fault (SentencePiece tokenizers are reported as unsupported).
void write_hf_vocab(const std::filesystem::path& dir, const nlohmann::json& config,
                    const VocabOptions& options, GgufWriter& writer);

}  // namespace luzao::cli
