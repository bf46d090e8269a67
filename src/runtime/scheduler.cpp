// Scheduler: the engine thread's step loop (admission, chunked prefill, batched decode, sampling,
// stop strings), evacuation and resumption of requests, and the thread-safe result streams.
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

void GenerationStream::moved() {
  std::lock_guard lock(mutex_);
  ++pending_.moves;
}

void fail_migrant(Migrant& migrant, std::string error) {
  if (migrant.stream) migrant.stream->finish(FinishReason::kError, std::move(error));
}

namespace {

// Decode failures that belong to the requests (a bad token, the KV cache full), not the device.
bool is_request_error(const std::exception& e) {
  const auto* err = dynamic_cast<const Error*>(&e);
  return err != nullptr &&
         (err->kind() == ErrorKind::kInvalidArgument || err->kind() == ErrorKind::kOutOfMemory);
}

}  // namespace

// One admitted request: its portable state plus its KV sequence here.
struct Scheduler::Active {
  Migrant m;
  int32_t seq = -1;
  int32_t n_past = 0;       // tokens whose K/V are written
  int32_t prefill_len = 0;  // tokens fed as prompt here (a moved request: its whole history)
  int32_t published_pages = 0;
  bool done = false;

  explicit Active(Migrant migrant) : m(std::move(migrant)) {}
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

bool Scheduler::stop_within(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  stopping_ = true;
  cv_.notify_all();
  if (!exited_cv_.wait_for(lock, timeout, [this] { return exited_; })) {
    lock.unlock();
    if (thread_.joinable()) thread_.detach();
    return false;
  }
  lock.unlock();
  if (thread_.joinable()) thread_.join();
  return true;
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
    if (stopping_ || withdrawn_ || static_cast<int32_t>(queue_.size()) >= options_.max_queue)
      return nullptr;
    Migrant m;
    m.request = std::move(request);
    m.stream = stream;
    queue_.push_back(std::move(m));
    stats_.queued = static_cast<int32_t>(queue_.size() + resumed_.size());
  }
  cv_.notify_all();
  return stream;
}

bool Scheduler::resume(Migrant& migrant) {
  const std::vector<int32_t>& history =
      migrant.tokens.empty() ? migrant.request.prompt : migrant.tokens;
  if (history.empty() || static_cast<int32_t>(history.size()) >= engine_.ctx_size() + 1) {
    return false;
  }
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || withdrawn_) return false;
    resumed_.push_back(std::move(migrant));
    ++stats_.resumed;
    stats_.queued = static_cast<int32_t>(queue_.size() + resumed_.size());
  }
  cv_.notify_all();
  return true;
}

std::vector<Migrant> Scheduler::evacuate() {
  std::vector<Migrant> out;
  {
    std::lock_guard lock(mutex_);
    if (withdrawn_) return out;
    withdrawn_ = true;
    const auto now = SteadyClock::now();
    // Copies, not moves: a decode step may still be reading the tokens of the running ones.
    for (const auto& a : active_) {
      if (a->done) continue;
      out.push_back(a->m);
      a->done = true;  // the engine thread must not touch its stream any more
    }
    for (std::deque<Migrant>* q : {&resumed_, &queue_}) {
      for (Migrant& m : *q) out.push_back(std::move(m));
      q->clear();
    }
    for (Migrant& m : out) {
      ++m.moves;
      m.moved_at = now;
    }
    stats_.evacuated += out.size();
    stats_.withdrawn = true;
    stats_.queued = 0;
    stats_.running = 0;
  }
  for (Migrant& m : out) {
    if (m.stream) m.stream->moved();
  }
  cv_.notify_all();
  return out;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(mutex_);
  SchedulerStats s = stats_;
  const int32_t ctx = engine_.ctx_size();
  const auto add_waiting = [&](const Migrant& m) {
    const size_t history = m.tokens.empty() ? m.request.prompt.size() : m.tokens.size();
    s.pending_prompt_tokens += static_cast<int64_t>(history);
    s.pending_output_tokens += std::max(
        0, std::min(m.request.max_tokens - m.generated, ctx - static_cast<int32_t>(history)));
  };
  for (const Migrant& m : resumed_) add_waiting(m);
  for (const Migrant& m : queue_) add_waiting(m);
  for (const auto& a : active_) {
    if (a->done) continue;
    s.pending_prompt_tokens += std::max(0, a->prefill_len - a->n_past);
    s.pending_output_tokens +=
        std::max(0, std::min(a->m.request.max_tokens - a->m.generated,
                             ctx - static_cast<int32_t>(a->m.tokens.size())));
  }
  return s;
}

