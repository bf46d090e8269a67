// Hugging Face -> GGUF conversion for the llama-like families: hyper-parameters from config.json,
// tensor names and shapes checked against them, Llama's Q/K rope permutation, dtype choices as
// llama.cpp's convert_hf_to_gguf.py makes them (1-D tensors, norms and biases stay F32).
#include "cli/convert_hf.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <vector>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli/convert_vocab.h"
#include "core/error.h"
#include "format/gguf.h"
#include "format/safetensors.h"
#include "model/model.h"

namespace luzao::cli {

namespace {

using nlohmann::json;

struct HfConfig {
  std::string arch;  // GGUF architecture
  int64_t n_layer = 0, n_embd = 0, n_ff = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
  int64_t vocab_size = 0;
  int64_t n_ctx = 0;
  bool has_head_kv = false, has_head_dim = false, tied = false;
  std::optional<double> rope_theta;
  double rms_eps = 1e-6;
};

class ConfigReader {
 public:
  ConfigReader(const json& j, std::string file) : j_(j), file_(std::move(file)) {}
  std::optional<int64_t> opt_int(const char* key) const {
    const auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return std::nullopt;
    if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > (1LL << 31)) {
      fail(ErrorKind::kBadFile, "{}: '{}' must be a positive integer, got {}", file_, key,
           it->dump());
    }
    return it->get<int64_t>();
  }
  int64_t req_int(const char* key) const {
    const std::optional<int64_t> v = opt_int(key);
    if (!v) fail(ErrorKind::kBadFile, "{}: required key '{}' is missing", file_, key);
    return *v;
  }
  static std::optional<double> number(const json& obj, const char* key) {
    const auto it = obj.find(key);
    if (it == obj.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
  }

 private:
  const json& j_;
  std::string file_;
};

HfConfig read_config(const json& j, const std::string& file) {
  if (!j.is_object()) fail(ErrorKind::kBadFile, "{}: not a JSON object", file);
  HfConfig c;
  const json archs = j.value("architectures", json());
  if (!archs.is_array() || archs.empty() || !archs[0].is_string()) {
    fail(ErrorKind::kBadFile, "{}: 'architectures' must list the model class", file);
  }
  const std::string hf_arch = archs[0].get<std::string>();
  c.arch = gguf_arch_for(hf_arch);
  if (c.arch.empty()) {
    fail(ErrorKind::kUnsupported,
         "{}: architecture '{}' cannot be converted (supported: LlamaForCausalLM, "
         "Qwen2ForCausalLM, Qwen3ForCausalLM)",
         file, hf_arch);
  }
  find_architecture(c.arch);  // luzao must also be able to run it
  const ConfigReader r(j, file);
  c.n_layer = r.req_int("num_hidden_layers");
  c.n_embd = r.req_int("hidden_size");
  c.n_ff = r.req_int("intermediate_size");
  c.n_head = r.req_int("num_attention_heads");
  c.vocab_size = r.req_int("vocab_size");
  // llama.cpp reads config.json through transformers' AutoConfig, which fills in the config
  // class's defaults for absent keys; the ones that reach the GGUF are mirrored here.
  const bool llama = c.arch == "llama";
  c.n_ctx = r.opt_int("max_position_embeddings").value_or(llama ? 2048 : 32768);
  const std::optional<int64_t> kv = r.opt_int("num_key_value_heads");
  c.has_head_kv = kv.has_value() || llama;  // LlamaConfig defaults it to the head count
  c.n_head_kv = kv.value_or(c.n_head);
  std::optional<int64_t> hd = r.opt_int("head_dim");
  if (!hd && c.arch == "qwen3") hd = 128;  // Qwen3Config's default head_dim
  if (!hd && llama && c.n_embd % c.n_head == 0) hd = c.n_embd / c.n_head;  // LlamaConfig's
  c.has_head_dim = hd.has_value();
  if (!hd && c.n_embd % c.n_head != 0) {
    fail(ErrorKind::kBadFile, "{}: hidden_size {} is not a multiple of num_attention_heads {}",
         file, c.n_embd, c.n_head);
  }
  c.head_dim = hd.value_or(c.n_embd / c.n_head);
  if (c.n_head % c.n_head_kv != 0) {
    fail(ErrorKind::kBadFile,
         "{}: num_attention_heads {} is not a multiple of "
         "num_key_value_heads {}",
         file, c.n_head, c.n_head_kv);
  }
  if (c.head_dim % 2 != 0) fail(ErrorKind::kBadFile, "{}: head_dim {} is odd", file, c.head_dim);
  const json tie = j.value("tie_word_embeddings", json(false));
  c.tied = tie.is_boolean() && tie.get<bool>();
  const std::string act = j.value("hidden_act", std::string("silu"));
  if (act != "silu") {
    fail(ErrorKind::kUnsupported, "{}: hidden_act '{}' is not supported (silu only)", file, act);
  }
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (c.arch == "llama" && j.value(key, false)) {
      fail(ErrorKind::kUnsupported, "{}: '{}' true is not supported for llama", file, key);
    }
  }
  // Rope: transformers >= 5 nests rope_theta in rope_parameters; older files use rope_theta and
  // rope_scaling. Scaled rope variants are refused: luzao's decoder does not implement them.
  json rope = j.value("rope_parameters", json());
  if (!rope.is_object()) rope = j.value("rope_scaling", json());
  if (!rope.is_object()) rope = json::object();
  c.rope_theta = ConfigReader::number(rope, "rope_theta");
  if (!c.rope_theta) c.rope_theta = ConfigReader::number(j, "rope_theta");
  if (!c.rope_theta) c.rope_theta = 10000.0;  // the default of all three config classes
  std::string rope_type = rope.value("rope_type", rope.value("type", std::string("default")));
  if (rope_type != "default") {
    fail(ErrorKind::kUnsupported, "{}: rope scaling type '{}' is not supported", file, rope_type);
  }
  c.rms_eps = ConfigReader::number(j, "rms_norm_eps").value_or(1e-6);  // likewise
  return c;
}

// Expected HF shape ([out, in], outermost first) of each GGUF tensor suffix.
struct TensorRule {
  std::string gguf_suffix;
  std::vector<int64_t> shape;
  bool required = true;
  bool permute = false;  // Llama Q/K: rows reordered for ggml's rope layout
  int64_t permute_heads = 0;
};

struct Plan {
  std::string hf_name, gguf_name;
  std::vector<int64_t> shape;
  bool permute = false;
  int64_t permute_heads = 0;
};

std::map<std::string, TensorRule> layer_rules(const HfConfig& c) {
  const int64_t q = c.n_head * c.head_dim, kv = c.n_head_kv * c.head_dim, e = c.n_embd;
  const bool llama = c.arch == "llama";
  std::map<std::string, TensorRule> r = {
      {"input_layernorm.weight", {"attn_norm.weight", {e}}},
      {"self_attn.q_proj.weight", {"attn_q.weight", {q, e}, true, llama, c.n_head}},
      {"self_attn.k_proj.weight", {"attn_k.weight", {kv, e}, true, llama, c.n_head_kv}},
      {"self_attn.v_proj.weight", {"attn_v.weight", {kv, e}}},
      {"self_attn.o_proj.weight", {"attn_output.weight", {e, q}}},
      {"post_attention_layernorm.weight", {"ffn_norm.weight", {e}}},
      {"mlp.gate_proj.weight", {"ffn_gate.weight", {c.n_ff, e}}},
      {"mlp.up_proj.weight", {"ffn_up.weight", {c.n_ff, e}}},
      {"mlp.down_proj.weight", {"ffn_down.weight", {e, c.n_ff}}},
  };
  if (c.arch == "qwen2") {
    r["self_attn.q_proj.bias"] = {"attn_q.bias", {q}};
    r["self_attn.k_proj.bias"] = {"attn_k.bias", {kv}};
    r["self_attn.v_proj.bias"] = {"attn_v.bias", {kv}};
  }
  if (c.arch == "qwen3") {
    r["self_attn.q_norm.weight"] = {"attn_q_norm.weight", {c.head_dim}};
    r["self_attn.k_norm.weight"] = {"attn_k_norm.weight", {c.head_dim}};
  }
  return r;
}

struct Source {
  const SafetensorsFile* file = nullptr;
  const SafetensorsTensor* tensor = nullptr;
};

// Every tensor of the model's safetensors files, by name.
class TensorSources {
 public:
  explicit TensorSources(const std::filesystem::path& dir) {
    const std::filesystem::path index = dir / "model.safetensors.index.json";
    std::vector<std::string> names;
    std::map<std::string, std::string> expected;  // tensor -> shard, from the index
    if (std::filesystem::is_regular_file(index)) {
      const json j = read_json_file(index);
      const json map = j.is_object() ? j.value("weight_map", json()) : json();
      if (!map.is_object()) {
        fail(ErrorKind::kBadFile, "{}: 'weight_map' is missing or not an object", index.string());
      }
      for (const auto& [tensor, shard] : map.items()) {
        if (!shard.is_string()) {
          fail(ErrorKind::kBadFile, "{}: weight_map entry '{}' is not a file name", index.string(),
               tensor);
        }
        const std::string s = shard.get<std::string>();
        if (s.find('/') != std::string::npos || s.starts_with(".")) {
          fail(ErrorKind::kBadFile, "{}: weight_map names '{}', which is not a file in {}",
               index.string(), s, dir.string());
        }
        expected[tensor] = s;
        if (std::find(names.begin(), names.end(), s) == names.end()) names.push_back(s);
      }
    } else {
      std::vector<std::string> all;
      std::error_code ec;
      for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        const std::string n = entry.path().filename().string();
        if (entry.is_regular_file() && n.ends_with(".safetensors")) all.push_back(n);
      }
      if (ec) fail(ErrorKind::kIo, "{}: cannot list: {}", dir.string(), ec.message());
      for (const std::string& n : all) {
        if (n.starts_with("model")) names.push_back(n);
      }
      if (names.empty()) names = all;
    }
    if (names.empty()) fail(ErrorKind::kBadFile, "{}: no *.safetensors files", dir.string());
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(dir / n)));
      const SafetensorsFile& f = *files_.back();
      for (const SafetensorsTensor& t : f.tensors()) {
        if (!by_name_.emplace(t.name, Source{&f, &t}).second) {
          fail(ErrorKind::kBadFile, "{}: tensor '{}' also appears in another shard", f.name(),
               t.name);
        }
      }
    }
    for (const auto& [tensor, shard] : expected) {
      const auto it = by_name_.find(tensor);
      if (it == by_name_.end() || it->second.file->name() != (dir / shard).string()) {
        fail(ErrorKind::kBadFile,
             "{}: tensor '{}' is missing (model.safetensors.index.json "
             "places it there)",
             (dir / shard).string(), tensor);
      }
    }
  }
  const std::map<std::string, Source>& all() const { return by_name_; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Source> by_name_;
};

