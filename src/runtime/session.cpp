// Session: one sequence's history, chunked prefill and the sampling loop.
#include <chrono>

#include "core/error.h"
#include "runtime/engine.h"

namespace luzao {

Session::Session(Engine& engine) : engine_(engine), seq_(engine.kv_cache().open_sequence()) {}

Session::~Session() {
  engine_.kv_cache().close_sequence(seq_);
}

std::span<const float> Session::feed(std::span<const int32_t> tokens) {
  if (tokens.empty()) return logits_;
  const size_t total = history_.size() + tokens.size();
  if (total > static_cast<size_t>(engine_.ctx_size())) {
    fail(ErrorKind::kOutOfMemory, "{} tokens do not fit the context of {} tokens", total,
         engine_.ctx_size());
  }
  logits_.resize(static_cast<size_t>(engine_.hparams().n_vocab));
  const size_t step = static_cast<size_t>(engine_.max_batch_tokens());
  for (size_t begin = 0; begin < tokens.size(); begin += step) {
    SequenceChunk chunk;
    chunk.seq = seq_;
    chunk.start_pos = static_cast<int32_t>(history_.size());
    chunk.tokens = tokens.subspan(begin, std::min(step, tokens.size() - begin));
    const bool last = begin + chunk.tokens.size() == tokens.size();
    chunk.want_logits = last;
    engine_.decode(std::span(&chunk, 1), last ? std::span<float>(logits_) : std::span<float>());
    history_.insert(history_.end(), chunk.tokens.begin(), chunk.tokens.end());
  }
  return logits_;
}

void Session::truncate(size_t n) {
  if (n >= history_.size()) return;
  history_.resize(n);
  engine_.kv_cache().truncate(seq_, static_cast<int32_t>(n));
}

GenerateResult Session::generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                                 const TokenCallback& on_token) {
  using Clock = std::chrono::steady_clock;
  GenerateResult result;
  result.prompt_tokens = static_cast<int32_t>(prompt.size());
  Sampler sampler(options.sampling);
  for (int32_t t : history_) sampler.accept(t);
  for (int32_t t : prompt) sampler.accept(t);

  const auto t0 = Clock::now();
  if (!prompt.empty()) feed(prompt);
  if (history_.empty())
    fail(ErrorKind::kInvalidArgument, "nothing to generate from: the prompt is empty");
  const auto t1 = Clock::now();
  result.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();

  const Tokenizer& tok = engine_.tokenizer();
  Utf8Stream text;
  result.reason = StopReason::kMaxTokens;
  for (int32_t i = 0; i < options.max_tokens; ++i) {
    const int32_t token = sampler.sample(logits_);
    if (tok.is_end_of_generation(token)) {
      result.reason = StopReason::kEndOfGeneration;
      break;
    }
    sampler.accept(token);
    result.tokens.push_back(token);
    const std::string piece = text.push(tok.token_to_piece(token, false));
    if (on_token && !on_token(token, piece)) {
      result.reason = StopReason::kCallback;
      break;
    }
    if (i + 1 == options.max_tokens) break;  // no forward for a token nobody will sample
    if (history_.size() + 1 > static_cast<size_t>(engine_.ctx_size())) {
      result.reason = StopReason::kContextFull;
      break;
    }
    const int32_t next[1] = {token};
    feed(next);
  }
  if (on_token) {
    const std::string rest = text.flush();
    if (!rest.empty()) on_token(-1, rest);
  }
  result.generate_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return result;
}

}  // namespace luzao