void Scheduler::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    cv_.wait(lock, [&] {
      return stopping_ || withdrawn_ || !queue_.empty() || !resumed_.empty() || !active_.empty();
    });
    if (withdrawn_) break;  // evacuate() took every request
    if (stopping_) {
      for (std::deque<Migrant>* q : {&resumed_, &queue_}) {
        for (Migrant& m : *q) m.stream->finish(FinishReason::kCancelled, "the server is stopping");
        q->clear();
      }
      stats_.queued = 0;
      for (auto& a : active_) finish(*a, FinishReason::kCancelled, "the server is stopping");
      break;
    }
    admit(lock);
    if (!active_.empty()) step(lock);
    if (withdrawn_) break;
    std::erase_if(active_, [this](const std::unique_ptr<Active>& a) {
      if (a->done && a->seq >= 0) engine_.kv_cache().close_sequence(a->seq);
      return a->done;
    });
    const PagedKvCache& kv = engine_.kv_cache();
    stats_.running = static_cast<int32_t>(active_.size());
    stats_.kv_pages_cached = kv.cached_pages();
    stats_.kv_pages_used = kv.total_pages() - kv.free_pages();
  }
  // Evacuated or stopping: release the KV sequences (their requests are gone or finished).
  for (auto& a : active_) {
    if (a->seq >= 0) engine_.kv_cache().close_sequence(a->seq);
    a->seq = -1;
  }
  active_.clear();
  stats_.running = 0;
  exited_ = true;
  exited_cv_.notify_all();
}

void Scheduler::admit(std::unique_lock<std::mutex>&) {
  PagedKvCache& kv = engine_.kv_cache();
  while (active_.size() < static_cast<size_t>(options_.max_sequences) &&
         (!resumed_.empty() || !queue_.empty())) {
    std::deque<Migrant>& from = resumed_.empty() ? queue_ : resumed_;
    auto a = std::make_unique<Active>(std::move(from.front()));
    from.pop_front();
    if (a->m.stream->cancelled()) {
      a->m.stream->finish(FinishReason::kCancelled, {});
      ++stats_.cancelled;
      continue;
    }
    Migrant& m = a->m;
    if (m.tokens.empty()) m.tokens = m.request.prompt;
    if (!m.sampler) {
      m.sampler.emplace(m.request.sampling);
      for (int32_t t : m.request.prompt) m.sampler->accept(t);
    }
    a->prefill_len = static_cast<int32_t>(m.tokens.size());
    a->seq = kv.open_sequence();
    if (options_.prefix_cache) {
      // Keep at least one token to feed: its logits give the next token.
      a->n_past = kv.attach_prefix(a->seq, m.tokens, a->prefill_len - 1);
      a->published_pages = a->n_past / kv.config().page_size;
    }
    if (m.moves == 0) {
      std::lock_guard stream_lock(m.stream->mutex_);
      m.stream->pending_.cached_tokens = a->n_past;
    }
    stats_.prompt_tokens += static_cast<uint64_t>(a->prefill_len);
    stats_.cached_prompt_tokens += static_cast<uint64_t>(a->n_past);
    active_.push_back(std::move(a));
  }
  stats_.queued = static_cast<int32_t>(queue_.size() + resumed_.size());
}

void Scheduler::step(std::unique_lock<std::mutex>& lock) {
  for (auto& a : active_) {
    if (a->done) continue;
    if (a->m.stream->cancelled())
      finish(*a, FinishReason::kCancelled);
    else if (a->m.generated >= a->m.request.max_tokens)
      finish(*a, FinishReason::kLength);
  }
  // Generating sequences first (one token each), then prompt chunks within the budget.
  chunks_.clear();
  chunk_owner_.clear();
  int32_t budget = engine_.max_batch_tokens();
  for (auto& a : active_) {
    if (a->done || a->n_past < a->prefill_len) continue;
    SequenceChunk c;
    c.seq = a->seq;
    c.start_pos = a->n_past;
    c.tokens = std::span(a->m.tokens).subspan(static_cast<size_t>(a->n_past), 1);
    chunks_.push_back(c);
    chunk_owner_.push_back(a.get());
    --budget;
  }
  int32_t prefill = std::min(budget, options_.prefill_chunk);
  uint64_t prefill_fed = 0;
  for (auto& a : active_) {
    const int32_t left = a->prefill_len - a->n_past;
    if (a->done || left <= 0 || prefill <= 0) continue;
    const int32_t take = std::min(left, prefill);
    SequenceChunk c;
    c.seq = a->seq;
    c.start_pos = a->n_past;
    c.tokens =
        std::span(a->m.tokens).subspan(static_cast<size_t>(a->n_past), static_cast<size_t>(take));
    c.want_logits = take == left;
    chunks_.push_back(c);
    chunk_owner_.push_back(a.get());
    prefill -= take;
    prefill_fed += static_cast<uint64_t>(take);
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
  const auto started = SteadyClock::now();
  stats_.decode_started = started;
  // The decode runs unlocked: evacuate() may take the requests meanwhile (copying their state;
  // the token vectors the chunks point into stay where they are).
  lock.unlock();
  std::string fault;
  bool request_error = false;
  try {
    if (options_.before_decode) options_.before_decode();
    engine_.decode(chunks_, logits_);
  } catch (const std::exception& e) {
    fault = e.what();
    if (fault.empty()) fault = "decode failed";
    request_error = is_request_error(e);
  }
  if (!fault.empty() && !request_error && options_.on_fault) {
    options_.on_fault(fault);  // expected to evacuate() this scheduler
  }
  lock.lock();
  stats_.decode_started.reset();
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
  stats_.busy_seconds += seconds;
  if (withdrawn_) return;  // the requests left with their state as it was before this step
  if (!fault.empty()) {
    for (Active* a : chunk_owner_) finish(*a, FinishReason::kError, fault);
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
      kv.publish(a.seq, std::span(a.m.tokens).first(static_cast<size_t>(a.n_past)));
      a.published_pages = a.n_past / page;
    }
    if (!chunks_[i].want_logits) continue;
    const std::span<const float> row(logits_.data() + out * n_vocab, n_vocab);
    ++out;
    if (a.done) continue;
    accept_token(a, a.m.sampler->sample(row));
    ++generated;
  }
  ++stats_.steps;
  stats_.step_tokens += fed;
  stats_.generated_tokens += generated;
  measure(seconds, prefill_fed, generated);
}

