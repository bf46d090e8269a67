// Hugging Face byte-level BPE tokenizer -> GGUF tokenizer keys, following the rules of llama.cpp's
// convert_hf_to_gguf.py (get_vocab_base) and gguf-py's SpecialVocab; the pre-tokenizer is named
// from tokenizer.json's pre_tokenizer rather than by hashing a tokenization (no Python here).
#include "cli/convert_vocab.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace luzao::cli {

namespace {

using nlohmann::json;

// gguf TokenType values.
constexpr int32_t kTokenNormal = 1;
constexpr int32_t kTokenControl = 3;
constexpr int32_t kTokenUserDefined = 4;
constexpr int32_t kTokenUnused = 5;

// The Split regexes of the known BPE families, as their tokenizer.json files spell them.
constexpr std::string_view kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// The special-token types gguf-py's SpecialVocab handles, with their GGUF key suffixes.
struct SpecialType {
  std::string name;
  std::string key;
};
const std::vector<SpecialType>& base_special_types() {
  static const std::vector<SpecialType> kTypes = {
      {"bos", "bos_token_id"},       {"eos", "eos_token_id"},     {"unk", "unknown_token_id"},
      {"sep", "seperator_token_id"}, {"pad", "padding_token_id"}, {"cls", "cls_token_id"},
      {"mask", "mask_token_id"},
  };
  return kTypes;
}

// A tokenizer_config "<typ>_token" entry: a string or {"content": ...}.
std::optional<std::string> token_content(const json& entry) {
  if (entry.is_string()) return entry.get<std::string>();
  if (entry.is_object()) {
    const auto it = entry.find("content");
    if (it != entry.end() && it->is_string()) return it->get<std::string>();
  }
  return std::nullopt;
}

std::optional<std::string> special_token_id_of(const json& item) {
  if (!item.is_object()) return std::nullopt;
  const auto it = item.find("SpecialToken");
  if (it == item.end() || !it->is_object()) return std::nullopt;
  const auto id = it->find("id");
  if (id == it->end() || !id->is_string()) return std::nullopt;
  return id->get<std::string>();
}

bool looks_special(const std::string& t) {
  auto starts = [&](std::string_view p) { return t.size() >= p.size() && t.starts_with(p); };
  auto ends = [&](std::string_view p) { return t.size() >= p.size() && t.ends_with(p); };
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  if (starts("<|") && ends("|>") && t.size() >= 4) return true;
  if (starts("<\xef\xbd\x9c") && ends("\xef\xbd\x9c>") && t.size() >= 8) return true;  // <｜ ｜>
  return starts("<unused") && ends(">");
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

std::string compact(const json& value) {
  std::string s = value.dump();
  if (s.size() > 200) s = s.substr(0, 200) + "...";
  return s;
}

// tokenizer.json merges: "a b" strings, or [a, b] pairs (tokenizers >= 0.20), whose spaces
// become U+0120 as gguf-py writes them.
std::vector<std::string> read_merges(const json& model, const std::string& file) {
  std::vector<std::string> merges;
  const auto it = model.find("merges");
  if (it == model.end() || !it->is_array() || it->empty()) {
    fail(ErrorKind::kBadFile, "{}: model.merges is missing or empty", file);
  }
  merges.reserve(it->size());
  for (const json& m : *it) {
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.push_back(replace_all(m[0].get<std::string>(), " ", "\xc4\xa0") + " " +
                       replace_all(m[1].get<std::string>(), " ", "\xc4\xa0"));
    } else {
      fail(ErrorKind::kBadFile, "{}: model.merges entry {} is neither \"a b\" nor [a, b]", file,
           compact(m));
    }
  }
  return merges;
}

std::optional<std::string> read_optional_text(const std::filesystem::path& path) {
  if (!std::filesystem::is_regular_file(path)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open", path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

json read_json_file(const std::filesystem::path& path) {
  std::optional<std::string> text = read_optional_text(path);
  if (!text) fail(ErrorKind::kIo, "{}: file not found", path.string());
  try {
    return json::parse(*text);
  } catch (const json::exception& e) {
    fail(ErrorKind::kBadFile, "{}: not valid JSON: {}", path.string(), e.what());
  }
}

std::string detect_bpe_pre(const json& pre_tokenizer, const std::string& file) {
  std::vector<json> steps;
  if (pre_tokenizer.is_object() && pre_tokenizer.value("type", "") == "Sequence" &&
      pre_tokenizer.contains("pretokenizers") && pre_tokenizer["pretokenizers"].is_array()) {
    for (const json& s : pre_tokenizer["pretokenizers"]) steps.push_back(s);
  } else if (pre_tokenizer.is_object()) {
    steps.push_back(pre_tokenizer);
  }
  std::vector<std::string> kinds;
  for (const json& s : steps) {
    const std::string type = s.is_object() ? s.value("type", "") : "";
    if (type == "Split") {
      const json pattern = s.value("pattern", json::object());
      const std::string regex = pattern.is_object() ? pattern.value("Regex", "") : "";
      if (regex == kLlama3Regex) return "llama-bpe";
      if (regex == kQwen2Regex) return "qwen2";
      kinds.push_back("Split");
    } else if (type == "ByteLevel") {
      kinds.push_back(s.value("use_regex", true) ? "ByteLevel+regex" : "ByteLevel");
    } else if (type == "Digits") {
      kinds.push_back(s.value("individual_digits", false) ? "Digits1" : "Digits");
    } else {
      kinds.push_back(type);
    }
  }
  if (kinds == std::vector<std::string>{"Digits1", "ByteLevel+regex"}) return "smollm";
  if (kinds == std::vector<std::string>{"ByteLevel+regex"}) return "gpt-2";
  fail(ErrorKind::kUnsupported,
       "{}: pre_tokenizer {} is not one luzao recognises (llama-bpe, qwen2, smollm, gpt-2); "
       "name it with --vocab-pre",
       file, compact(pre_tokenizer));
}

void write_hf_vocab(const std::filesystem::path& dir, const json& config,
                    const VocabOptions& options, GgufWriter& writer) {
  const std::filesystem::path tj_path = dir / "tokenizer.json";
  const std::string tj_name = tj_path.string();
  if (!std::filesystem::is_regular_file(tj_path)) {
    if (std::filesystem::is_regular_file(dir / "tokenizer.model")) {
      fail(ErrorKind::kUnsupported,
           "{}: only tokenizer.model (SentencePiece) is present; SentencePiece vocabularies are "
           "not supported by luzao convert yet (byte-level BPE tokenizer.json only)",
           dir.string());
    }
    fail(ErrorKind::kBadFile, "{}: missing", tj_name);
  }
  const json tj = read_json_file(tj_path);
  if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object()) {
    fail(ErrorKind::kBadFile, "{}: no \"model\" object", tj_name);
  }
  const json& model = tj["model"];
  const std::string model_type = model.value("type", "BPE");
  if (model_type != "BPE") {
    fail(ErrorKind::kUnsupported, "{}: model.type '{}' is not supported (BPE only)", tj_name,
         model_type);
  }
  const json pre_tokenizer = tj.value("pre_tokenizer", json());
  if (model.value("byte_fallback", false) ||
      (pre_tokenizer.is_object() && pre_tokenizer.value("type", "") == "Metaspace")) {
    fail(ErrorKind::kUnsupported,
         "{}: a SentencePiece-style BPE (byte_fallback / Metaspace) is not supported by luzao "
         "convert yet (byte-level BPE only)",
         tj_name);
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    fail(ErrorKind::kBadFile, "{}: model.vocab is missing or not an object", tj_name);
  }

  // id -> token over the BPE vocab and the added tokens (transformers' tokenizer.vocab).
  std::map<int64_t, std::string> by_id;
  auto add_entry = [&](const std::string& token, const json& id) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) {
      fail(ErrorKind::kBadFile, "{}: token '{}' has invalid id {}", tj_name,
           escape_for_display(token), compact(id));
    }
    by_id[id.get<int64_t>()] = token;
  };
  for (const auto& [token, id] : model["vocab"].items()) add_entry(token, id);
  struct Added {
    bool special = false;
  };
  std::map<std::string, Added> added;  // content -> flags
  std::vector<std::pair<std::string, int64_t>> added_order;
  const json added_tokens = tj.value("added_tokens", json::array());
  if (!added_tokens.is_array())
    fail(ErrorKind::kBadFile, "{}: added_tokens is not a list", tj_name);
  for (const json& a : added_tokens) {
    if (!a.is_object() || !a.contains("content") || !a["content"].is_string() ||
        !a.contains("id")) {
      fail(ErrorKind::kBadFile, "{}: added_tokens entry {} lacks content or id", tj_name,
           compact(a));
    }
    const std::string content = a["content"].get<std::string>();
    add_entry(content, a["id"]);
    added[content].special = a.value("special", false);
    added_order.emplace_back(content, a["id"].get<int64_t>());
  }
  if (by_id.empty()) fail(ErrorKind::kBadFile, "{}: the vocabulary is empty", tj_name);
  const int64_t max_id = by_id.rbegin()->first;
  const int64_t vocab_size =
      options.vocab_size > 0 ? options.vocab_size : static_cast<int64_t>(by_id.size());
  if (max_id >= vocab_size) {
    fail(ErrorKind::kBadFile, "{}: token id {} does not fit config.json vocab_size {}", tj_name,
         max_id, vocab_size);
  }

  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  tokens.reserve(static_cast<size_t>(vocab_size));
  types.reserve(static_cast<size_t>(vocab_size));
  for (int64_t i = 0; i < vocab_size; ++i) {
    const auto it = by_id.find(i);
    if (it == by_id.end()) {
      tokens.push_back(fmt::format("[PAD{}]", i));
      types.push_back(kTokenUnused);
      continue;
    }
    std::string token = it->second;
    const auto a = added.find(token);
    if (a == added.end()) {
      types.push_back(kTokenNormal);
    } else if (a->second.special || looks_special(token)) {
      types.push_back(kTokenControl);
    } else {
      token = replace_all(token, "\xe2\x96\x81", " ");  // pre-normalised user-defined spaces
      types.push_back(kTokenUserDefined);
    }
    tokens.push_back(std::move(token));
  }