std::string shape_text(const std::vector<int64_t>& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

std::vector<Plan> plan_tensors(const HfConfig& c, const TensorSources& sources,
                               const std::filesystem::path& dir) {
  const std::map<std::string, TensorRule> rules = layer_rules(c);
  std::vector<Plan> plans;
  std::set<std::string> seen;
  static const std::regex kLayer(R"(model\.layers\.(\d+)\.(.+))");
  for (const auto& [name, src] : sources.all()) {
    Plan p;
    p.hf_name = name;
    std::smatch m;
    if (name == "model.embed_tokens.weight") {
      p.gguf_name = "token_embd.weight";
      p.shape = {c.vocab_size, c.n_embd};
    } else if (name == "model.norm.weight") {
      p.gguf_name = "output_norm.weight";
      p.shape = {c.n_embd};
    } else if (name == "lm_head.weight") {
      p.gguf_name = "output.weight";
      p.shape = {c.vocab_size, c.n_embd};
    } else if (std::regex_match(name, m, kLayer)) {
      const std::string suffix = m[2].str();
      if (suffix == "self_attn.rotary_emb.inv_freq") continue;  // recomputed, as llama.cpp does
      const int64_t layer = m[1].str().size() > 9 ? -1 : std::stoll(m[1].str());
      const auto rule = rules.find(suffix);
      if (layer < 0 || layer >= c.n_layer) {
        fail(ErrorKind::kBadFile,
             "{}: tensor '{}' names layer {} but config.json has "
             "num_hidden_layers {}",
             src.file->name(), name, m[1].str(), c.n_layer);
      }
      if (rule == rules.end()) {
        fail(ErrorKind::kUnsupported,
             "{}: tensor '{}' has no GGUF counterpart for architecture "
             "{}",
             src.file->name(), name, c.arch);
      }
      p.gguf_name = fmt::format("blk.{}.{}", layer, rule->second.gguf_suffix);
      p.shape = rule->second.shape;
      p.permute = rule->second.permute;
      p.permute_heads = rule->second.permute_heads;
    } else {
      fail(ErrorKind::kUnsupported, "{}: tensor '{}' has no GGUF counterpart for architecture {}",
           src.file->name(), name, c.arch);
    }
    const SafetensorsDType dt = src.tensor->dtype;
    if (dt != SafetensorsDType::kF32 && dt != SafetensorsDType::kF16 &&
        dt != SafetensorsDType::kBF16) {
      fail(ErrorKind::kUnsupported,
           "{}: tensor '{}' has dtype {}; only F32, F16 and BF16 tensors can be converted",
           src.file->name(), name, safetensors_dtype_name(dt));
    }
    std::vector<int64_t> got(src.tensor->shape.begin(), src.tensor->shape.end());
    if (got != p.shape) {
      fail(ErrorKind::kBadFile, "{}: tensor '{}' has shape {} but config.json implies {}",
           src.file->name(), name, shape_text(got), shape_text(p.shape));
    }
    seen.insert(p.gguf_name);
    plans.push_back(std::move(p));
  }
  std::vector<std::string> required = {"token_embd.weight", "output_norm.weight"};
  if (!c.tied) required.push_back("output.weight");
  for (int64_t l = 0; l < c.n_layer; ++l) {
    for (const auto& [suffix, rule] : rules) {
      if (rule.required) required.push_back(fmt::format("blk.{}.{}", l, rule.gguf_suffix));
    }
  }
  for (const std::string& r : required) {
    if (seen.count(r) == 0) {
      fail(ErrorKind::kBadFile, "{}: no tensor for GGUF '{}' in the safetensors files{}",
           dir.string(), r,
           r == "output.weight" ? " (lm_head.weight; config.json tie_word_embeddings is false)"
                                : "");
    }
  }
  // llama.cpp's order: embeddings first, then blocks by index, output tensors last.
  auto rank = [](const Plan& p) -> std::pair<int64_t, std::string> {
    if (p.gguf_name == "token_embd.weight") return {-1, ""};
    if (p.gguf_name.starts_with("blk.")) {
      const size_t dot = p.gguf_name.find('.', 4);
      return {std::stoll(p.gguf_name.substr(4, dot - 4)), p.gguf_name};
    }
    return {INT64_MAX, p.gguf_name};
  };
  std::stable_sort(plans.begin(), plans.end(),
                   [&](const Plan& a, const Plan& b) { return rank(a) < rank(b); });
  return plans;
}

// Rows of each head reordered from HF's rotate-half layout to ggml's interleaved pairs:
// new row (h, i, j) = old row (h, j, i) over [heads, 2, head_dim / 2].
void permute_rows(std::vector<float>& data, int64_t rows, int64_t cols, int64_t heads) {
  const int64_t hd = rows / heads, half = hd / 2;
  std::vector<float> out(data.size());
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t dst = h * hd + 2 * i + j, src = h * hd + j * half + i;
        std::copy_n(data.begin() + src * cols, cols, out.begin() + dst * cols);
      }
    }
  }
  data.swap(out);
}

