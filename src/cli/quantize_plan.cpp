// Per-tensor type choices of `luzao quantize`, following llama.cpp's llama_tensor_get_type for
// the file types luzao offers (see quantize_plan.h).
#include "cli/quantize_plan.h"

#include <algorithm>
#include <array>
#include <regex>

#include "core/error.h"

namespace luzao::cli {
namespace {

// llama.cpp's llama_ftype numbers.
enum FileType : uint32_t {
  kAllF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ8_0 = 7,
  kQ5_0 = 8,
  kQ5_1 = 9,
  kQ2_K = 10,
  kQ3_K_S = 11,
  kQ3_K_M = 12,
  kQ3_K_L = 13,
  kQ4_K_S = 14,
  kQ4_K_M = 15,
  kQ5_K_S = 16,
  kQ5_K_M = 17,
  kQ6_K = 18,
  kBF16 = 32,
};

constexpr std::array<QuantScheme, 17> kSchemes = {{
    {"F32", DType::kF32, kAllF32, "32-bit float"},
    {"F16", DType::kF16, kF16, "16-bit float"},
    {"BF16", DType::kBF16, kBF16, "bfloat16"},
    {"Q8_0", DType::kQ8_0, kQ8_0, "8.5 bpw"},
    {"Q4_0", DType::kQ4_0, kQ4_0, "4.5 bpw"},
    {"Q4_1", DType::kQ4_1, kQ4_1, "5.0 bpw"},
    {"Q5_0", DType::kQ5_0, kQ5_0, "5.5 bpw"},
    {"Q5_1", DType::kQ5_1, kQ5_1, "6.0 bpw"},
    {"Q2_K", DType::kQ2_K, kQ2_K, "mostly Q2_K, attn_v/ffn_down/attn_output Q3_K or Q4_K"},
    {"Q3_K_S", DType::kQ3_K, kQ3_K_S, "all Q3_K"},
    {"Q3_K_M", DType::kQ3_K, kQ3_K_M, "Q3_K, attn_v/attn_output/ffn_down Q4_K/Q5_K"},
    {"Q3_K_L", DType::kQ3_K, kQ3_K_L, "Q3_K, attn_v/attn_output/ffn_down Q5_K"},
    {"Q4_K_S", DType::kQ4_K, kQ4_K_S, "Q4_K, first attn_v and ffn_down Q5_K"},
    {"Q4_K_M", DType::kQ4_K, kQ4_K_M, "Q4_K, half of attn_v and ffn_down Q6_K"},
    {"Q5_K_S", DType::kQ5_K, kQ5_K_S, "all Q5_K"},
    {"Q5_K_M", DType::kQ5_K, kQ5_K_M, "Q5_K, half of attn_v and ffn_down Q6_K"},
    {"Q6_K", DType::kQ6_K, kQ6_K, "6.6 bpw"},
}};

char upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = upper(c);
  return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// llama.cpp's "more bits" layers of the _M mixes: the first and last eighth, and every third
// layer in between.
bool use_more_bits(int i, int n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

bool fits(DType type, uint64_t row) {
  return row % static_cast<uint64_t>(dtype_info(type).block_size) == 0;
}

// llama.cpp's fallback when a type's block does not divide the row length.
DType fallback(DType type, uint64_t row, std::string* note) {
  if (fits(type, row)) return type;
  DType f = DType::kF16;
  switch (type) {
    case DType::kQ2_K:
    case DType::kQ3_K:
      f = DType::kQ4_0;  // as llama.cpp 0.3.36's build; some versions use IQ4_NL
      break;
    case DType::kQ4_K:
      f = DType::kQ5_0;
      break;
    case DType::kQ5_K:
      f = DType::kQ5_1;
      break;
    case DType::kQ6_K:
      f = DType::kQ8_0;
      break;
    default:
      break;
  }
  if (!fits(f, row)) f = DType::kF16;
  *note = fmt::format("rows of {} do not fit {} blocks: {}", row, dtype_name(type), dtype_name(f));
  return f;
}

struct MixState {
  int n_attn_v = 0;
  int n_ffn_down = 0;
  int i_attn_v = 0;
  int i_ffn_down = 0;
  bool has_output = false;
  int n_gqa = 1;
  bool has_imatrix = false;
};

// llama_tensor_get_type for luzao's schemes: the type before the row-length fallback.
DType mix_type(const QuantScheme& scheme, const GgufTensorInfo& t, MixState& s) {
  const std::string_view name = t.name;
  const uint32_t ft = scheme.file_type;
  DType type = scheme.base;
  if (name == "output.weight" || (!s.has_output && name == "token_embd.weight")) {
    if (!fits(type, t.shape[0])) return DType::kQ8_0;
    return type == DType::kQ8_0 ? type : DType::kQ6_K;
  }
  if (name == "token_embd.weight") return type;
  if (contains(name, "attn_v.weight")) {
    if (ft == kQ2_K) {
      type = s.n_gqa >= 4 ? DType::kQ4_K : DType::kQ3_K;
    } else if (ft == kQ3_K_M) {
      type = s.i_attn_v < 2 ? DType::kQ5_K : DType::kQ4_K;
    } else if (ft == kQ3_K_L) {
      type = DType::kQ5_K;
    } else if ((ft == kQ4_K_M || ft == kQ5_K_M) && use_more_bits(s.i_attn_v, s.n_attn_v)) {
      type = DType::kQ6_K;
    } else if (ft == kQ4_K_S && s.i_attn_v < 4) {
      type = DType::kQ5_K;
    }
    ++s.i_attn_v;
  } else if (contains(name, "ffn_down")) {
    const int i = s.i_ffn_down;
    const int n = s.n_ffn_down;
    if (ft == kQ2_K) {
      type = DType::kQ3_K;
    } else if (ft == kQ3_K_M) {
      type = i < n / 16 ? DType::kQ5_K : DType::kQ4_K;
    } else if (ft == kQ3_K_L) {
      type = DType::kQ5_K;
    } else if (ft == kQ4_K_M) {
      if (use_more_bits(i, n)) type = DType::kQ6_K;
    } else if (ft == kQ5_K_M && use_more_bits(i, n)) {
      type = DType::kQ6_K;
    } else if (ft == kQ4_K_S && i < n / 8) {
      type = DType::kQ5_K;
    } else if ((ft == kQ4_0 || ft == kQ5_0) && s.has_imatrix && i < n / 8) {
      type = ft == kQ4_0 ? DType::kQ4_1 : DType::kQ5_1;
    }
    ++s.i_ffn_down;
  } else if (contains(name, "attn_output.weight")) {
    if (ft == kQ2_K) type = DType::kQ3_K;
    if (ft == kQ3_K_M) type = DType::kQ4_K;
    if (ft == kQ3_K_L) type = DType::kQ5_K;
  } else if (contains(name, "attn_qkv.weight")) {
    if (ft == kQ3_K_M || ft == kQ3_K_L) type = DType::kQ4_K;
    if (ft == kQ4_K_M) type = DType::kQ5_K;
    if (ft == kQ5_K_M) type = DType::kQ6_K;
  }
  return type;
}

// The N of "blk.N.", or -1.
int layer_of(std::string_view name) {
  constexpr std::string_view kPrefix = "blk.";
  if (name.substr(0, kPrefix.size()) != kPrefix) return -1;
  int layer = 0;
  size_t i = kPrefix.size();
  if (i >= name.size() || name[i] < '0' || name[i] > '9') return -1;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && layer < 1000000) {
    layer = layer * 10 + (name[i++] - '0');
  }
  return layer;
}

// llama.cpp quantizes weight matrices only: names ending in "weight", 2-D or more, no norms,
// no MoE router, no positional or token-type embeddings.
bool is_quantizable(const GgufTensorInfo& t) {
  const std::string_view name = t.name;
  return ends_with(name, "weight") && t.shape.size() >= 2 && !contains(name, "_norm.weight") &&
         !contains(name, "ffn_gate_inp.weight") && !contains(name, "pos_embd") &&
         !contains(name, "token_types") && !contains(name, "attn_rel_b.weight");
}

}  // namespace

std::span<const QuantScheme> quant_schemes() {
  return kSchemes;
}

const QuantScheme& find_quant_scheme(std::string_view name) {
  std::string key = to_upper(name);
  if (key == "Q3_K" || key == "Q4_K" || key == "Q5_K") key += "_M";  // llama-quantize's aliases
  for (const QuantScheme& s : kSchemes) {
    if (s.name == key) return s;
  }
  std::string names;
  for (const QuantScheme& s : kSchemes) names += (names.empty() ? "" : ", ") + std::string(s.name);
  fail(ErrorKind::kInvalidArgument, "unknown quantization type '{}' (known: {})", name, names);
}

TensorOverride parse_override(std::string_view spec) {
  const size_t eq = spec.rfind('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == spec.size()) {
    fail(ErrorKind::kInvalidArgument, "--override '{}': expected REGEX=TYPE", spec);
  }
  TensorOverride o;
  o.pattern = std::string(spec.substr(0, eq));
  try {
    std::regex check(o.pattern);
  } catch (const std::regex_error& e) {
    fail(ErrorKind::kInvalidArgument, "--override '{}': bad regular expression: {}", spec,
         e.what());
  }
  const std::string_view type_name = spec.substr(eq + 1);
  const std::optional<DType> type = dtype_from_name(type_name);
  if (!type || !can_quantize(*type) || *type == DType::kQ8_K) {
    fail(ErrorKind::kInvalidArgument, "--override '{}': '{}' is not a storage type luzao can write",
         spec, type_name);
  }
  o.type = *type;
  return o;
}

std::vector<TensorPlan> plan_quantization(const GgufFile& file, const QuantScheme& scheme,
                                          std::span<const TensorOverride> overrides,
                                          bool has_imatrix) {
  MixState state;
  state.has_imatrix = has_imatrix;
  for (const GgufTensorInfo& t : file.tensors()) {
    if (contains(t.name, "attn_v.weight") || contains(t.name, "attn_qkv.weight")) ++state.n_attn_v;
    if (contains(t.name, "ffn_down")) ++state.n_ffn_down;
    if (t.name == "output.weight") state.has_output = true;
  }
  const std::string arch = file.find_string("general.architecture").value_or("");
  const std::optional<uint64_t> n_head = file.find_uint(arch + ".attention.head_count");
  const std::optional<uint64_t> n_head_kv = file.find_uint(arch + ".attention.head_count_kv");
  if (n_head && n_head_kv && *n_head_kv > 0) state.n_gqa = static_cast<int>(*n_head / *n_head_kv);

  std::vector<std::regex> patterns;
  for (const TensorOverride& o : overrides) patterns.emplace_back(o.pattern);
  // llama.cpp walks the tensors by layer number, then name (its weight_name_comparer); the layer
  // counters of the mixes follow that order. The plan keeps the file's order.
  const std::vector<GgufTensorInfo>& tensors = file.tensors();
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int la = layer_of(tensors[a].name);
    const int lb = layer_of(tensors[b].name);
    return la != lb ? la < lb : tensors[a].name < tensors[b].name;
  });
  std::vector<TensorPlan> plans(tensors.size());
  for (size_t index : order) {
    const GgufTensorInfo& t = tensors[index];
    TensorPlan& p = plans[index];
    p.name = t.name;
    p.from = t.dtype;
    p.shape = t.shape;
    p.to = t.dtype;
    if (is_quantizable(t)) {
      const bool quantized_base = dtype_info(scheme.base).block_size > 1;
      DType type = quantized_base ? mix_type(scheme, t, state) : scheme.base;
      if (type != scheme.base) p.note = fmt::format("{} rule", scheme.name);
      type = fallback(type, t.shape[0], &p.note);
      for (size_t i = 0; i < overrides.size(); ++i) {
        if (!std::regex_search(t.name, patterns[i])) continue;
        if (!fits(overrides[i].type, t.shape[0])) {
          fail(ErrorKind::kInvalidArgument,
               "--override {}={}: tensor {} has rows of {} elements, not a multiple of {}'s block "
               "of {}",
               overrides[i].pattern, dtype_name(overrides[i].type), t.name, t.shape[0],
               dtype_name(overrides[i].type), dtype_info(overrides[i].type).block_size);
        }
        type = overrides[i].type;
        p.note = fmt::format("--override {}", overrides[i].pattern);
        break;
      }
      p.to = type;
    }
    p.convert = p.to != p.from;
    if (p.convert && p.from == DType::kQ8_K) {
      fail(ErrorKind::kUnsupported, "{}: tensor {} has type q8_K, which cannot be requantized",
           file.name(), t.name);
    }
  }
  return plans;
}

}  // namespace luzao::cli
