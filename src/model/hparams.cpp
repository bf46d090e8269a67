// Reading the hyper-parameters that llama-like families share, from `<arch>.*` GGUF keys.
#include "model/hparams.h"

#include <string>

#include "core/error.h"

namespace luzao {

namespace {
int32_t to_i32(const GgufFile& file, const std::string& key, uint64_t v) {
  if (v == 0 || v > (1u << 30))
    fail(ErrorKind::kBadFile, "{}: key '{}' has invalid value {}", file.name(), key, v);
  return static_cast<int32_t>(v);
}
}  // namespace

HParams read_llama_like_hparams(const GgufFile& file, const std::string& arch) {
  HParams hp;
  hp.architecture = arch;
  auto req = [&](const char* suffix) {
    const std::string key = arch + "." + suffix;
    return to_i32(file, key, file.get_uint(key));
  };
  auto opt = [&](const char* suffix, int32_t fallback) {
    const std::string key = arch + "." + suffix;
    const std::optional<uint64_t> v = file.find_uint(key);
    return v ? to_i32(file, key, *v) : fallback;
  };
  hp.n_layer = req("block_count");
  hp.n_embd = req("embedding_length");
  hp.n_ff = req("feed_forward_length");
  hp.n_head = req("attention.head_count");
  hp.n_head_kv = opt("attention.head_count_kv", hp.n_head);
  hp.n_ctx_train = opt("context_length", 2048);
  // The head size is attention.key_length when given (Qwen3), else embedding_length / head_count.
  hp.head_dim = opt("attention.key_length", 0);
  if (hp.head_dim == 0) {
    if (hp.n_embd % hp.n_head != 0) {
      fail(ErrorKind::kBadFile, "{}: embedding_length {} is not a multiple of head_count {}",
           file.name(), hp.n_embd, hp.n_head);
    }
    hp.head_dim = hp.n_embd / hp.n_head;
  }
  if (opt("attention.value_length", hp.head_dim) != hp.head_dim) {
    fail(ErrorKind::kUnsupported, "{}: attention.value_length differs from key_length",
         file.name());
  }
  if (hp.n_head % hp.n_head_kv != 0) {
    fail(ErrorKind::kBadFile, "{}: head_count {} is not a multiple of head_count_kv {}",
         file.name(), hp.n_head, hp.n_head_kv);
  }
  hp.rope_dim = opt("rope.dimension_count", hp.head_dim);
  if (hp.rope_dim > hp.head_dim || hp.rope_dim % 2 != 0) {
    fail(ErrorKind::kBadFile, "{}: rope.dimension_count {} does not fit head size {}", file.name(),
         hp.rope_dim, hp.head_dim);
  }
  hp.rope_freq_base = file.find_float(arch + ".rope.freq_base").value_or(10000.0f);
  const std::string eps_key = arch + ".attention.layer_norm_rms_epsilon";
  hp.rms_eps = file.find_float(eps_key).value_or(1e-5f);
  if (!(hp.rms_eps > 0.0f) || !(hp.rope_freq_base > 0.0f)) {
    fail(ErrorKind::kBadFile, "{}: rms epsilon and rope.freq_base must be positive", file.name());
  }
  if (const GgufTensorInfo* embd = file.find_tensor("token_embd.weight");
      embd != nullptr && embd->shape.size() == 2) {
    hp.n_vocab = to_i32(file, "token_embd.weight", embd->shape[1]);
  } else {
    fail(ErrorKind::kBadFile, "{}: required tensor 'token_embd.weight' is missing or not 2-D",
         file.name());
  }
  return hp;
}

}  // namespace luzao
