// Vocabulary loading shared by both tokenizer kinds: attributes, special ids and llama.cpp's
// text-based detection of end-of-turn and FIM tokens, and the split around special tokens.
#include "tokenizer/vocab.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "core/error.h"

namespace luzao {
namespace {

// Texts llama.cpp takes for an end-of-turn token when the file names none.
constexpr std::array<std::string_view, 11> kEotTexts = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<\xEF\xBD\x9C"
    "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "<end_of_utterance>"};

// Texts whose tokens end generation (and are forced to be control tokens).
constexpr std::array<std::string_view, 24> kEogTexts = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\xEF\xBD\x9C"
    "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "[e~[",
    "<|end_of_turn|>",
    "<|endofturn|>"};

struct FimTexts {
  std::optional<int64_t> VocabData::*field;
  std::vector<std::string_view> texts;
};

uint16_t attr_of_type(int32_t type) {
  switch (static_cast<TokenType>(type)) {
    case TokenType::kNormal:
      return kAttrNormal;
    case TokenType::kUnknown:
      return kAttrUnknown;
    case TokenType::kControl:
      return kAttrControl;
    case TokenType::kUserDefined:
      return kAttrUserDefined;
    case TokenType::kUnused:
      return kAttrUnused;
    case TokenType::kByte:
      return kAttrByte;
    default:
      return kAttrUndefined;
  }
}

bool c_space(char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}

}  // namespace

int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(text[3]), lo = hex(text[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

size_t StringHash::operator()(std::string_view s) const noexcept {
  return std::hash<std::string_view>{}(s);
}

VocabTokenizer::VocabTokenizer(const VocabData& vocab, bool spm) : source_(vocab.source) {
  const size_t n = vocab.tokens.size();
  if (n == 0) fail(ErrorKind::kBadFile, "{}: tokenizer.ggml.tokens is empty", source_);
  if (n > static_cast<size_t>(INT32_MAX)) {
    fail(ErrorKind::kBadFile, "{}: tokenizer.ggml.tokens has {} entries", source_, n);
  }
  if (!vocab.scores.empty() && vocab.scores.size() < n) {
    fail(ErrorKind::kBadFile, "{}: tokenizer.ggml.scores has {} entries for {} tokens", source_,
         vocab.scores.size(), n);
  }
  if (!vocab.types.empty() && vocab.types.size() < n) {
    fail(ErrorKind::kBadFile, "{}: tokenizer.ggml.token_type has {} entries for {} tokens", source_,
         vocab.types.size(), n);
  }
  texts_.resize(n);
  scores_.assign(n, 0.0f);
  attrs_.assign(n, kAttrNormal);
  ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    texts_[i] = vocab.tokens[i].empty() ? fmt::format("[EMPTY_{}]", i) : vocab.tokens[i];
    if (!vocab.scores.empty()) scores_[i] = vocab.scores[i];
    if (!vocab.types.empty()) attrs_[i] = attr_of_type(vocab.types[i]);
    ids_.insert_or_assign(texts_[i], static_cast<int32_t>(i));
  }

  // llama.cpp's defaults, then the file's values where they are in range.
  auto in_range = [&](int64_t id) { return id >= 0 && id < static_cast<int64_t>(n); };
  auto pick = [&](int32_t fallback, const std::optional<int64_t>& given) -> int32_t {
    if (!in_range(fallback)) fallback = -1;
    return given && in_range(*given) ? static_cast<int32_t>(*given) : fallback;
  };
  bos_ = pick(spm ? 1 : 11, vocab.bos);
  eos_ = pick(spm ? 2 : 11, vocab.eos);
  unk_ = pick(spm ? 0 : -1, vocab.unk);
  eot_ = pick(-1, vocab.eot);
  eom_ = pick(-1, vocab.eom);
  add_bos_ = vocab.add_bos.value_or(spm);
  add_eos_ = vocab.add_eos.value_or(false);
  add_space_prefix_ = vocab.add_space_prefix.value_or(spm);

  detect_special(vocab);
  build_special_index();

  // llama.cpp strips the whitespace after phi-3's special tokens (their rstrip flag in HF).
  std::string name = vocab.name;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (int32_t id : specials_) attrs_[id] |= kAttrRstrip;
    auto set_rstrip = [&](std::string_view text, bool on) {
      const int32_t id = find_token(text);
      if (id < 0) return;
      attrs_[id] = on ? (attrs_[id] | kAttrRstrip) : (attrs_[id] & ~kAttrRstrip);
    };
    set_rstrip("</s>", true);
    for (std::string_view text : {"<unk>", "<s>", "<|endoftext|>"}) set_rstrip(text, false);
  }
}

void VocabTokenizer::detect_special(const VocabData& vocab) {
  const int32_t n = n_vocab();
  auto make_control = [&](int32_t id) { attrs_[id] |= kAttrControl; };
  auto matches = [](std::string_view text, const auto& list) {
    return std::find(list.begin(), list.end(), text) != list.end();
  };

  if (eot_ < 0) {
    for (int32_t id = 0; id < n && eot_ < 0; ++id) {
      if (matches(texts_[id], kEotTexts)) {
        eot_ = id;
        make_control(id);
      }
    }
  }
  if (eom_ < 0) {
    eom_ = find_token("<|eom_id|>");
    if (eom_ >= 0) make_control(eom_);
  }

  const std::vector<FimTexts> fims = {
      {&VocabData::fim_pre,
       {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
        "<\xEF\xBD\x9C"
        "fim\xE2\x96\x81"
        "begin\xEF\xBD\x9C>",
        "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"}},
      {&VocabData::fim_suf,
       {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
        "<\xEF\xBD\x9C"
        "fim\xE2\x96\x81hole\xEF\xBD\x9C>",
        "<SUF>", "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"}},
      {&VocabData::fim_mid,
       {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
        "<\xEF\xBD\x9C"
        "fim\xE2\x96\x81"
        "end\xEF\xBD\x9C>",
        "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"}},
      {&VocabData::fim_pad, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
      {&VocabData::fim_rep,
       {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
      {&VocabData::fim_sep, {"<|file_sep|>"}},
  };
  std::vector<int32_t> fim_ids;
  for (const FimTexts& fim : fims) {
    int32_t id = -1;
    const std::optional<int64_t>& given = vocab.*fim.field;
    if (given && *given >= 0 && *given < n) {
      id = static_cast<int32_t>(*given);
    } else {
      for (int32_t t = 0; t < n && id < 0; ++t) {
        if (matches(texts_[t], fim.texts)) {
          id = t;
          make_control(t);
        }
      }
    }
    fim_ids.push_back(id);
  }

  // End of generation: FIM pad / repo / file separator, the texts above, EOS, EOT, EOM.
  for (size_t k = 3; k < fim_ids.size(); ++k) {
    if (fim_ids[k] >= 0) eog_.push_back(fim_ids[k]);
  }
  for (int32_t id = 0; id < n; ++id) {
    if (matches(texts_[id], kEogTexts)) {
      eog_.push_back(id);
      make_control(id);
    }
  }
  for (std::string_view text : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}) {
    const int32_t id = find_token(text);
    if (id >= 0) attrs_[id] = kAttrUserDefined;  // gpt-oss: always rendered
  }
  for (int32_t id : {eos_, eot_, eom_}) {
    if (id >= 0) eog_.push_back(id);
  }
  std::sort(eog_.begin(), eog_.end());
  eog_.erase(std::unique(eog_.begin(), eog_.end()), eog_.end());

  auto eog_text = [&](std::string_view text) -> int32_t {
    for (int32_t id : eog_) {
      if (texts_[id] == text) return id;
    }
    return -1;
  };
  // Harmony-style vocabularies: "<|end|>" ends a message, not the generation.
  const int32_t end_id = eog_text("<|end|>");
  const bool has_call = eog_text("<|call|>") >= 0 || eog_text("<|calls|>") >= 0;
  if (end_id >= 0 && has_call && (eog_text("<|return|>") >= 0 || eog_text("<|flush|>") >= 0)) {
    eog_.erase(std::find(eog_.begin(), eog_.end(), end_id));
    attrs_[end_id] = kAttrUserDefined;
  }
  const int32_t s_id = eog_text("</s>");
  if (s_id >= 0 && eog_text("<|tool_response>") >= 0) {
    eog_.erase(std::find(eog_.begin(), eog_.end(), s_id));
    attrs_[s_id] = kAttrNormal;
  }
}

void VocabTokenizer::build_special_index() {
  for (int32_t id = 0; id < n_vocab(); ++id) {
    if (attrs_[id] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) specials_.push_back(id);
  }
  std::stable_sort(specials_.begin(), specials_.end(),
                   [&](int32_t a, int32_t b) { return texts_[a].size() > texts_[b].size(); });
  trie_.assign(1, TrieNode{});
  for (size_t k = 0; k < specials_.size(); ++k) {
    uint32_t node = 0;
    for (char ch : texts_[specials_[k]]) {
      const auto byte = static_cast<uint8_t>(ch);
      auto& kids = trie_[node].children;
      auto it =
          std::find_if(kids.begin(), kids.end(), [&](const auto& c) { return c.first == byte; });
      if (it != kids.end()) {
        node = it->second;
      } else {
        const auto next = static_cast<uint32_t>(trie_.size());
        trie_[node].children.emplace_back(byte, next);
        trie_.emplace_back();
        node = next;
      }
    }
    if (trie_[node].special < 0) trie_[node].special = static_cast<int32_t>(k);
  }
}

std::vector<Fragment> VocabTokenizer::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, 0, static_cast<uint32_t>(text.size())});
  if (specials_.empty()) return frags;

