// Perplexity / KL-divergence measurement (see perplexity.h for the method).
#include "cli/perplexity.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/half.h"

namespace luzao::cli {
namespace {

constexpr char kLogitsMagic[8] = {'L', 'Z', 'L', 'O', 'G', 'I', 'T', '1'};

template <typename T>
void put(std::ofstream& out, T v) {
  out.write(reinterpret_cast<const char*>(&v), sizeof(v));
}

template <typename T>
bool get(std::ifstream& in, T* v) {
  return static_cast<bool>(in.read(reinterpret_cast<char*>(v), sizeof(*v)));
}

}  // namespace

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open", path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(ErrorKind::kIo, "{}: read failed", path);
  return text;
}

double token_nll(std::span<const float> logits, int32_t token) {
  if (token < 0 || static_cast<size_t>(token) >= logits.size()) {
    fail(ErrorKind::kInvalidArgument, "token {} is outside the {} logits", token, logits.size());
  }
  float max = logits[0];
  for (float v : logits) max = std::max(max, v);
  double sum = 0;
  for (float v : logits) sum += std::exp(v - max);
  return -(static_cast<double>(logits[static_cast<size_t>(token)] - max) - std::log(sum));
}

void log_softmax(std::span<const float> logits, std::span<double> out) {
  LUZAO_CHECK(out.size() == logits.size() && !logits.empty());
  float max = logits[0];
  for (float v : logits) max = std::max(max, v);
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v - max));
  const double log_sum = std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i)
    out[i] = static_cast<double>(logits[i] - max) - log_sum;
}

void NllStats::add(double nll) {
  sum_ += nll;
  sum2_ += nll * nll;
  ++count_;
}

double NllStats::mean() const {
  return count_ > 0 ? sum_ / static_cast<double>(count_) : 0.0;
}

double NllStats::ppl() const {
  return std::exp(mean());
}

double NllStats::ppl_stderr() const {
  if (count_ < 2) return 0.0;
  const double m = mean();
  const double var = sum2_ / static_cast<double>(count_) - m * m;
  if (var <= 0) return 0.0;
  return std::sqrt(var / static_cast<double>(count_ - 1)) * ppl();
}

void KlStats::add(double kl, bool same_top) {
  values_.push_back(kl);
  if (same_top) ++same_top_;
}

double KlStats::mean() const {
  if (values_.empty()) return 0.0;
  double s = 0;
  for (double v : values_) s += v;
  return s / static_cast<double>(values_.size());
}

double KlStats::mean_stderr() const {
  const size_t n = values_.size();
  if (n < 2) return 0.0;
  const double m = mean();
  double ss = 0;
  for (double v : values_) ss += (v - m) * (v - m);
  return std::sqrt(ss / static_cast<double>(n - 1) / static_cast<double>(n));
}

double KlStats::percentile(double q) const {
  if (values_.empty()) return 0.0;
  std::vector<double> sorted = values_;
  std::sort(sorted.begin(), sorted.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return sorted[lo] * (1 - frac) + sorted[hi] * frac;
}

double KlStats::top1_agreement() const {
  return values_.empty() ? 0.0
                         : static_cast<double>(same_top_) / static_cast<double>(values_.size());
}

double KlStats::top1_stderr() const {
  const size_t n = values_.size();
  if (n < 2) return 0.0;
  const double p = top1_agreement();
  return std::sqrt(p * (1 - p) / static_cast<double>(n - 1));
}

uint64_t hash_tokens(std::span<const int32_t> tokens) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a, over the little-endian bytes of each id
  for (int32_t t : tokens) {
    auto u = static_cast<uint32_t>(t);
    for (int i = 0; i < 4; ++i) {
      h ^= (u >> (8 * i)) & 0xFF;
      h *= 1099511628211ULL;
    }
  }
  return h;
}

LogitsWriter::LogitsWriter(std::filesystem::path path, const LogitsHeader& header)
    : path_(std::move(path)), tmp_(path_.string() + ".tmp"), row_(header.n_vocab) {
  out_.open(tmp_, std::ios::binary | std::ios::trunc);
  if (!out_) fail(ErrorKind::kIo, "{}: cannot create", tmp_.string());
  out_.write(kLogitsMagic, sizeof(kLogitsMagic));
  put(out_, header.n_vocab);
  put(out_, header.ctx);
  put(out_, header.first);
  put(out_, header.chunks);
  put(out_, header.tokens_hash);
}