  writer.set_string("tokenizer.ggml.model", "gpt2");
  writer.set_string("tokenizer.ggml.pre",
                    options.pre.empty() ? detect_bpe_pre(pre_tokenizer, tj_name) : options.pre);
  writer.set_string_array("tokenizer.ggml.tokens", std::move(tokens));
  writer.set_int32_array("tokenizer.ggml.token_type", types);
  writer.set_string_array("tokenizer.ggml.merges", read_merges(model, tj_name));

  // Special tokens, as gguf-py's SpecialVocab finds them: tokenizer_config.json entries resolved
  // through tokenizer.json's added tokens, the post-processor template for add_bos/add_eos, then
  // config.json ids (and generation_config.json ids, luzao's addition) for the types still unset.
  std::vector<SpecialType> special_types = base_special_types();
  const std::filesystem::path tc_path = dir / "tokenizer_config.json";
  std::optional<json> tc;
  if (std::filesystem::is_regular_file(tc_path)) {
    tc = read_json_file(tc_path);
    if (!tc->is_object()) fail(ErrorKind::kBadFile, "{}: not a JSON object", tc_path.string());
  }
  auto tc_token = [&](const std::string& typ) -> std::optional<std::string> {
    if (!tc || !tc->contains(typ + "_token")) return std::nullopt;
    return token_content((*tc)[typ + "_token"]);
  };
  // The post-processor decides add_bos/add_eos/add_sep first (gguf-py's crude but fixed rules,
  // mirrored here with Python's truthiness: a missing, empty or null entry counts as unset).
  const bool has_tc = tc && !tc->empty();
  auto raw = [&](const std::string& typ) {
    return has_tc ? tc->value(typ + "_token", json()) : json();
  };
  auto falsy = [](const json& v) {
    return v.is_null() || (v.is_string() && v.get<std::string>().empty()) ||
           (v.is_object() && v.empty()) || (v.is_boolean() && !v.get<bool>());
  };
  json bos = raw("bos"), eos = raw("eos"), cls = raw("cls"), sep = raw("sep");
  if (falsy(bos) && !falsy(cls) && has_tc) (*tc)["bos_token"] = bos = cls;
  if (falsy(eos) && !falsy(sep) && has_tc) (*tc)["eos_token"] = eos = sep;
  std::map<std::string, bool> add_flags;
  const json post = tj.value("post_processor", json());
  if (post.is_object() && !post.empty()) {
    std::vector<json> processors;
    if (post.contains("processors") && post["processors"].is_array()) {
      for (const json& p : post["processors"]) processors.push_back(p);
    } else {
      processors.push_back(post);
    }
    for (const json& p : processors) {
      const std::string type = p.is_object() ? p.value("type", "") : "";
      if (type == "ByteLevel") {
        add_flags.emplace("bos", false);
        add_flags.emplace("eos", false);
      } else if (type == "RobertaProcessing") {
        add_flags["bos"] = add_flags["eos"] = add_flags["sep"] = true;
        if (falsy(cls) && has_tc) (*tc)["cls_token"] = cls = p.value("cls", json::array({bos}))[0];
        if (falsy(sep) && has_tc) (*tc)["sep_token"] = sep = p.value("sep", json::array({eos}))[0];
      } else if (type == "TemplateProcessing") {
        const json single = p.value("single", json::array());
        json pair = p.value("pair", json::array());
        std::optional<std::string> first, last;
        if (single.is_array() && single.size() > 1) {
          first = special_token_id_of(single.front());
          if (first) {
            const json f(*first);
            if (!has_tc) {
              bos = f;
            } else if (f != bos && f != cls) {
              if (falsy(bos)) (*tc)["bos_token"] = bos = f;
              if (falsy(cls)) (*tc)["cls_token"] = cls = f;
            }
            add_flags["bos"] = f == bos || f == cls;
          }
          last = special_token_id_of(single.back());
          if (last) {
            const json l(*last);
            if (!has_tc) {
              eos = l;
            } else if (l != eos) {
              // The template ends with another token: the old EOS becomes EOT (or EOM).
              const bool has_eot =
                  std::any_of(special_types.begin(), special_types.end(),
                              [](const SpecialType& t) { return t.name == "eot"; });
              if (!has_eot) {
                special_types.push_back({"eot", "eot_token_id"});
                (*tc)["eot_token"] = eos;
              } else {
                special_types.push_back({"eom", "eom_token_id"});
                (*tc)["eom_token"] = eos;
              }
              (*tc)["eos_token"] = eos = l;
            }
            add_flags["eos"] = l == eos;
          }
        }
        if (pair.is_array() && !pair.empty()) {
          // "A [sep] [eos] B" between the single template's leading/trailing tokens.
          const size_t start = first && special_token_id_of(pair.front()) == first ? 1 : 0;
          const size_t stop_cut = last && special_token_id_of(pair.back()) == last ? 1 : 0;
          std::vector<json> mid;
          for (size_t i = start; i + stop_cut < pair.size(); ++i) mid.push_back(pair[i]);
          auto seq_id = [](const json& item) {
            return item.is_object() && item.contains("Sequence") && item["Sequence"].is_object()
                       ? item["Sequence"].value("id", "")
                       : std::string();
          };
          if (!mid.empty() && seq_id(mid.front()) == "A" && seq_id(mid.back()) == "B" &&
              mid.size() > 2) {
            bool add_sep = false;
            const auto e0 = special_token_id_of(mid[1]);
            if (e0 && (json(*e0) == sep || json(*e0) == eos) && !last) add_sep = true;
            if (mid.size() == 4) {
              const auto e1 = special_token_id_of(mid[2]);
              if (e1 && (json(*e1) == sep || json(*e1) == eos)) add_sep = true;
            }
            add_flags["sep"] = add_sep;
            if (add_sep && falsy(sep) && has_tc) (*tc)["sep_token"] = sep = eos;
          }
        }
      }
    }
  }

