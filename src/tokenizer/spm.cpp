// SentencePiece-style tokenizer (tokenizer.ggml.model "llama"): spaces become U+2581, then the
// adjacent pair whose merge is the highest-scoring token is merged until none is left; what is
// not a token falls back to <0xXX> byte tokens. Same order of merges as llama.cpp.
#include <array>
#include <cstdio>
#include <queue>
#include <string>

#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace luzao {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581

class SpmTokenizer final : public VocabTokenizer {
 public:
  explicit SpmTokenizer(const VocabData& vocab) : VocabTokenizer(vocab, /*spm=*/true) {
    for (int b = 0; b < 256; ++b) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "<0x%02X>", b);
      int32_t id = find_token(hex);
      if (id < 0) id = find_token(std::string(1, static_cast<char>(b)));
      byte_ids_[b] = id;
    }
  }

  std::string token_to_piece(int32_t id, bool render_special) const override {
    if (id < 0 || id >= n_vocab()) return {};
    const uint16_t a = attr(id);
    const std::string& text = texts_[static_cast<size_t>(id)];
    if (a & (kAttrControl | kAttrUnknown)) return render_special ? text : std::string();
    if (a & kAttrUserDefined) return text;
    if (a & kAttrNormal) {
      std::string out;
      out.reserve(text.size());
      for (size_t i = 0; i < text.size();) {
        if (text.compare(i, kSpace.size(), kSpace) == 0) {
          out.push_back(' ');
          i += kSpace.size();
        } else {
          out.push_back(text[i++]);
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
  void encode(std::string_view text, bool after_special, std::vector<int32_t>& out) const override {
    std::string buf;
    buf.reserve(text.size() + 8);
    if (add_space_prefix_ && after_special) buf.append(kSpace);
    for (char c : text) {
      if (c == ' ') {
        buf.append(kSpace);
      } else {
        buf.push_back(c);
      }
    }

    struct Symbol {
      uint32_t off, n;
      int32_t prev, next;
    };
    std::vector<Symbol> syms;
    syms.reserve(buf.size());
    for (size_t off = 0; off < buf.size();) {
      const auto n = static_cast<uint32_t>(std::min(unicode::utf8_len(buf[off]), buf.size() - off));
      const auto index = static_cast<int32_t>(syms.size());
      syms.push_back(
          {static_cast<uint32_t>(off), n, index - 1, off + n == buf.size() ? -1 : index + 1});
      off += n;
    }

    struct Bigram {
      float score;
      int32_t left, right;
      uint32_t size;
    };
    // Highest score first; among equal scores the leftmost pair.
    auto worse = [](const Bigram& a, const Bigram& b) {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
    const std::string_view view(buf);
    auto try_pair = [&](int32_t left, int32_t right) {
      if (left < 0 || right < 0) return;
      const uint32_t size = syms[left].n + syms[right].n;
      const int32_t id = find_token(view.substr(syms[left].off, size));
      if (id < 0) return;
      queue.push({scores_[static_cast<size_t>(id)], left, right, size});
    };
    for (size_t i = 1; i < syms.size(); ++i) {
      try_pair(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
    }
    while (!queue.empty()) {
      const Bigram top = queue.top();
      queue.pop();
      Symbol& l = syms[top.left];
      Symbol& r = syms[top.right];
      if (l.n == 0 || r.n == 0 || l.n + r.n != top.size) continue;  // stale
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) syms[r.next].prev = top.left;
      try_pair(l.prev, top.left);
      try_pair(top.left, l.next);
    }

    for (int32_t i = syms.empty() ? -1 : 0; i != -1; i = syms[i].next) {
      const std::string_view piece = view.substr(syms[i].off, syms[i].n);
      const int32_t id = find_token(piece);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      for (char c : piece) {
        const int32_t byte_id = byte_ids_[static_cast<uint8_t>(c)];
        if (byte_id >= 0) {
          out.push_back(byte_id);
        } else if (unk_ >= 0) {
          out.push_back(unk_);
        }
      }
    }
  }

 private:
  std::array<int32_t, 256> byte_ids_{};
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(const VocabData& vocab) {
  return std::make_unique<SpmTokenizer>(vocab);
}

}  // namespace luzao
