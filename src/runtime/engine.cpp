// Engine: loading a model and batched decode steps over the paged KV cache.
#include "runtime/engine.h"

#include <algorithm>

#include "backend/registry.h"
#include "core/error.h"

namespace luzao {

Engine::Engine(const EngineOptions& options) : logger_(options.logger) {
  if (options.max_batch_tokens <= 0 || options.max_sequences <= 0 || options.ctx_size < 0) {
    fail(ErrorKind::kInvalidArgument, "batch size, sequence count and context size must be positive");
  }
  file_ = std::make_shared<const GgufFile>(GgufFile::open(options.model_path));
  tokenizer_ = Tokenizer::from_gguf(*file_);
  DeviceOptions device_options;
  device_options.threads = options.threads;
  device_ = open_device(options.device, device_options);
  model_ = load_model(file_, *device_);
  const HParams& hp = model_->hparams();
  if (tokenizer_->n_vocab() > hp.n_vocab) {
    fail(ErrorKind::kBadFile, "{}: the vocabulary has {} tokens but token_embd.weight only {} rows",
         file_->name(), tokenizer_->n_vocab(), hp.n_vocab);
  }
  ctx_size_ = options.ctx_size > 0 ? options.ctx_size : std::min(hp.n_ctx_train, 4096);
  max_batch_tokens_ = options.max_batch_tokens;
  KvCacheConfig kv;
  kv.n_layer = hp.n_layer;
  kv.kv_dim = hp.kv_dim();
  kv.page_size = 16;
  kv.max_seq_len = ctx_size_;
  kv.n_pages = options.max_sequences * ((ctx_size_ + kv.page_size - 1) / kv.page_size);
  kv.dtype = options.kv_dtype;
  kv_ = std::make_unique<PagedKvCache>(*device_, kv);
  logger_.info("loaded {} ({}, {} layers, {} dims, vocab {}) on {}; context {} tokens",
               options.model_path.string(), hp.architecture, hp.n_layer, hp.n_embd, hp.n_vocab,
               device_->info().name, ctx_size_);
}

void Engine::decode(std::span<const SequenceChunk> chunks, std::span<float> logits) {
  tokens_.clear();
  positions_.clear();
  seq_rows_.clear();
  slots_.clear();
  outputs_.clear();
  const int32_t n_vocab = model_->hparams().n_vocab;
  for (const SequenceChunk& c : chunks) {
    if (c.tokens.empty()) continue;
    kv_->reserve(c.seq, c.start_pos + static_cast<int32_t>(c.tokens.size()));
    for (size_t i = 0; i < c.tokens.size(); ++i) {
      const int32_t token = c.tokens[i];
      if (token < 0 || token >= n_vocab) {
        fail(ErrorKind::kInvalidArgument, "token id {} is outside the vocabulary (0..{})", token,
             n_vocab - 1);
      }
      const int32_t pos = c.start_pos + static_cast<int32_t>(i);
      tokens_.push_back(token);
      positions_.push_back(pos);
      seq_rows_.push_back(c.seq);
      slots_.push_back(kv_->slot(c.seq, pos));
    }
    if (c.want_logits) outputs_.push_back(static_cast<int32_t>(tokens_.size()) - 1);
  }
  if (tokens_.empty()) return;
  LUZAO_CHECK(static_cast<int32_t>(tokens_.size()) <= max_batch_tokens_);
  LUZAO_CHECK(logits.size() == outputs_.size() * static_cast<size_t>(n_vocab));
  Batch batch;
  batch.tokens = tokens_;
  batch.positions = positions_;
  batch.seq_rows = seq_rows_;
  batch.kv_slots = slots_;
  batch.block_table = kv_->block_table();
  batch.max_blocks = kv_->max_blocks();
  batch.output_rows = outputs_;
  model_->forward(batch, kv_->view(), logits);
}

std::string Engine::chat_prompt(std::span<const ChatMessage> messages,
                                bool add_generation_prompt) const {
  // ChatML. A template that inserts a default system message when there is none (SmolLM2,
  // Qwen2.5) carries it as a literal "<|im_start|>system\n...<|im_end|>"; reuse that text.
  std::string out;
  const std::string tmpl = file_->find_string("tokenizer.chat_template").value_or("");
  if (!messages.empty() && messages.front().role != "system") {
    const std::string open = "<|im_start|>system\n";
    const size_t begin = tmpl.find(open);
    const size_t end = begin == std::string::npos ? begin : tmpl.find("<|im_end|>", begin);
    if (end != std::string::npos && tmpl.find("!= 'system'") != std::string::npos) {
      out += tmpl.substr(begin, end - begin) + "<|im_end|>\n";
    }
  }
  for (const ChatMessage& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace luzao