  std::map<std::string, int64_t> ids;
  auto set_id = [&](const std::string& typ, const json& value) {
    if (!value.is_number_integer() || ids.count(typ) != 0) return;
    const int64_t id = value.get<int64_t>();
    if (id < 0) fail(ErrorKind::kBadFile, "{}: invalid {} token id {}", dir.string(), typ, id);
    if (id < vocab_size) ids[typ] = id;
  };
  if (has_tc) {
    const json prefix = tc->value("add_prefix_space", json());
    if (options.copy_add_prefix_space && prefix.is_boolean()) {
      writer.set_bool("tokenizer.ggml.add_space_prefix", prefix.get<bool>());
    }
    std::optional<std::string> chat_template;
    const json ct = tc->value("chat_template", json());
    if (ct.is_string()) {
      chat_template = ct.get<std::string>();
    } else if (ct.is_array()) {
      for (const json& choice : ct) {
        if (!choice.is_object() || !choice.contains("template") || !choice["template"].is_string())
          continue;
        std::string name = choice.value("name", "");
        for (char& c : name) {
          if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
        }
        if (name == "default") {
          chat_template = choice["template"].get<std::string>();
        } else if (!name.empty()) {
          writer.set_string("tokenizer.chat_template." + name,
                            choice["template"].get<std::string>());
        }
      }
    } else if (ct.is_null()) {
      if (auto jinja = read_optional_text(dir / "chat_template.jinja")) {
        chat_template = std::move(jinja);
      } else if (std::filesystem::is_regular_file(dir / "chat_template.json")) {
        const json alt = read_json_file(dir / "chat_template.json");
        if (alt.is_object() && alt.contains("chat_template") && alt["chat_template"].is_string())
          chat_template = alt["chat_template"].get<std::string>();
      }
    }
    if (chat_template) writer.set_string("tokenizer.chat_template", *chat_template);
    for (const SpecialType& t : special_types) {
      const json flag = tc->value("add_" + t.name + "_token", json());
      if (flag.is_boolean()) add_flags.emplace(t.name, flag.get<bool>());  // post-processor wins
      const std::optional<std::string> content = tc_token(t.name);
      if (!content) continue;
      for (const auto& [c, id] : added_order) {
        if (c == *content) {
          set_id(t.name, id);
          break;
        }
      }
    }
  }
  for (const SpecialType& t : special_types)
    set_id(t.name, config.value(t.name + "_token_id", json()));
  if (std::filesystem::is_regular_file(dir / "generation_config.json")) {
    const json gen = read_json_file(dir / "generation_config.json");
    if (gen.is_object()) {
      for (const SpecialType& t : special_types)
        set_id(t.name, gen.value(t.name + "_token_id", json()));
    }
  }
  for (const SpecialType& t : special_types) {
    if (const auto it = ids.find(t.name); it != ids.end()) {
      writer.set_uint32("tokenizer.ggml." + t.key, static_cast<uint32_t>(it->second));
    }
  }
  for (const auto& [typ, value] : add_flags) {
    if (typ == "bos" || typ == "eos" || typ == "sep") {
      writer.set_bool("tokenizer.ggml.add_" + typ + "_token", value);
    }
  }
}

}  // namespace luzao::cli
