// Continuous batching: one engine thread advances every active sequence with one Engine::decode
// per step (a token for each generating sequence plus a chunk of prompt for those prefilling);
// requests join between steps and queue past capacity. Streams carry the text back to callers.
// A scheduler can be evacuated (its device withdrawn or failed): every request leaves with its
// portable state (Migrant) and continues on another scheduler, its stream untouched.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/engine.h"

namespace luzao {

struct GenerationRequest {
  std::vector<int32_t> prompt;  // not empty, at most the engine's context size
  int32_t max_tokens = 16;      // generated tokens at most (the context may end it sooner)
  SamplingParams sampling;
  std::vector<std::string> stop;  // generation ends before the first occurrence of any of these
};

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason reason);  // "stop", "length", "cancelled", "error"

// What a stream delivered since the previous wait().
struct GenerationUpdate {
  std::string text;        // UTF-8, complete characters, stop strings removed
  int32_t new_tokens = 0;  // tokens generated since the previous update
  bool finished = false;   // the last update of the stream
  FinishReason reason = FinishReason::kNone;
  std::string error;          // set with kError
  int32_t prompt_tokens = 0;  // filled in every update
  int32_t cached_tokens = 0;  // prompt tokens whose KV came from the shared prefix cache
  int32_t completion_tokens = 0;
  int32_t moves = 0;  // times the request moved to another device so far
};

struct Migrant;

// The caller's end of one request. Thread-safe: the engine thread writes, a caller reads.
class GenerationStream {
 public:
  // Waits up to `timeout` for news. Returns true with `out` holding everything since the last
  // call (finished set on the final one); false on timeout. Nothing arrives after `finished`.
  bool wait(GenerationUpdate& out, std::chrono::milliseconds timeout);
  // Asks the engine thread to stop this request (it finishes with kCancelled at the next step).
  void cancel();
  bool cancelled() const;

 private:
  friend class Scheduler;
  friend void fail_migrant(Migrant& migrant, std::string error);
  void push(std::string_view text, int32_t tokens);
  void finish(FinishReason reason, std::string error);
  void moved();

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  GenerationUpdate pending_;
  bool has_news_ = false;
  bool cancelled_ = false;
  bool done_ = false;
};

using SteadyClock = std::chrono::steady_clock;

// Everything needed to continue a request on another scheduler (of the same model): the request,
// the tokens so far, the sampler with its RNG state, the text state (partial UTF-8, text held
// back for stop strings) and the caller's stream. Copyable.
struct Migrant {
  GenerationRequest request;
  std::shared_ptr<GenerationStream> stream;
  std::vector<int32_t> tokens;     // prompt + generated so far; empty: never admitted
  int32_t generated = 0;           // tokens generated so far (counts toward max_tokens)
  std::optional<Sampler> sampler;  // empty: never admitted (a fresh one is made)
  Utf8Stream utf8;
  std::string held;
  int32_t moves = 0;                                // how often it has moved
  std::optional<SteadyClock::time_point> moved_at;  // when it last left a scheduler
};

// Ends a migrant's stream with kError (no scheduler could take it).
void fail_migrant(Migrant& migrant, std::string error);

struct SchedulerOptions {
  int32_t max_sequences = 4;    // sequences decoded together (<= EngineOptions.max_sequences)
  int32_t max_queue = 64;       // requests waiting for a slot; submit refuses beyond
  int32_t prefill_chunk = 256;  // prompt tokens fed per step across prefilling sequences
  bool prefix_cache = true;     // reuse published KV pages of identical prompt prefixes
  // Called on the engine thread, with no lock held, when a decode step fails with a device error
  // (any exception other than Error kInvalidArgument / kOutOfMemory, which fail only the
  // requests of that step). The callback is expected to evacuate() this scheduler; if it does
  // not (or is not set), the requests of the failed step finish with kError.
  std::function<void(const std::string& error)> on_fault;
  // Called on the engine thread (scheduler lock held: keep it short) when a moved request
  // produces its first token here, with the seconds since it left its previous scheduler.
  std::function<void(double seconds)> on_resumed;
  // Testing hook: called on the engine thread before each decode, no lock held. It may throw
  // (a device error) or block (a hung device).
  std::function<void()> before_decode;
};

