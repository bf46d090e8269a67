// Perplexity and KL-divergence measurement as llama.cpp's llama-perplexity does it: the text is
// tokenized once, cut into non-overlapping chunks of ctx tokens, each chunk evaluated from an
// empty KV cache, and only the second half of each chunk scored (every scored token then sees at
// least ctx/2 tokens of context). Used by `luzao perplexity` and `luzao imatrix`.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/engine.h"

namespace luzao::cli {

// The whole file as bytes; throws Error(kIo) naming the path.
std::string read_text_file(const std::string& path);

// -log p(token) under softmax(logits), computed as llama.cpp does: the maximum subtracted, the
// sum of expf in double. Throws Error(kInvalidArgument) for a token outside the logits.
double token_nll(std::span<const float> logits, int32_t token);
// log-softmax of `logits` into `out` (same length), in double precision.
void log_softmax(std::span<const float> logits, std::span<double> out);

// Running statistics of per-token negative log-likelihoods. ppl = exp(mean nll); its standard
// error follows llama.cpp: sqrt(var(nll) / (n - 1)) * ppl, var from the running sums.
class NllStats {
 public:
  void add(double nll);
  int64_t count() const { return count_; }
  double mean() const;
  double ppl() const;
  double ppl_stderr() const;  // 0 with fewer than two values

 private:
  double sum_ = 0;
  double sum2_ = 0;
  int64_t count_ = 0;
};

// Per-token KL(base || model) values and top-1 agreement.
class KlStats {
 public:
  void add(double kl, bool same_top);
  int64_t count() const { return static_cast<int64_t>(values_.size()); }
  double mean() const;
  double mean_stderr() const;         // standard error of the mean
  double percentile(double q) const;  // q in [0, 1], linear interpolation between order stats
  double top1_agreement() const;      // fraction of tokens whose argmax agrees
  double top1_stderr() const;

 private:
  std::vector<double> values_;
  int64_t same_top_ = 0;
};

// The base model's log-probabilities of every scored token, saved by `--save-logits` and read by
// `--kl-base`. Layout (little endian): "LZLOGIT1", u32 n_vocab, u32 ctx, u32 first scored
// position, u32 chunks, u64 FNV-1a hash of the evaluated tokens, then per chunk
// (ctx - 1 - first) rows of n_vocab fp16 log-probabilities.
struct LogitsHeader {
  uint32_t n_vocab = 0;
  uint32_t ctx = 0;
  uint32_t first = 0;
  uint32_t chunks = 0;
  uint64_t tokens_hash = 0;
};
uint64_t hash_tokens(std::span<const int32_t> tokens);

class LogitsWriter {
 public:
  // Writes to `path`.tmp and renames on finish(); throws Error(kIo) naming the path.
  LogitsWriter(std::filesystem::path path, const LogitsHeader& header);
  ~LogitsWriter();
  void add_row(std::span<const double> log_probs);
  void finish();

 private:
  std::filesystem::path path_, tmp_;
  std::ofstream out_;
  std::vector<uint16_t> row_;
  bool done_ = false;
};

class LogitsReader {
 public:
  // Throws Error(kBadFile) naming the path for a file that is not one, or is truncated.
  explicit LogitsReader(const std::filesystem::path& path);
  const LogitsHeader& header() const { return header_; }
  // The next row as doubles; throws Error(kBadFile) when the file ends early.
  void next_row(std::span<double> out);

 private:
  std::filesystem::path path_;
  std::ifstream in_;
  LogitsHeader header_;
  std::vector<uint16_t> row_;
};

struct PerplexityConfig {
  int ctx = 512;
  int chunks = -1;  // -1: every whole chunk of the text
  int batch = 512;  // tokens per forward pass (capped at ctx)
  std::filesystem::path save_logits;
  std::filesystem::path kl_base;
  // Called after each chunk with (chunk index, chunks, running perplexity).
  std::function<void(int, int, double)> on_chunk;
};

struct PerplexityReport {
  int chunks = 0;
  int ctx = 0;
  int64_t text_tokens = 0;
  NllStats nll;
  std::optional<NllStats>
      base_nll;  // with --kl-base: the base model's perplexity on the same tokens
  std::optional<KlStats> kl;
};

// Evaluates `tokens` in chunks (see the file comment). A BOS token replaces the first token of
// each chunk when the vocabulary adds one (as llama.cpp does). Throws Error(kInvalidArgument)
// when the text has fewer than 2 * ctx tokens, Error(kBadFile) when --kl-base was made from other
// tokens, another vocabulary or another ctx.
PerplexityReport run_perplexity(Engine& engine, std::span<const int32_t> tokens,
                                const PerplexityConfig& config);

}  // namespace luzao::cli
