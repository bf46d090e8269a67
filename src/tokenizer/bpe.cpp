// Byte-level BPE tokenizer (tokenizer.ggml.model "gpt2"): the pre-tokenizer splits the text, each
// piece's bytes become GPT-2's printable characters, and the lowest-ranked merge among adjacent
// symbols is applied until none is left (leftmost first on ties), as llama.cpp does.
#include <array>
#include <bit>
#include <queue>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace luzao {
namespace {

// Pre-tokenizer names for which llama.cpp takes a whole piece that is a token as is
// (ignore_merges) and adds BOS by default.
bool is_llama3_family(std::string_view pre) {
  for (std::string_view name : {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1",
                                "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"}) {
    if (pre == name) return true;
  }
  return false;
}

class BpeTokenizer final : public VocabTokenizer {
 public:
  explicit BpeTokenizer(const VocabData& vocab)
      : VocabTokenizer(vocab, /*spm=*/false), pre_(PreTokenizer::passes_for(vocab.pre)) {
    if (PreTokenizer::passes_for(vocab.pre).empty()) {
      fail(ErrorKind::kUnsupported, "{}: pre-tokenizer '{}' (tokenizer.ggml.pre) is not supported",
           source_, vocab.pre);
    }
    ignore_merges_ = is_llama3_family(vocab.pre);
    if (!vocab.add_bos && ignore_merges_) add_bos_ = true;
    if ((vocab.pre == "glm4" || vocab.pre == "chatglm-bpe") && !vocab.bos) bos_ = -1;

    for (int b = 0; b < 256; ++b) {
      std::string ch;
      unicode::append_utf8(unicode::byte_to_cp(static_cast<uint8_t>(b)), ch);
      byte_chars_[b] = ch;
    }
    // Merge ranks between symbol ids: token ids, then ids for merge pieces that are no token.
    size_t capacity = 16;
    while (capacity < vocab.merges.size() * 2) capacity *= 2;
    table_.assign(capacity, Slot{});
    shift_ = 64 - static_cast<int>(std::countr_zero(capacity));
    for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
      const std::string& m = vocab.merges[rank];
      const size_t space = m.find(' ', 1);
      if (space == std::string::npos) continue;
      const std::string_view left = std::string_view(m).substr(0, space);
      const std::string_view right = std::string_view(m).substr(space + 1);
      const int32_t l = intern(left), r = intern(right);
      const int32_t merged = intern(std::string(left) + std::string(right));
      insert(key(l, r), Merge{static_cast<int32_t>(rank), merged});
    }
    for (int b = 0; b < 256; ++b) byte_sids_[b] = symbol_id(byte_chars_[b]);
  }

  std::string token_to_piece(int32_t id, bool render_special) const override {
    if (id < 0 || id >= n_vocab()) return {};
    const uint16_t a = attr(id);
    const std::string& text = texts_[static_cast<size_t>(id)];
    if (a & (kAttrControl | kAttrUnknown)) return render_special ? text : std::string();
    if (a & kAttrUserDefined) return text;
    if (a & kAttrNormal) {
      std::vector<uint32_t> cps;
      unicode::decode_utf8(text, cps);
      std::string out;
      out.reserve(cps.size());
      for (uint32_t cp : cps) {
        const int byte = unicode::byte_from_cp(cp);
        if (byte >= 0) {
          out.push_back(static_cast<char>(byte));
        } else {
          unicode::append_utf8(cp, out);  // not from the byte alphabet: kept as it is
        }
      }
      return out;
    }
    if (a & kAttrByte) {
      const int byte = parse_byte_token(text);
      if (byte >= 0) return std::string(1, static_cast<char>(byte));
    }
    return {};
  }

 protected:
  void encode(std::string_view text, bool /*after_special*/,
              std::vector<int32_t>& out) const override {
    std::vector<uint32_t> cps, ends, scratch;
    unicode::decode_utf8(text, cps);
    pre_.split(cps, ends, scratch);
    std::string bytes, encoded;
    uint32_t begin = 0;
    for (uint32_t end : ends) {
      bytes.clear();
      for (uint32_t i = begin; i < end; ++i) unicode::append_utf8(cps[i], bytes);
      begin = end;
      if (ignore_merges_) {
        encoded.clear();
        for (char c : bytes) encoded += byte_chars_[static_cast<uint8_t>(c)];
        const int32_t id = find_token(encoded);
        if (id >= 0) {
          out.push_back(id);
          continue;
        }
      }
      merge_word(bytes, out);
    }
  }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  static uint64_t key(int32_t l, int32_t r) {
    return static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32 | static_cast<uint32_t>(r);
  }

