// The vocabulary shared by the SPM and BPE tokenizers: token texts, scores and attributes,
// special ids, end-of-generation set, and the split of a text around special tokens.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace luzao {

// Token attributes (llama.cpp's llama_token_attr bits that tokenization uses).
enum TokenAttr : uint16_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1 << 0,
  kAttrUnused = 1 << 1,
  kAttrNormal = 1 << 2,
  kAttrControl = 1 << 3,
  kAttrUserDefined = 1 << 4,
  kAttrByte = 1 << 5,
  kAttrLstrip = 1 << 6,
  kAttrRstrip = 1 << 7,
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept;
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// A piece of the input after special tokens are cut out: raw text or one token.
struct Fragment {
  int32_t token = -1;  // -1 for raw text
  uint32_t begin = 0, end = 0;
};

class VocabTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> tokenize(std::string_view text, bool add_special,
                                bool parse_special) const override;
  int32_t n_vocab() const override { return static_cast<int32_t>(texts_.size()); }
  const std::string& token_text(int32_t id) const override;
  int32_t find_token(std::string_view text) const override;
  int32_t bos() const override { return bos_; }
  int32_t eos() const override { return eos_; }
  bool add_bos() const override { return add_bos_; }
  bool is_end_of_generation(int32_t id) const override;
  bool is_control(int32_t id) const override;

  uint16_t attr(int32_t id) const { return attrs_[static_cast<size_t>(id)]; }

 protected:
  // `spm` selects llama.cpp's SPM defaults (BOS 1, EOS 2, UNK 0, add_bos) over BPE's (11, 11).
  VocabTokenizer(const VocabData& vocab, bool spm);

  // Tokenizes one raw fragment. `after_special` is true at the start of the text and right after
  // a special token (SPM puts its space prefix there).
  virtual void encode(std::string_view text, bool after_special,
                      std::vector<int32_t>& out) const = 0;

  // The fragments of `text` once the special tokens in it are cut out (llama.cpp's
  // tokenizer_st_partition: longest tokens first, leftmost occurrence first).
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;

  std::string source_;
  std::vector<std::string> texts_;
  std::vector<float> scores_;
  std::vector<uint16_t> attrs_;
  TokenMap ids_;  // text -> id; the last id wins for a repeated text, as in llama.cpp
  int32_t bos_ = -1, eos_ = -1, eot_ = -1, eom_ = -1, unk_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;

 private:
  void detect_special(const VocabData& vocab);
  void build_special_index();

  std::vector<int32_t> eog_;       // sorted
  std::vector<int32_t> specials_;  // control / user-defined / unknown ids, longest text first
  // Byte trie over the special texts; node 0 is the root. `special` is an index into specials_.
  struct TrieNode {
    std::vector<std::pair<uint8_t, uint32_t>> children;
    int32_t special = -1;
  };
  std::vector<TrieNode> trie_;
};

// The byte of a "<0xXX>" token text, or -1.
int parse_byte_token(std::string_view text);

std::unique_ptr<Tokenizer> make_spm_tokenizer(const VocabData& vocab);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(const VocabData& vocab);

}  // namespace luzao