uint32_t file_type_of(DType t) {
  switch (t) {
    case DType::kF32:
      return 0;
    case DType::kF16:
      return 1;
    case DType::kQ8_0:
      return 7;
    case DType::kBF16:
      return 32;
    default:
      LUZAO_CHECK(false);
      return 0;
  }
}

void write_hparams(const HfConfig& c, const std::filesystem::path& dir, DType outtype,
                   GgufWriter& w) {
  const std::string& a = c.arch;
  w.set_string("general.architecture", a);
  w.set_string("general.type", "model");
  w.set_string("general.name",
               std::filesystem::absolute(dir).lexically_normal().filename().string());
  w.set_uint32(a + ".block_count", static_cast<uint32_t>(c.n_layer));
  w.set_uint32(a + ".context_length", static_cast<uint32_t>(c.n_ctx));
  w.set_uint32(a + ".embedding_length", static_cast<uint32_t>(c.n_embd));
  w.set_uint32(a + ".feed_forward_length", static_cast<uint32_t>(c.n_ff));
  w.set_uint32(a + ".attention.head_count", static_cast<uint32_t>(c.n_head));
  if (c.has_head_kv)
    w.set_uint32(a + ".attention.head_count_kv", static_cast<uint32_t>(c.n_head_kv));
  if (c.rope_theta) w.set_float32(a + ".rope.freq_base", static_cast<float>(*c.rope_theta));
  w.set_float32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_eps));
  if (c.has_head_dim) {
    w.set_uint32(a + ".attention.key_length", static_cast<uint32_t>(c.head_dim));
    w.set_uint32(a + ".attention.value_length", static_cast<uint32_t>(c.head_dim));
  }
  w.set_uint32("general.file_type", file_type_of(outtype));
  if (a == "llama") {
    w.set_uint32(a + ".vocab_size", static_cast<uint32_t>(c.vocab_size));
    w.set_uint32(a + ".rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  }
  w.set_uint32("general.quantization_version", 2);
}

// Deletes the temporary output unless released.
class TempFile {
 public:
  explicit TempFile(std::filesystem::path p) : path_(std::move(p)) {}
  ~TempFile() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove(path_, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::filesystem::path& path() const { return path_; }
  void commit(const std::filesystem::path& to) {
    std::error_code ec;
    std::filesystem::rename(path_, to, ec);
    if (ec)
      fail(ErrorKind::kIo, "{}: cannot rename to {}: {}", path_.string(), to.string(),
           ec.message());
    path_.clear();
  }

 private:
  std::filesystem::path path_;
};

}  // namespace

std::string gguf_arch_for(std::string_view hf_architecture) {
  if (hf_architecture == "LlamaForCausalLM") return "llama";
  if (hf_architecture == "Qwen2ForCausalLM") return "qwen2";
  if (hf_architecture == "Qwen3ForCausalLM") return "qwen3";
  return "";
}

void convert_hf(const std::filesystem::path& hf_dir, const std::filesystem::path& out,
                const ConvertOptions& options, const ConvertProgress& progress) {
  if (options.outtype != DType::kF32 && options.outtype != DType::kF16 &&
      options.outtype != DType::kBF16 && options.outtype != DType::kQ8_0) {
    fail(ErrorKind::kInvalidArgument, "--outtype {}: expected f32, f16, bf16 or q8_0",
         dtype_name(options.outtype));
  }
  if (!std::filesystem::is_directory(hf_dir)) {
    fail(ErrorKind::kIo, "{}: not a directory", hf_dir.string());
  }
  const std::filesystem::path config_path = hf_dir / "config.json";
  const json config_json = read_json_file(config_path);
  const HfConfig config = read_config(config_json, config_path.string());
  const TensorSources sources(hf_dir);
  const std::vector<Plan> plans = plan_tensors(config, sources, hf_dir);

  GgufWriter writer;
  write_hparams(config, hf_dir, options.outtype, writer);
  write_hf_vocab(hf_dir, config_json,
                 {config.vocab_size, options.vocab_pre, config.arch == "llama"}, writer);

  std::vector<float> values;
  std::vector<std::byte> bytes;
  size_t done = 0;
  for (const Plan& p : plans) {
    const Source& src = sources.all().at(p.hf_name);
    values.resize(src.tensor->elements());
    safetensors_to_f32(*src.file, *src.tensor, values);
    const int64_t cols = p.shape.back();
    const int64_t rows = p.shape.size() == 2 ? p.shape[0] : 1;
    if (p.permute) permute_rows(values, rows, cols, p.permute_heads);
    DType dtype = options.outtype;
    if (p.shape.size() <= 1 || p.gguf_name.ends_with("_norm.weight") ||
        !p.gguf_name.ends_with(".weight")) {
      dtype = DType::kF32;
    }
    if (!row_bytes(dtype, static_cast<uint64_t>(cols))) dtype = DType::kF16;  // as llama.cpp
    const uint64_t row = *row_bytes(dtype, static_cast<uint64_t>(cols));
    bytes.resize(static_cast<size_t>(row) * static_cast<size_t>(rows));
    if (dtype == DType::kF32) {
      std::memcpy(bytes.data(), values.data(), bytes.size());
    } else {
      quantize_rows(dtype, values.data(), bytes.data(), rows, cols, {});
    }
    std::vector<uint64_t> shape(p.shape.rbegin(), p.shape.rend());  // GGUF: innermost first
    writer.add_tensor(p.gguf_name, dtype, std::move(shape), bytes);
    if (progress) progress(++done, plans.size(), p.gguf_name, dtype);
  }

  TempFile tmp(out.string() + ".tmp");
  writer.write(tmp.path());
  tmp.commit(out);
}

}  // namespace luzao::cli