LogitsWriter::~LogitsWriter() {
  if (!done_) {
    out_.close();
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);  // no partial file left behind
  }
}

void LogitsWriter::add_row(std::span<const double> log_probs) {
  LUZAO_CHECK(log_probs.size() == row_.size());
  for (size_t i = 0; i < row_.size(); ++i) {
    // Clamp to fp16's range: a probability below e^-65504 is zero for every purpose here.
    const double v = std::max(log_probs[i], -65504.0);
    row_[i] = fp32_to_fp16(static_cast<float>(v));
  }
  out_.write(reinterpret_cast<const char*>(row_.data()),
             static_cast<std::streamsize>(row_.size() * sizeof(uint16_t)));
  if (!out_) fail(ErrorKind::kIo, "{}: write failed", tmp_.string());
}

void LogitsWriter::finish() {
  out_.close();
  if (!out_) fail(ErrorKind::kIo, "{}: write failed", tmp_.string());
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec)
    fail(ErrorKind::kIo, "{}: cannot rename to {}: {}", tmp_.string(), path_.string(),
         ec.message());
  done_ = true;
}

LogitsReader::LogitsReader(const std::filesystem::path& path) : path_(path) {
  in_.open(path, std::ios::binary);
  if (!in_) fail(ErrorKind::kIo, "{}: cannot open", path.string());
  char magic[sizeof(kLogitsMagic)] = {};
  in_.read(magic, sizeof(magic));
  if (!in_ || std::memcmp(magic, kLogitsMagic, sizeof(magic)) != 0) {
    fail(ErrorKind::kBadFile, "{}: not a luzao logits file (written by perplexity --save-logits)",
         path.string());
  }
  if (!get(in_, &header_.n_vocab) || !get(in_, &header_.ctx) || !get(in_, &header_.first) ||
      !get(in_, &header_.chunks) || !get(in_, &header_.tokens_hash)) {
    fail(ErrorKind::kBadFile, "{}: truncated header", path.string());
  }
  if (header_.n_vocab == 0 || header_.first >= header_.ctx) {
    fail(ErrorKind::kBadFile, "{}: bad header (vocab {}, ctx {}, first {})", path.string(),
         header_.n_vocab, header_.ctx, header_.first);
  }
  row_.resize(header_.n_vocab);
}

void LogitsReader::next_row(std::span<double> out) {
  LUZAO_CHECK(out.size() == row_.size());
  in_.read(reinterpret_cast<char*>(row_.data()),
           static_cast<std::streamsize>(row_.size() * sizeof(uint16_t)));
  if (!in_)
    fail(ErrorKind::kBadFile, "{}: truncated (fewer rows than its header says)", path_.string());
  for (size_t i = 0; i < row_.size(); ++i) out[i] = fp16_to_fp32(row_[i]);
}

namespace {

// KL(base || model) at one position from the base log-probs (renormalised: fp16 storage drifts)
// and the model's log-probs; also whether both put their maximum on the same token.
double kl_at(std::span<double> base, std::span<const double> model, bool* same_top) {
  double max_b = -std::numeric_limits<double>::infinity();
  size_t arg_b = 0;
  size_t arg_m = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    if (base[i] > max_b) {
      max_b = base[i];
      arg_b = i;
    }
    if (model[i] > model[arg_m]) arg_m = i;
  }
  double z = 0;
  for (double b : base) z += std::exp(b - max_b);
  const double log_z = max_b + std::log(z);
  double kl = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    base[i] -= log_z;
    kl += std::exp(base[i]) * (base[i] - model[i]);
  }
  *same_top = arg_b == arg_m;
  return std::max(kl, 0.0);
}

}  // namespace

