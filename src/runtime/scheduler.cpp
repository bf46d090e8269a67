// Scheduler: the engine thread's step loop (admission, chunked prefill, batched decode, sampling,
// stop strings) and the thread-safe streams that carry results to callers.
#include "runtime/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace luzao {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "none";
}

bool GenerationStream::wait(GenerationUpdate& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!cv_.wait_for(lock, timeout, [this] { return has_news_; })) return false;
  out = pending_;
  pending_.text.clear();
  pending_.new_tokens = 0;
  has_news_ = false;
  return true;
}

void GenerationStream::cancel() {
  std::lock_guard lock(mutex_);
  cancelled_ = true;
}

bool GenerationStream::cancelled() const {
  std::lock_guard lock(mutex_);
  return cancelled_;
}

void GenerationStream::push(std::string_view text, int32_t tokens) {
  {
    std::lock_guard lock(mutex_);
    if (done_) return;
    pending_.text += text;
    pending_.new_tokens += tokens;
    pending_.completion_tokens += tokens;
    has_news_ = true;
  }
  cv_.notify_all();
}

void GenerationStream::finish(FinishReason reason, std::string error) {
  {
    std::lock_guard lock(mutex_);
    if (done_) return;
    done_ = true;
    pending_.finished = true;
    pending_.reason = reason;
    pending_.error = std::move(error);
    has_news_ = true;
  }
  cv_.notify_all();
}

// One admitted request: its KV sequence, tokens, sampler and text state.
struct Scheduler::Active {
  Queued q;
  int32_t seq = -1;
  int32_t n_past = 0;           // tokens whose K/V are written
  std::vector<int32_t> tokens;  // prompt, then generated tokens (the last one not yet fed)
  int32_t published_pages = 0;
  int32_t generated = 0;
  Sampler sampler;
  Utf8Stream utf8;
  std::string held;  // text that may be the start of a stop string
  bool done = false;

  explicit Active(Queued queued)
      : q(std::move(queued)), tokens(q.request.prompt), sampler(q.request.sampling) {}
};

Scheduler::Scheduler(Engine& engine, const SchedulerOptions& options)
    : engine_(engine), options_(options) {
  if (options.max_sequences <= 0 || options.max_queue < 0 || options.prefill_chunk <= 0) {
    fail(ErrorKind::kInvalidArgument,
         "scheduler: max_sequences and prefill_chunk must be positive, max_queue not negative");
  }
  options_.prefill_chunk = std::min(options_.prefill_chunk, engine.max_batch_tokens());
  if (options_.max_sequences > engine.max_batch_tokens()) {
    fail(ErrorKind::kInvalidArgument,
         "scheduler: {} parallel sequences exceed the batch of {} tokens", options_.max_sequences,
         engine.max_batch_tokens());
  }
  stats_.kv_pages_total = engine.kv_cache().total_pages();
  thread_ = std::thread([this] { run(); });
}

Scheduler::~Scheduler() {
  stop();
}

