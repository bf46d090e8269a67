// Tokenizer construction from GGUF metadata, detokenize, and Utf8Stream.
#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "tokenizer/vocab.h"

namespace luzao {
namespace {

std::optional<int64_t> find_id(const GgufFile& file, std::string_view key) {
  const std::optional<uint64_t> v = file.find_uint(key);
  if (!v) return std::nullopt;
  return *v > static_cast<uint64_t>(INT32_MAX) ? -1 : static_cast<int64_t>(*v);
}

std::optional<bool> find_bool(const GgufFile& file, std::string_view key) {
  if (!file.find(key)) return std::nullopt;
  return file.get_bool_or(key, false);
}

}  // namespace

VocabData VocabData::from_gguf(const GgufFile& file) {
  VocabData v;
  v.source = file.name();
  v.model = file.get_string("tokenizer.ggml.model");
  v.pre = file.find_string("tokenizer.ggml.pre").value_or("");
  v.name = file.find_string("general.name").value_or("");
  v.tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (file.find("tokenizer.ggml.scores")) v.scores = file.get_float_array("tokenizer.ggml.scores");
  if (file.find("tokenizer.ggml.token_type")) {
    v.types = file.get_int_array("tokenizer.ggml.token_type");
  }
  if (file.find("tokenizer.ggml.merges")) {
    v.merges = file.get_string_array("tokenizer.ggml.merges");
  }
  v.bos = find_id(file, "tokenizer.ggml.bos_token_id");
  v.eos = find_id(file, "tokenizer.ggml.eos_token_id");
  v.eot = find_id(file, "tokenizer.ggml.eot_token_id");
  v.eom = find_id(file, "tokenizer.ggml.eom_token_id");
  v.unk = find_id(file, "tokenizer.ggml.unknown_token_id");
  v.pad = find_id(file, "tokenizer.ggml.padding_token_id");
  v.sep = find_id(file, "tokenizer.ggml.seperator_token_id");  // sic, as llama.cpp spells it
  v.fim_pre = find_id(file, "tokenizer.ggml.fim_pre_token_id");
  if (!v.fim_pre) v.fim_pre = find_id(file, "tokenizer.ggml.prefix_token_id");
  v.fim_suf = find_id(file, "tokenizer.ggml.fim_suf_token_id");
  if (!v.fim_suf) v.fim_suf = find_id(file, "tokenizer.ggml.suffix_token_id");
  v.fim_mid = find_id(file, "tokenizer.ggml.fim_mid_token_id");
  if (!v.fim_mid) v.fim_mid = find_id(file, "tokenizer.ggml.middle_token_id");
  v.fim_pad = find_id(file, "tokenizer.ggml.fim_pad_token_id");
  v.fim_rep = find_id(file, "tokenizer.ggml.fim_rep_token_id");
  v.fim_sep = find_id(file, "tokenizer.ggml.fim_sep_token_id");
  v.add_bos = find_bool(file, "tokenizer.ggml.add_bos_token");
  v.add_eos = find_bool(file, "tokenizer.ggml.add_eos_token");
  v.add_space_prefix = find_bool(file, "tokenizer.ggml.add_space_prefix");
  return v;
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& file) {
  return from_vocab(VocabData::from_gguf(file));
}

std::unique_ptr<Tokenizer> Tokenizer::from_vocab(VocabData vocab) {
  if (vocab.model == "llama") return make_spm_tokenizer(vocab);
  if (vocab.model == "gpt2") return make_bpe_tokenizer(vocab);
  fail(ErrorKind::kUnsupported,
       "{}: tokenizer model '{}' (tokenizer.ggml.model) is not supported; luzao reads 'llama' "
       "(SentencePiece) and 'gpt2' (byte-level BPE)",
       vocab.source, vocab.model);
}

std::string Tokenizer::detokenize(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  for (int32_t id : ids) out += token_to_piece(id, render_special);
  return out;
}

std::string Utf8Stream::push(std::string_view piece) {
  pending_.append(piece);
  const size_t n = pending_.size();
  size_t cut = n;
  // Hold back a final character whose lead byte announces more bytes than have arrived.
  for (size_t k = 1; k <= 3 && k <= n; ++k) {
    const auto c = static_cast<uint8_t>(pending_[n - k]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const size_t need = (c & 0xE0) == 0xC0   ? 2
                        : (c & 0xF0) == 0xE0 ? 3
                        : (c & 0xF8) == 0xF0 ? 4
                                             : 1;
    if (need > k) cut = n - k;
    break;
  }
  std::string out = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace luzao
