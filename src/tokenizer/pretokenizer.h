// The pre-tokenizers of byte-level BPE vocabularies: the regex splits that llama.cpp applies for
// each `tokenizer.ggml.pre` value, written as hand-made matchers over code point classes.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace luzao {

class PreTokenizer {
 public:
  // One split step. Each step splits every piece the previous steps produced; text a step does
  // not match stays a piece of its own (as llama.cpp's regex splitting keeps it).
  enum class Pass : uint8_t {
    kGpt2,          // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
    kLlama3,        // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|...
    kQwen2,         // kLlama3 with \p{N} instead of \p{N}{1,3}
    kQwen35,        // kQwen2 with [\p{L}\p{M}] for letters
    kNewline,       // [\r\n]
    kWsLetters,     // \s?\p{L}+
    kWsPunct,       // \s?\p{P}+
    kCjk,           // [一-龥ࠀ-一가-퟿]+
    kDigit,         // \p{N}
    kDigits,        // \p{N}+
    kAsciiDigits3,  // [0-9][0-9][0-9]
    kPunctSymbols,  // [\p{P}\$\+<=>\^~\|]+
    kPunctSymbolsTick,  // [\p{P}\$\+<=>\^~\|`]+
    kWsLatin,           // \s?[A-Za-zµÀ-ÖØ-öø-ƺ...]+ (deepseek-llm's cased-letter ranges)
    kWsAsciiPunct,      // \s?[!-/:-~！-／：-～‘-‟　-。]+
    kTrailingWs,        // \s+$
  };

  // The steps for a `tokenizer.ggml.pre` value; empty when luzao does not know the name.
  static std::vector<Pass> passes_for(std::string_view pre);

  explicit PreTokenizer(std::vector<Pass> passes) : passes_(std::move(passes)) {}

  // Splits the code points `cps` into pieces and returns the end index of each piece (the last
  // is cps.size()). `scratch` is reused storage.
  void split(std::span<const uint32_t> cps, std::vector<uint32_t>& ends,
             std::vector<uint32_t>& scratch) const;

 private:
  std::vector<Pass> passes_;
};

}  // namespace luzao