  // Open-addressing table of merges (the lookup is the hot path of tokenization).
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge{};
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  size_t slot_of(uint64_t k) const { return (k * 0x9E3779B97F4A7C15ull) >> shift_; }
  void insert(uint64_t k, Merge m) {  // the first rank of a pair wins, as in llama.cpp
    const size_t mask = table_.size() - 1;
    for (size_t i = slot_of(k);; i = (i + 1) & mask) {
      if (table_[i].key == k) return;
      if (table_[i].key == kEmpty) {
        table_[i] = {k, m};
        return;
      }
    }
  }
  const Merge* find_merge(uint64_t k) const {
    const size_t mask = table_.size() - 1;
    for (size_t i = slot_of(k);; i = (i + 1) & mask) {
      if (table_[i].key == k) return &table_[i].merge;
      if (table_[i].key == kEmpty) return nullptr;
    }
  }

  int32_t symbol_id(std::string_view text) const {
    const int32_t id = find_token(text);
    if (id >= 0) return id;
    const auto it = extra_ids_.find(text);
    return it == extra_ids_.end() ? -1 : it->second;
  }
  int32_t intern(std::string_view text) {
    const int32_t id = symbol_id(text);
    if (id >= 0) return id;
    const auto sid = static_cast<int32_t>(n_vocab() + extra_texts_.size());
    extra_texts_.emplace_back(text);
    extra_ids_.emplace(std::string(text), sid);
    return sid;
  }

  // BPE over the bytes of one pre-tokenized piece.
  void merge_word(std::string_view bytes, std::vector<int32_t>& out) const {
    struct Symbol {
      int32_t sid;  // -1: a byte whose character no merge or token knows
      int32_t prev, next;
      uint32_t begin, end;  // byte range in the piece
    };
    const auto n = static_cast<int32_t>(bytes.size());
    std::vector<Symbol> syms(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) {
      syms[i] = {byte_sids_[static_cast<uint8_t>(bytes[i])], i - 1, i + 1 == n ? -1 : i + 1,
                 static_cast<uint32_t>(i), static_cast<uint32_t>(i + 1)};
    }
    struct Pair {
      int32_t rank, left, right, lsid, rsid, merged;
    };
    auto later = [](const Pair& a, const Pair& b) {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    };
    std::priority_queue<Pair, std::vector<Pair>, decltype(later)> queue(later);
    auto try_pair = [&](int32_t left, int32_t right) {
      if (left < 0 || right < 0) return;
      const int32_t l = syms[left].sid, r = syms[right].sid;
      if (l < 0 || r < 0) return;
      if (const Merge* m = find_merge(key(l, r))) {
        queue.push({m->rank, left, right, l, r, m->merged});
      }
    };
    for (int32_t i = 1; i < n; ++i) try_pair(i - 1, i);
    while (!queue.empty()) {
      const Pair top = queue.top();
      queue.pop();
      Symbol& l = syms[top.left];
      Symbol& r = syms[top.right];
      // Stale when either side changed since the pair was queued.
      if (l.sid != top.lsid || r.sid != top.rsid || l.next != top.right) continue;
      l.sid = top.merged;
      l.end = r.end;
      l.next = r.next;
      r.sid = -2;
      r.next = -1;
      if (l.next >= 0) syms[l.next].prev = top.left;
      try_pair(l.prev, top.left);
      try_pair(top.left, l.next);
    }
    for (int32_t i = n > 0 ? 0 : -1; i != -1; i = syms[i].next) {
      const Symbol& s = syms[i];
      if (s.sid >= 0 && s.sid < n_vocab()) {
        out.push_back(s.sid);
        continue;
      }
      // Not a token: llama.cpp looks up each byte of the symbol's text alone.
      std::string text;
      for (uint32_t k = s.begin; k < s.end; ++k)
        text += byte_chars_[static_cast<uint8_t>(bytes[k])];
      for (char c : text) {
        const int32_t id = find_token(std::string_view(&c, 1));
        if (id >= 0) out.push_back(id);
      }
    }
  }

  PreTokenizer pre_;
  bool ignore_merges_ = false;
  std::array<std::string, 256> byte_chars_;
  std::array<int32_t, 256> byte_sids_{};
  std::vector<Slot> table_;
  int shift_ = 60;
  std::vector<std::string> extra_texts_;
  TokenMap extra_ids_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(const VocabData& vocab) {
  return std::make_unique<BpeTokenizer>(vocab);
}

}  // namespace luzao