  // Every place a special text occurs, as (priority, position).
  std::vector<std::pair<uint32_t, uint32_t>> hits;
  const auto& root = trie_[0].children;
  std::array<uint32_t, 256> first{};
  for (const auto& [byte, node] : root) first[byte] = node;
  for (uint32_t pos = 0; pos < text.size(); ++pos) {
    uint32_t node = first[static_cast<uint8_t>(text[pos])];
    for (uint32_t k = pos + 1; node != 0; ++k) {
      const int32_t special = trie_[node].special;
      if (special >= 0) {
        const uint16_t a = attrs_[specials_[special]];
        if (parse_special || !(a & (kAttrControl | kAttrUnknown))) hits.emplace_back(special, pos);
      }
      if (k >= text.size()) break;
      const auto& kids = trie_[node].children;
      const auto byte = static_cast<uint8_t>(text[k]);
      auto it =
          std::find_if(kids.begin(), kids.end(), [&](const auto& c) { return c.first == byte; });
      node = it == kids.end() ? 0 : it->second;
    }
  }
  if (hits.empty()) return frags;
  std::sort(hits.begin(), hits.end());

  // In priority order, cut each token's leftmost occurrences out of the raw fragments.
  std::vector<Fragment> next;
  for (size_t h = 0; h < hits.size();) {
    const uint32_t special = hits[h].first;
    size_t group_end = h;
    while (group_end < hits.size() && hits[group_end].first == special) ++group_end;
    const int32_t id = specials_[special];
    const auto len = static_cast<uint32_t>(texts_[id].size());
    const uint16_t a = attrs_[id];
    next.clear();
    size_t k = h;
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      uint32_t cursor = f.begin;
      for (; k < group_end && hits[k].second < f.end; ++k) {
        const uint32_t p = hits[k].second;
        if (p < cursor || p + len > f.end) continue;
        uint32_t left_end = p;
        if (a & kAttrLstrip) {
          while (left_end > cursor && c_space(text[left_end - 1])) --left_end;
        }
        if (left_end > cursor) next.push_back({-1, cursor, left_end});
        next.push_back({id, p, p + len});
        cursor = p + len;
        if (a & kAttrRstrip) {
          while (cursor < f.end && c_space(text[cursor])) ++cursor;
        }
      }
      if (cursor < f.end) next.push_back({-1, cursor, f.end});
    }
    frags.swap(next);
    h = group_end;
  }
  return frags;
}

std::vector<int32_t> VocabTokenizer::tokenize(std::string_view text, bool add_special,
                                              bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && add_bos_ && bos_ >= 0) out.push_back(bos_);
  bool after_special = true;
  for (const Fragment& f : partition(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
    } else {
      encode(text.substr(f.begin, f.end - f.begin), after_special, out);
      after_special = false;
    }
  }
  if (add_special && add_eos_ && eos_ >= 0) out.push_back(eos_);
  return out;
}

const std::string& VocabTokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= n_vocab()) {
    fail(ErrorKind::kInvalidArgument, "{}: token id {} is out of range (vocabulary of {})", source_,
         id, n_vocab());
  }
  return texts_[static_cast<size_t>(id)];
}

int32_t VocabTokenizer::find_token(std::string_view text) const {
  const auto it = ids_.find(text);
  return it == ids_.end() ? -1 : it->second;
}

bool VocabTokenizer::is_end_of_generation(int32_t id) const {
  return std::binary_search(eog_.begin(), eog_.end(), id);
}

bool VocabTokenizer::is_control(int32_t id) const {
  return id >= 0 && id < n_vocab() && (attrs_[static_cast<size_t>(id)] & kAttrControl);
}

}  // namespace luzao