void Scheduler::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<GenerationStream> Scheduler::submit(GenerationRequest request) {
  const int32_t n = static_cast<int32_t>(request.prompt.size());
  if (n == 0) fail(ErrorKind::kInvalidArgument, "the prompt is empty");
  if (n > engine_.ctx_size()) {
    fail(ErrorKind::kInvalidArgument, "the prompt has {} tokens, more than the context size of {}",
         n, engine_.ctx_size());
  }
  if (request.max_tokens < 0) fail(ErrorKind::kInvalidArgument, "max_tokens must not be negative");
  const int32_t n_vocab = engine_.hparams().n_vocab;
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= n_vocab) {
      fail(ErrorKind::kInvalidArgument, "token id {} is outside the vocabulary (0..{})", t,
           n_vocab - 1);
    }
  }
  Sampler check(request.sampling);  // throws naming a bad sampling field
  auto stream = std::make_shared<GenerationStream>();
  stream->pending_.prompt_tokens = n;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || static_cast<int32_t>(queue_.size()) >= options_.max_queue) return nullptr;
    queue_.push_back({std::move(request), stream});
    stats_.queued = static_cast<int32_t>(queue_.size());
  }
  cv_.notify_all();
  return stream;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Scheduler::run() {
  std::vector<std::unique_ptr<Active>> active;
  std::deque<Queued> incoming;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !active.empty(); });
      if (stopping_) {
        for (Queued& q : queue_)
          q.stream->finish(FinishReason::kCancelled, "the server is stopping");
        queue_.clear();
        stats_.queued = 0;
        break;
      }
      const size_t room = static_cast<size_t>(options_.max_sequences) - active.size();
      while (incoming.size() < room && !queue_.empty()) {
        incoming.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      stats_.queued = static_cast<int32_t>(queue_.size());
    }
    admit(active, incoming);
    if (!active.empty()) step(active);
    std::erase_if(active, [](const std::unique_ptr<Active>& a) { return a->done; });
    const PagedKvCache& kv = engine_.kv_cache();
    std::lock_guard lock(mutex_);
    stats_.running = static_cast<int32_t>(active.size());
    stats_.kv_pages_cached = kv.cached_pages();
    stats_.kv_pages_used = kv.total_pages() - kv.free_pages();
  }
  for (auto& a : active) finish(*a, FinishReason::kCancelled, "the server is stopping");
}

void Scheduler::admit(std::vector<std::unique_ptr<Active>>& active, std::deque<Queued>& incoming) {
  PagedKvCache& kv = engine_.kv_cache();
  while (!incoming.empty()) {
    auto a = std::make_unique<Active>(std::move(incoming.front()));
    incoming.pop_front();
    if (a->q.stream->cancelled()) {
      a->q.stream->finish(FinishReason::kCancelled, {});
      continue;
    }
    for (int32_t t : a->q.request.prompt) a->sampler.accept(t);
    a->seq = kv.open_sequence();
    if (options_.prefix_cache) {
      // Keep at least one prompt token to feed: its logits start the generation.
      const auto& prompt = a->q.request.prompt;
      a->n_past = kv.attach_prefix(a->seq, prompt, static_cast<int32_t>(prompt.size()) - 1);
      a->published_pages = a->n_past / kv.config().page_size;
    }
    {
      std::lock_guard lock(a->q.stream->mutex_);
      a->q.stream->pending_.cached_tokens = a->n_past;
    }
    std::lock_guard lock(mutex_);
    stats_.prompt_tokens += a->q.request.prompt.size();
    stats_.cached_prompt_tokens += static_cast<uint64_t>(a->n_past);
    active.push_back(std::move(a));
  }
}

