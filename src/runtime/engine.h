// The runtime's front door: an Engine owns one loaded model (file, tokenizer, device, weights,
// paged KV cache); Sessions are sequences in it. Engine::decode advances several sequences in one
// batched forward, which is the hook continuous batching builds on.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/log.h"
#include "format/gguf.h"
#include "model/model.h"
#include "runtime/kv_cache.h"
#include "sampling/sampler.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace luzao {

struct EngineOptions {
  std::filesystem::path model_path;
  std::string device = "cpu";
  // When set, the layers are split over these devices instead ("cpu,opencl:0", with ratios
  // "cpu:0:3,opencl:0:1"; see runtime/split.h); `device` is then ignored. Equal layer counts
  // unless ratios are given; the embedding runs on the first device, the output head on the last,
  // each device keeps its own layers' weights and KV cache.
  std::string split;
  int threads = 0;               // 0: all hardware threads
  int ctx_size = 0;              // tokens per sequence; 0: min(training context, 4096)
  int max_batch_tokens = 512;    // tokens per forward (prompts are prefilled in chunks)
  int max_sequences = 1;         // sequences that may hold KV memory at once
  DType kv_dtype = DType::kF16;  // F16 (as llama.cpp), F32 or Q8_0
  std::string chat_template;     // Jinja source replacing the model's tokenizer.chat_template
  Logger logger;
};

// A contiguous range of layers and the device that runs it.
struct LayerPlacement {
  std::string device;  // DeviceInfo::name
  int32_t first_layer = 0;
  int32_t n_layers = 0;
};

// Part of one sequence that a decode step feeds: `tokens` at positions start_pos, start_pos+1...
struct SequenceChunk {
  int32_t seq = 0;
  int32_t start_pos = 0;
  std::span<const int32_t> tokens;
  bool want_logits = true;  // logits of the chunk's last token
  bool all_logits = false;  // logits of every token of the chunk (perplexity); implies want_logits
};

class Engine {
 public:
  // Loads the model. Throws Error naming the file and the problem.
  explicit Engine(const EngineOptions& options);

  const GgufFile& file() const { return *file_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const HParams& hparams() const { return model_->hparams(); }
  Model& model() { return *model_; }
  PagedKvCache& kv_cache() { return *kv_; }
  int32_t ctx_size() const { return ctx_size_; }
  int32_t max_batch_tokens() const { return max_batch_tokens_; }
  const Logger& logger() const { return logger_; }
  // Where the layers run, in pipeline order: one entry per device (one entry unless split).
  const std::vector<LayerPlacement>& placement() const { return placement_; }
  // The placement in words: "cpu" or "cpu[0-14]+opencl:0[15-29]".
  std::string placement_text() const;

  // One forward over all chunks (total tokens <= max_batch_tokens). Writes n_vocab logits per
  // chunk with want_logits (per token with all_logits), in order. Reserves KV pages; throws
  // Error(kOutOfMemory) past capacity and Error(kInvalidArgument) for a token id outside the
  // vocabulary.
  void decode(std::span<const SequenceChunk> chunks, std::span<float> logits);

  // The model's chat prompt for `messages`, rendered by its Jinja chat template (or the one given
  // in EngineOptions); plain ChatML when the model has none. Throws Error naming the template
  // line when the template cannot be rendered.
  std::string chat_prompt(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  std::string chat_prompt(std::span<const ChatMessage> messages,
                          const ChatRenderOptions& options) const;

 private:
  Logger logger_;
  std::shared_ptr<const GgufFile> file_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Device> device_;
  std::vector<std::unique_ptr<Device>> split_devices_;  // the 2nd... devices of a split
  std::unique_ptr<Model> model_;
  std::unique_ptr<PagedKvCache> kv_;
  std::optional<ChatTemplate> chat_template_;
  std::string chat_template_error_;  // why the model's template could not be parsed
  int32_t ctx_size_ = 0;
  int32_t max_batch_tokens_ = 0;
  std::vector<LayerPlacement> placement_;
  // Reused between decode calls (no allocation per token once warm).
  std::vector<int32_t> tokens_, positions_, seq_rows_, slots_, outputs_;
};

enum class StopReason { kEndOfGeneration, kMaxTokens, kContextFull, kCallback };

struct GenerateOptions {
  int32_t max_tokens = 128;
  SamplingParams sampling;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated, without the end-of-generation token
  StopReason reason = StopReason::kMaxTokens;
  int32_t prompt_tokens = 0;
  double prompt_seconds = 0;
  double generate_seconds = 0;
};

// Called with each generated token and the text it completes (UTF-8 safe, may be empty);
// returning false stops generation.
using TokenCallback = std::function<bool(int32_t token, std::string_view text)>;

// One sequence in an engine's KV cache. Not thread-safe.
class Session {
 public:
  explicit Session(Engine& engine);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Appends tokens (prefilled in chunks) and returns the logits after the last one.
  std::span<const float> feed(std::span<const int32_t> tokens);
  // Forgets everything after the first `n` tokens of history.
  void truncate(size_t n);
  const std::vector<int32_t>& history() const { return history_; }
  // Feeds `prompt` after what the session already holds, then samples up to max_tokens.
  GenerateResult generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                          const TokenCallback& on_token = {});
  std::span<const float> last_logits() const { return logits_; }

 private:
  Engine& engine_;
  int32_t seq_ = -1;
  std::vector<int32_t> history_;
  std::vector<float> logits_;
};

}  // namespace luzao