void Scheduler::measure(double seconds, uint64_t prefill_tokens, uint64_t generated) {
  if (seconds <= 0) return;
  constexpr double kWeight = 0.2;  // exponential moving average over recent steps
  const auto blend = [](double& avg, double sample) {
    avg = avg == 0 ? sample : (1 - kWeight) * avg + kWeight * sample;
  };
  if (prefill_tokens > 0) blend(stats_.prefill_tps, static_cast<double>(prefill_tokens) / seconds);
  if (generated > 0 && prefill_tokens == 0) {
    blend(stats_.decode_tps, static_cast<double>(generated) / seconds);
  }
}

void Scheduler::accept_token(Active& a, int32_t token) {
  Migrant& m = a.m;
  if (m.moved_at) {
    if (options_.on_resumed) {
      options_.on_resumed(std::chrono::duration<double>(SteadyClock::now() - *m.moved_at).count());
    }
    m.moved_at.reset();
  }
  const Tokenizer& tok = engine_.tokenizer();
  if (tok.is_end_of_generation(token)) {
    finish(a, FinishReason::kStop);
    return;
  }
  m.sampler->accept(token);
  m.tokens.push_back(token);
  ++m.generated;
  m.held += m.utf8.push(tok.token_to_piece(token, false));
  const auto& stops = m.request.stop;
  size_t hit = std::string::npos;
  for (const std::string& s : stops) {
    if (!s.empty()) hit = std::min(hit, m.held.find(s));
  }
  if (hit != std::string::npos) {
    m.stream->push(std::string_view(m.held).substr(0, hit), 1);
    m.held.clear();
    m.utf8.flush();  // bytes after the stop string go with it
    finish(a, FinishReason::kStop);
    return;
  }
  // Hold back the longest tail that could still grow into a stop string.
  size_t keep = 0;
  for (const std::string& s : stops) {
    for (size_t len = std::min(s.size() - 1, m.held.size()); len > keep; --len) {
      if (m.held.compare(m.held.size() - len, len, s, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  m.stream->push(std::string_view(m.held).substr(0, m.held.size() - keep), 1);
  m.held.erase(0, m.held.size() - keep);
  if (m.generated >= m.request.max_tokens ||
      m.tokens.size() >= static_cast<size_t>(engine_.ctx_size())) {
    finish(a, FinishReason::kLength);
  }
}

void Scheduler::finish(Active& a, FinishReason reason, std::string error) {
  if (a.done) return;
  a.done = true;
  Migrant& m = a.m;
  if (reason == FinishReason::kLength || reason == FinishReason::kStop) {
    m.held += m.utf8.flush();  // empty after a stop string
    if (!m.held.empty()) m.stream->push(m.held, 0);
    ++stats_.finished;
  } else if (reason == FinishReason::kCancelled) {
    ++stats_.cancelled;
  } else if (reason == FinishReason::kError) {
    ++stats_.errors;
  }
  m.held.clear();
  if (a.seq >= 0) engine_.kv_cache().close_sequence(a.seq);  // free before the caller hears
  a.seq = -1;
  m.stream->finish(reason, std::move(error));
}

}  // namespace luzao
