// Unicode helpers for the tokenizers: UTF-8 decoding as llama.cpp does it, code point classes
// (general category + White_Space) and GPT-2's byte <-> printable character mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace luzao::unicode {

// The general category class of a code point, low 3 bits of its flags.
enum CpClass : uint8_t {
  kUndefined = 0,  // unassigned (Cn)
  kLetter = 1,     // \p{L}
  kNumber = 2,     // \p{N}
  kPunct = 3,      // \p{P}
  kMark = 4,       // \p{M}
  kSymbol = 5,     // \p{S}
  kSeparator = 6,  // \p{Z}
  kControl = 7,    // \p{C} except Cn
};
constexpr uint8_t kClassMask = 7;
constexpr uint8_t kWhitespace = 8;  // the White_Space property (\s)

struct CpRange {
  uint32_t first;
  uint8_t flags;
};
extern const CpRange kCpRanges[];
extern const size_t kCpRangeCount;

// Class and whitespace bit of `cp`; code points above U+10FFFF are kUndefined.
uint8_t flags_of(uint32_t cp);
inline CpClass class_of(uint32_t cp) {
  return static_cast<CpClass>(flags_of(cp) & kClassMask);
}
inline bool is_whitespace(uint32_t cp) {
  return (flags_of(cp) & kWhitespace) != 0;
}

// Byte length of the UTF-8 sequence that `lead` starts, from its high bits alone (1 for a stray
// continuation byte), as llama.cpp's SPM and BPE symbol splitting use it.
inline size_t utf8_len(char lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[static_cast<uint8_t>(lead) >> 4];
}

// Decodes `text`; each byte that does not start a well-formed sequence becomes U+FFFD.
// `offsets` (optional) receives the byte offset where each code point starts.
void decode_utf8(std::string_view text, std::vector<uint32_t>& cps,
                 std::vector<uint32_t>* offsets = nullptr);
void append_utf8(uint32_t cp, std::string& out);

// GPT-2's byte-level alphabet: every byte maps to one printable code point.
uint32_t byte_to_cp(uint8_t byte);
// The byte a code point of that alphabet stands for, or -1.
int byte_from_cp(uint32_t cp);

}  // namespace luzao::unicode
