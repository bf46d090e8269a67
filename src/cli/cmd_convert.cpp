// `luzao convert HF_DIR OUT.gguf [--outtype f32|f16|bf16|q8_0]`: imports a Hugging Face llama,
// qwen2 or qwen3 model (safetensors + tokenizer.json) as GGUF, without Python.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/convert_hf.h"
#include "core/error.h"

namespace luzao::cli {

CommandMain setup_convert(CLI::App& cmd) {
  struct Args {
    std::string in;
    std::string out;
    std::string outtype = "f16";
    std::string vocab_pre;
    bool quiet = false;
  };
  auto a = std::make_shared<Args>();
  cmd.add_option("hf_dir", a->in,
                 "Hugging Face model directory (config.json, tokenizer.json, "
                 "*.safetensors)")
      ->required();
  cmd.add_option("output", a->out, "Output GGUF (written to OUTPUT.tmp, renamed when complete)")
      ->required();
  cmd.add_option("--outtype", a->outtype, "Type of the 2-D weights (norms and biases stay f32)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}, CLI::ignore_case));
  cmd.add_option("--vocab-pre", a->vocab_pre,
                 "tokenizer.ggml.pre to write (default: recognised from tokenizer.json)");
  cmd.add_flag("-q,--quiet", a->quiet, "No per-tensor progress lines");
  return [a]() {
    ConvertOptions options;
    options.outtype = *dtype_from_name(a->outtype);  // validated by IsMember
    options.vocab_pre = a->vocab_pre;
    const bool tty = isatty(STDERR_FILENO) != 0;
    const auto start = std::chrono::steady_clock::now();
    size_t tensors = 0;
    convert_hf(a->in, a->out, options,
               [&](size_t done, size_t total, std::string_view name, DType dtype) {
                 tensors = total;
                 if (a->quiet) return;
                 fmt::print(stderr, "{}[{:4}/{:4}] {:<32} {:<5}{}", tty ? "\r" : "", done, total,
                            name, dtype_name(dtype), tty && done != total ? "" : "\n");
                 std::fflush(stderr);
               });
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    fmt::print("converted {} -> {} ({} tensors, {}, {:.1f} MiB) in {:.1f} s\n", a->in, a->out,
               tensors, a->outtype,
               static_cast<double>(std::filesystem::file_size(a->out)) / (1 << 20), seconds);
    return 0;
  };
}

}  // namespace luzao::cli