struct SchedulerStats {
  int32_t queued = 0;
  int32_t running = 0;
  int32_t kv_pages_total = 0;
  int32_t kv_pages_used = 0;    // held by sequences
  int32_t kv_pages_cached = 0;  // published prefixes nobody holds
  uint64_t steps = 0;
  uint64_t step_tokens = 0;    // tokens fed over all steps
  uint64_t prompt_tokens = 0;  // admitted prompt tokens (a moved request's history counts again)
  uint64_t cached_prompt_tokens = 0;
  uint64_t generated_tokens = 0;
  uint64_t finished = 0;              // requests that ended here with stop or length
  uint64_t cancelled = 0;             // requests that ended here with kCancelled
  uint64_t errors = 0;                // requests that ended here with kError
  uint64_t resumed = 0;               // requests moved in from another scheduler
  uint64_t evacuated = 0;             // requests handed out by evacuate()
  int64_t pending_prompt_tokens = 0;  // queued and running tokens still to prefill
  int64_t pending_output_tokens = 0;  // tokens still to generate (max_tokens bound)
  double prefill_tps = 0;   // recent prompt tokens per second of decode time (0: not measured)
  double decode_tps = 0;    // recent generated tokens per second of decode time (0: not measured)
  double busy_seconds = 0;  // total time spent in decode steps
  bool withdrawn = false;   // evacuate() was called
  // When the decode step now running began (empty while none runs): a watchdog's input.
  std::optional<SteadyClock::time_point> decode_started;
};

class Scheduler {
 public:
  // Starts the engine thread; from now on only that thread touches `engine` (which must outlive
  // the scheduler). Throws Error(kInvalidArgument) for non-positive limits.
  Scheduler(Engine& engine, const SchedulerOptions& options);
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Thread-safe. Queues the request and returns its stream, or nullptr when the queue is full
  // or the scheduler is stopping or evacuated. Throws Error(kInvalidArgument) for an empty
  // prompt, one longer than the context, a token id outside the vocabulary, bad sampling
  // parameters or max_tokens < 0.
  std::shared_ptr<GenerationStream> submit(GenerationRequest request);
  // Thread-safe. Continues a request taken from another scheduler: its history is prefilled here
  // and generation goes on where it stopped. It is admitted before new arrivals and the queue
  // limit does not apply. Returns false (leaving `migrant` untouched) when stopping or
  // evacuated, or when its history does not fit this engine's context.
  bool resume(Migrant& migrant);
  // Thread-safe, from any thread (the on_fault callback included); returns at once even while a
  // decode step hangs. Stops taking work and hands out every queued and running request, queued
  // ones last, in arrival order; the engine thread drops whatever its current step computes and
  // exits. Nothing is pushed to those streams from here on. Idempotent (later calls return none).
  std::vector<Migrant> evacuate();
  // Thread-safe snapshot.
  SchedulerStats stats() const;
  // Finishes every request with kCancelled and joins the engine thread. Idempotent.
  void stop();
  // stop() that gives up after `timeout` when the engine thread is stuck in a decode step; the
  // thread is then detached and this object and its engine must never be destroyed (leak them).
  // Returns whether the thread ended.
  bool stop_within(std::chrono::milliseconds timeout);

 private:
  struct Active;
  void run();
  void admit(std::unique_lock<std::mutex>& lock);
  void step(std::unique_lock<std::mutex>& lock);
  void accept_token(Active& a, int32_t token);
  void finish(Active& a, FinishReason reason, std::string error = {});
  void measure(double seconds, uint64_t prefill_tokens, uint64_t generated);

  Engine& engine_;
  SchedulerOptions options_;
  mutable std::mutex mutex_;  // guards everything below except the decode buffers
  std::condition_variable cv_;
  std::condition_variable exited_cv_;
  std::deque<Migrant> resumed_;  // moved-in requests, admitted first
  std::deque<Migrant> queue_;
  std::vector<std::unique_ptr<Active>> active_;
  bool stopping_ = false;
  bool withdrawn_ = false;
  bool exited_ = false;
  SchedulerStats stats_;
  // Engine thread only.
  std::vector<float> logits_;
  std::vector<SequenceChunk> chunks_;
  std::vector<Active*> chunk_owner_;
  std::thread thread_;
};

}  // namespace luzao