PerplexityReport run_perplexity(Engine& engine, std::span<const int32_t> tokens,
                                const PerplexityConfig& config) {
  const int ctx = config.ctx;
  if (ctx < 4) fail(ErrorKind::kInvalidArgument, "--ctx {} is too small (at least 4)", ctx);
  if (tokens.size() < 2 * static_cast<size_t>(ctx)) {
    fail(ErrorKind::kInvalidArgument,
         "the text has {} tokens; perplexity with --ctx {} needs at least {} (2 * ctx)",
         tokens.size(), ctx, 2 * ctx);
  }
  if (ctx > engine.ctx_size()) {
    fail(ErrorKind::kInvalidArgument, "--ctx {} exceeds the engine's context of {}", ctx,
         engine.ctx_size());
  }
  const int max_chunks = static_cast<int>(tokens.size() / static_cast<size_t>(ctx));
  int n_chunk = config.chunks < 0 ? max_chunks : std::min(config.chunks, max_chunks);
  const int batch = std::min({config.batch, ctx, engine.max_batch_tokens()});
  const int first = ctx / 2;
  const auto n_vocab = static_cast<size_t>(engine.hparams().n_vocab);
  const Tokenizer& tok = engine.tokenizer();
  const bool add_bos = tok.add_bos() && tok.bos() >= 0;
  const uint64_t text_hash = hash_tokens(tokens);

  PerplexityReport report;
  report.ctx = ctx;
  report.text_tokens = static_cast<int64_t>(tokens.size());
  std::optional<LogitsReader> base;
  if (!config.kl_base.empty()) {
    base.emplace(config.kl_base);
    const LogitsHeader& h = base->header();
    if (h.n_vocab != n_vocab || h.ctx != static_cast<uint32_t>(ctx) ||
        h.first != static_cast<uint32_t>(first) || h.tokens_hash != text_hash) {
      fail(ErrorKind::kBadFile,
           "{}: saved from another text, vocabulary or context (vocab {}, ctx {}; this run: vocab "
           "{}, ctx {}{})",
           config.kl_base.string(), h.n_vocab, h.ctx, n_vocab, ctx,
           h.tokens_hash != text_hash ? ", different tokens" : "");
    }
    n_chunk = std::min(n_chunk, static_cast<int>(h.chunks));
    report.kl.emplace();
    report.base_nll.emplace();
  }
  std::optional<LogitsWriter> writer;
  if (!config.save_logits.empty()) {
    writer.emplace(
        config.save_logits,
        LogitsHeader{static_cast<uint32_t>(n_vocab), static_cast<uint32_t>(ctx),
                     static_cast<uint32_t>(first), static_cast<uint32_t>(n_chunk), text_hash});
  }

  std::vector<float> logits(static_cast<size_t>(ctx) * n_vocab);
  std::vector<int32_t> chunk(static_cast<size_t>(ctx));
  std::vector<double> model_lp(n_vocab);
  std::vector<double> base_lp(n_vocab);
  PagedKvCache& kv = engine.kv_cache();
  for (int c = 0; c < n_chunk; ++c) {
    const size_t start = static_cast<size_t>(c) * static_cast<size_t>(ctx);
    std::copy_n(tokens.begin() + static_cast<std::ptrdiff_t>(start), ctx, chunk.begin());
    if (add_bos) chunk[0] = tok.bos();
    const int32_t seq = kv.open_sequence();
    try {
      for (int b = 0; b < ctx; b += batch) {
        const int len = std::min(batch, ctx - b);
        SequenceChunk sc;
        sc.seq = seq;
        sc.start_pos = b;
        sc.tokens = std::span<const int32_t>(chunk).subspan(static_cast<size_t>(b),
                                                            static_cast<size_t>(len));
        const bool scored = b + len > first;  // batches wholly in the first half need no logits
        sc.want_logits = scored;
        sc.all_logits = scored;
        std::span<float> out =
            scored ? std::span<float>(logits).subspan(static_cast<size_t>(b) * n_vocab,
                                                      static_cast<size_t>(len) * n_vocab)
                   : std::span<float>();
        engine.decode(std::span(&sc, 1), out);
      }
    } catch (...) {
      kv.close_sequence(seq);
      throw;
    }
    kv.close_sequence(seq);
    for (int pos = first; pos < ctx - 1; ++pos) {
      const std::span<const float> row(logits.data() + static_cast<size_t>(pos) * n_vocab, n_vocab);
      const int32_t target = tokens[start + static_cast<size_t>(pos) + 1];
      if (!writer && !base) {
        report.nll.add(token_nll(row, target));
        continue;
      }
      log_softmax(row, model_lp);
      report.nll.add(-model_lp[static_cast<size_t>(target)]);
      if (writer) writer->add_row(model_lp);
      if (base) {
        base->next_row(base_lp);
        bool same_top = false;
        const double kl = kl_at(base_lp, model_lp, &same_top);  // sets same_top first
        report.kl->add(kl, same_top);
        report.base_nll->add(-base_lp[static_cast<size_t>(target)]);  // renormalised by kl_at
      }
    }
    report.chunks = c + 1;
    if (config.on_chunk) config.on_chunk(c, n_chunk, report.nll.ppl());
  }
  if (writer) writer->finish();
  return report;
}

}  // namespace luzao::cli
