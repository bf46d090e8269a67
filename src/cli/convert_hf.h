// `luzao convert`: a Hugging Face model directory (config.json, tokenizer files, *.safetensors)
// to a GGUF file with the keys and tensor names llama.cpp's convert_hf_to_gguf.py writes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "tensor/dtype.h"

namespace luzao::cli {

struct ConvertOptions {
  DType outtype = DType::kF16;  // F32, F16, BF16 or Q8_0 for 2-D weights; norms/biases stay F32
  std::string vocab_pre;        // tokenizer.ggml.pre override (empty: recognised from the file)
};

// Called once per tensor as it is converted: (index from 1, total, GGUF name, stored dtype).
using ConvertProgress =
    std::function<void(size_t done, size_t total, std::string_view name, DType dtype)>;

// The GGUF architecture for a config.json "architectures" entry ("LlamaForCausalLM" -> "llama"),
// or empty when luzao cannot convert it.
std::string gguf_arch_for(std::string_view hf_architecture);

// Converts `hf_dir` into `out`, written to a temporary name next to it and renamed when complete
// (nothing is left behind on failure). Supports llama, qwen2 and qwen3; byte-level BPE
// tokenizers; F32/F16/BF16 safetensors, single or sharded (model.safetensors.index.json).
// Throws Error naming the file, key or tensor at fault: kBadFile for malformed or inconsistent
// input (truncated safetensors, shapes that contradict config.json, missing tensors), kUnsupported
// for architectures, dtypes or tokenizers luzao cannot convert, kIo for unreadable/unwritable
// paths.
void convert_hf(const std::filesystem::path& hf_dir, const std::filesystem::path& out,
                const ConvertOptions& options, const ConvertProgress& progress = {});

}  // namespace luzao::cli
