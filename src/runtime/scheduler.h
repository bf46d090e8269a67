// Continuous batching: one engine thread advances every active sequence with one Engine::decode
// per step (a token for each generating sequence plus a chunk of prompt for those prefilling);
// requests join between steps and queue past capacity. Streams carry the text back to callers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
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
};

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
  void push(std::string_view text, int32_t tokens);
  void finish(FinishReason reason, std::string error);

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  GenerationUpdate pending_;
  bool has_news_ = false;
  bool cancelled_ = false;
  bool done_ = false;
};

struct SchedulerOptions {
  int32_t max_sequences = 4;    // sequences decoded together (<= EngineOptions.max_sequences)
  int32_t max_queue = 64;       // requests waiting for a slot; submit refuses beyond
  int32_t prefill_chunk = 256;  // prompt tokens fed per step across prefilling sequences
  bool prefix_cache = true;     // reuse published KV pages of identical prompt prefixes
};

struct SchedulerStats {
  int32_t queued = 0;
  int32_t running = 0;
  int32_t kv_pages_total = 0;
  int32_t kv_pages_used = 0;    // held by sequences
  int32_t kv_pages_cached = 0;  // published prefixes nobody holds
  uint64_t steps = 0;
  uint64_t step_tokens = 0;    // tokens fed over all steps
  uint64_t prompt_tokens = 0;  // admitted prompt tokens
  uint64_t cached_prompt_tokens = 0;
  uint64_t generated_tokens = 0;
};

class Scheduler {
 public:
  // Starts the engine thread; from now on only that thread touches `engine` (which must outlive
  // the scheduler). Throws Error(kInvalidArgument) for non-positive limits.
  Scheduler(Engine& engine, const SchedulerOptions& options);
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Thread-safe. Queues the request and returns its stream, or nullptr when the queue is full.
  // Throws Error(kInvalidArgument) for an empty prompt, one longer than the context, a token id
  // outside the vocabulary, bad sampling parameters or max_tokens < 0.
  std::shared_ptr<GenerationStream> submit(GenerationRequest request);
  // Thread-safe snapshot.
  SchedulerStats stats() const;
  // Finishes every request with kCancelled and joins the engine thread. Idempotent.
  void stop();

 private:
  struct Active;
  struct Queued {
    GenerationRequest request;
    std::shared_ptr<GenerationStream> stream;
  };
  void run();
  void admit(std::vector<std::unique_ptr<Active>>& active, std::deque<Queued>& incoming);
  void step(std::vector<std::unique_ptr<Active>>& active);
  void accept_token(Active& a, int32_t token);
  void finish(Active& a, FinishReason reason, std::string error = {});

  Engine& engine_;
  SchedulerOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Queued> queue_;
  bool stopping_ = false;
  SchedulerStats stats_;
  std::vector<float> logits_;
  std::vector<SequenceChunk> chunks_;
  std::vector<Active*> chunk_owner_;
  std::thread thread_;
};

}  // namespace luzao