void Scheduler::step(std::vector<std::unique_ptr<Active>>& active) {
  for (auto& a : active) {
    if (a->q.stream->cancelled())
      finish(*a, FinishReason::kCancelled);
    else if (a->q.request.max_tokens == 0)
      finish(*a, FinishReason::kLength);
  }
  // Generating sequences first (one token each), then prompt chunks within the budget.
  chunks_.clear();
  chunk_owner_.clear();
  int32_t budget = engine_.max_batch_tokens();
  for (auto& a : active) {
    if (a->done || static_cast<size_t>(a->n_past) < a->q.request.prompt.size()) continue;
    SequenceChunk c;
    c.seq = a->seq;
    c.start_pos = a->n_past;
    c.tokens = std::span(a->tokens).subspan(static_cast<size_t>(a->n_past), 1);
    chunks_.push_back(c);
    chunk_owner_.push_back(a.get());
    --budget;
  }
  int32_t prefill = std::min(budget, options_.prefill_chunk);
  for (auto& a : active) {
    const int32_t left = static_cast<int32_t>(a->q.request.prompt.size()) - a->n_past;
    if (a->done || left <= 0 || prefill <= 0) continue;
    const int32_t take = std::min(left, prefill);
    SequenceChunk c;
    c.seq = a->seq;
    c.start_pos = a->n_past;
    c.tokens =
        std::span(a->tokens).subspan(static_cast<size_t>(a->n_past), static_cast<size_t>(take));
    c.want_logits = take == left;
    chunks_.push_back(c);
    chunk_owner_.push_back(a.get());
    prefill -= take;
  }
  if (chunks_.empty()) return;
  const size_t n_vocab = static_cast<size_t>(engine_.hparams().n_vocab);
  size_t outputs = 0;
  size_t fed = 0;
  for (const SequenceChunk& c : chunks_) {
    outputs += c.want_logits ? 1 : 0;
    fed += c.tokens.size();
  }
  logits_.resize(outputs * n_vocab);
  try {
    engine_.decode(chunks_, logits_);
  } catch (const std::exception& e) {
    for (Active* a : chunk_owner_) finish(*a, FinishReason::kError, e.what());
    return;
  }
  PagedKvCache& kv = engine_.kv_cache();
  const int32_t page = kv.config().page_size;
  size_t out = 0;
  uint64_t generated = 0;
  for (size_t i = 0; i < chunks_.size(); ++i) {
    Active& a = *chunk_owner_[i];
    a.n_past += static_cast<int32_t>(chunks_[i].tokens.size());
    if (options_.prefix_cache && a.n_past / page > a.published_pages) {
      kv.publish(a.seq, std::span(a.tokens).first(static_cast<size_t>(a.n_past)));
      a.published_pages = a.n_past / page;
    }
    if (!chunks_[i].want_logits) continue;
    const std::span<const float> row(logits_.data() + out * n_vocab, n_vocab);
    ++out;
    accept_token(a, a.sampler.sample(row));
    ++generated;
  }
  std::lock_guard lock(mutex_);
  ++stats_.steps;
  stats_.step_tokens += fed;
  stats_.generated_tokens += generated;
}

void Scheduler::accept_token(Active& a, int32_t token) {
  const Tokenizer& tok = engine_.tokenizer();
  if (tok.is_end_of_generation(token)) {
    finish(a, FinishReason::kStop);
    return;
  }
  a.sampler.accept(token);
  a.tokens.push_back(token);
  ++a.generated;
  a.held += a.utf8.push(tok.token_to_piece(token, false));
  const auto& stops = a.q.request.stop;
  size_t hit = std::string::npos;
  for (const std::string& s : stops) {
    if (!s.empty()) hit = std::min(hit, a.held.find(s));
  }
  if (hit != std::string::npos) {
    a.q.stream->push(std::string_view(a.held).substr(0, hit), 1);
    a.held.clear();
    a.utf8.flush();  // bytes after the stop string go with it
    finish(a, FinishReason::kStop);
    return;
  }
  // Hold back the longest tail that could still grow into a stop string.
  size_t keep = 0;
  for (const std::string& s : stops) {
    for (size_t len = std::min(s.size() - 1, a.held.size()); len > keep; --len) {
      if (a.held.compare(a.held.size() - len, len, s, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  a.q.stream->push(std::string_view(a.held).substr(0, a.held.size() - keep), 1);
  a.held.erase(0, a.held.size() - keep);
  if (a.generated >= a.q.request.max_tokens ||
      a.tokens.size() >= static_cast<size_t>(engine_.ctx_size())) {
    finish(a, FinishReason::kLength);
  }
}

void Scheduler::finish(Active& a, FinishReason reason, std::string error) {
  if (a.done) return;
  a.done = true;
  if (reason == FinishReason::kLength || reason == FinishReason::kStop) {
    a.held += a.utf8.flush();  // empty after a stop string
    if (!a.held.empty()) a.q.stream->push(a.held, 0);
  }
  a.held.clear();
  if (a.seq >= 0) engine_.kv_cache().close_sequence(a.seq);
  a.seq = -1;
  a.q.stream->finish(reason, std::move(error));
}

}  // namespace luzao
