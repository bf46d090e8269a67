// Engine: loading a model and batched decode steps over the paged KV cache.
#include "runtime/engine.h"

#include <algorithm>
#include <ctime>

#include "backend/registry.h"
#include "core/error.h"
#include "runtime/split.h"

namespace luzao {

Engine::Engine(const EngineOptions& options) : logger_(options.logger) {
  if (options.max_batch_tokens <= 0 || options.max_sequences <= 0 || options.ctx_size < 0) {
    fail(ErrorKind::kInvalidArgument,
         "batch size, sequence count and context size must be positive");
  }
  file_ = std::make_shared<const GgufFile>(GgufFile::open(options.model_path));
  tokenizer_ = Tokenizer::from_gguf(*file_);
  DeviceOptions device_options;
  device_options.threads = options.threads;
  LoadOptions load_options;
  if (options.split.empty()) {
    device_ = open_device(options.device, device_options);
    model_ = load_model(file_, *device_, load_options);
  } else {
    try {  // errors name the --split spec they come from
      const std::vector<SplitDeviceSpec> parts = parse_split(options.split);
      device_ = open_device(parts.front().device, device_options);
      load_options.split.push_back({device_.get(), parts.front().ratio});
      for (size_t i = 1; i < parts.size(); ++i) {
        split_devices_.push_back(open_device(parts[i].device, device_options));
        load_options.split.push_back({split_devices_.back().get(), parts[i].ratio});
      }
      if (parts.size() == 1) load_options.split.clear();  // one device: no split at all
      model_ = load_model(file_, *device_, load_options);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kInvalidArgument ||
          std::string_view(e.what()).starts_with("--split"))
        throw;
      fail(ErrorKind::kInvalidArgument, "--split '{}': {}", options.split, e.what());
    }
  }
  const HParams& hp = model_->hparams();
  if (tokenizer_->n_vocab() > hp.n_vocab) {
    fail(ErrorKind::kBadFile, "{}: the vocabulary has {} tokens but token_embd.weight only {} rows",
         file_->name(), tokenizer_->n_vocab(), hp.n_vocab);
  }
  const std::string source = !options.chat_template.empty()
                                 ? options.chat_template
                                 : file_->find_string("tokenizer.chat_template").value_or("");
  if (!source.empty()) {
    try {
      chat_template_ = ChatTemplate::parse(source);
    } catch (const Error& e) {  // only fatal for chat use, not for plain completion
      chat_template_error_ = fmt::format("{}: {}", file_->name(), e.what());
    }
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
  std::vector<Device*> layer_devices;
  for (int32_t l = 0; l < hp.n_layer; ++l) {
    Device* d = &model_->layer_device(l);
    layer_devices.push_back(d);
    if (placement_.empty() || layer_devices[static_cast<size_t>(l) - 1] != d) {
      placement_.push_back({d->info().name, l, 0});
    }
    ++placement_.back().n_layers;
  }
  if (placement_.empty()) placement_.push_back({device_->info().name, 0, 0});
  kv_ = load_options.split.empty() ? std::make_unique<PagedKvCache>(*device_, kv)
                                   : std::make_unique<PagedKvCache>(layer_devices, kv);
  logger_.info("loaded {} ({}, {} layers, {} dims, vocab {}) on {}; context {} tokens",
               options.model_path.string(), hp.architecture, hp.n_layer, hp.n_embd, hp.n_vocab,
               placement_text(), ctx_size_);
}

std::string Engine::placement_text() const {
  if (placement_.size() == 1) return placement_.front().device;
  std::string out;
  for (const LayerPlacement& p : placement_) {
    out += fmt::format("{}{}[{}-{}]", out.empty() ? "" : "+", p.device, p.first_layer,
                       p.first_layer + p.n_layers - 1);
  }
  return out;
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
      if (c.all_logits) outputs_.push_back(static_cast<int32_t>(tokens_.size()) - 1);
    }
    if (c.want_logits && !c.all_logits)
      outputs_.push_back(static_cast<int32_t>(tokens_.size()) - 1);
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
  ChatRenderOptions options;
  options.add_generation_prompt = add_generation_prompt;
  return chat_prompt(messages, options);
}

std::string Engine::chat_prompt(std::span<const ChatMessage> messages,
                                const ChatRenderOptions& given) const {
  if (!chat_template_error_.empty()) fail(ErrorKind::kUnsupported, "{}", chat_template_error_);
  if (!chat_template_) {  // no template in the model: plain ChatML
    std::string out;
    for (const ChatMessage& m : messages) {
      out += "<|im_start|>" + m.role + "\n" + m.content.value_or("") + "<|im_end|>\n";
    }
    if (given.add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
  }
  ChatRenderOptions options = given;
  const Tokenizer& tok = *tokenizer_;
  if (options.bos_token.empty() && tok.bos() >= 0) options.bos_token = tok.token_text(tok.bos());
  if (options.eos_token.empty() && tok.eos() >= 0) options.eos_token = tok.token_text(tok.eos());
  if (options.date.year == jinja::RenderDate{}.year &&
      options.date.month == jinja::RenderDate{}.month &&
      options.date.day == jinja::RenderDate{}.day) {
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    options.date = {utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                    utc.tm_hour,        utc.tm_min,     utc.tm_sec};
  }
  return chat_template_->render_chat(messages, options);
}

}  // namespace luzao
