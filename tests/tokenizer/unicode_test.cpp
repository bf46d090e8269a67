// Unicode helpers: code point classes against known Unicode facts, UTF-8 decoding of bad bytes
// (U+FFFD per byte, as llama.cpp does), GPT-2's byte alphabet, and Utf8Stream.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace luzao::unicode {
namespace {

TEST(Unicode, ClassesOfKnownCodePoints) {
  EXPECT_EQ(class_of('a'), kLetter);
  EXPECT_EQ(class_of(0x4E2D), kLetter);  // 中
  EXPECT_EQ(class_of(0xAC00), kLetter);  // 가
  EXPECT_EQ(class_of(0x0663), kNumber);  // ARABIC-INDIC DIGIT THREE
  EXPECT_EQ(class_of(0xFF11), kNumber);  // FULLWIDTH DIGIT ONE
  EXPECT_EQ(class_of(0x2167), kNumber);  // ROMAN NUMERAL EIGHT (Nl)
  EXPECT_EQ(class_of(0x3002), kPunct);   // IDEOGRAPHIC FULL STOP
  EXPECT_EQ(class_of('_'), kPunct);
  EXPECT_EQ(class_of('$'), kSymbol);
  EXPECT_EQ(class_of(0x20AC), kSymbol);   // EURO SIGN
  EXPECT_EQ(class_of(0x1F600), kSymbol);  // GRINNING FACE
  EXPECT_EQ(class_of(0x0301), kMark);     // COMBINING ACUTE ACCENT
  EXPECT_EQ(class_of(0x0E31), kMark);     // THAI CHARACTER MAI HAN-AKAT
  EXPECT_EQ(class_of(0x200D), kControl);  // ZERO WIDTH JOINER (Cf)
  EXPECT_EQ(class_of(0xE000), kControl);  // private use
  EXPECT_EQ(class_of(0x0378), kUndefined);
  EXPECT_EQ(class_of(0x110000), kUndefined);
}

TEST(Unicode, WhitespaceIsTheWhiteSpaceProperty) {
  for (uint32_t cp : {0x09u, 0x0Au, 0x0Bu, 0x0Cu, 0x0Du, 0x20u, 0x85u, 0xA0u, 0x1680u, 0x2000u,
                      0x200Au, 0x2028u, 0x2029u, 0x202Fu, 0x205Fu, 0x3000u}) {
    EXPECT_TRUE(is_whitespace(cp)) << std::hex << cp;
  }
  for (uint32_t cp : {0x1Cu, 0x1Fu, 0x200Bu, 0x180Eu, 0xFEFFu, 0x61u}) {
    EXPECT_FALSE(is_whitespace(cp)) << std::hex << cp;
  }
  // The ASCII fast path agrees with the generated table's classes.
  EXPECT_EQ(flags_of(' '), kSeparator | kWhitespace);
  EXPECT_EQ(flags_of('\n'), kControl | kWhitespace);
}

TEST(Unicode, DecodeReplacesEachBadByte) {
  std::vector<uint32_t> cps, offsets;
  decode_utf8("a\xE4\xB8\xAD\xFF\xC3(", cps, &offsets);
  EXPECT_EQ(cps, (std::vector<uint32_t>{'a', 0x4E2D, 0xFFFD, 0xFFFD, '('}));
  EXPECT_EQ(offsets, (std::vector<uint32_t>{0, 1, 4, 5, 6, 7}));
  decode_utf8("\xF0\x9F\x98\x80\xE4\xB8", cps);
  EXPECT_EQ(cps, (std::vector<uint32_t>{0x1F600, 0xFFFD, 0xFFFD}));
}

TEST(Unicode, EncodeRoundTrips) {
  for (uint32_t cp : {0x41u, 0x7FFu, 0x800u, 0xFFFFu, 0x10000u, 0x10FFFFu}) {
    std::string s;
    append_utf8(cp, s);
    std::vector<uint32_t> back;
    decode_utf8(s, back);
    EXPECT_EQ(back, std::vector<uint32_t>{cp});
  }
}

TEST(Unicode, Gpt2ByteAlphabet) {
  // Facts of GPT-2's bytes_to_unicode(): printable Latin-1 stays, the rest moves to U+0100 on.
  EXPECT_EQ(byte_to_cp('a'), uint32_t{'a'});
  EXPECT_EQ(byte_to_cp(0x00), 0x100u);
  EXPECT_EQ(byte_to_cp(' '), 0x120u);   // Ġ
  EXPECT_EQ(byte_to_cp('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(byte_to_cp(0x7F), 0x121u);
  EXPECT_EQ(byte_to_cp(0xAD), 0x143u);
  EXPECT_EQ(byte_to_cp(0xE4), 0xE4u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(byte_from_cp(byte_to_cp(static_cast<uint8_t>(b))), b);
  EXPECT_EQ(byte_from_cp(0x144), -1);
  EXPECT_EQ(byte_from_cp(0x4E2D), -1);
}

TEST(Utf8Stream, HoldsBackSplitCharacters) {
  Utf8Stream s;
  EXPECT_EQ(s.push("a\xE4"), "a");
  EXPECT_EQ(s.push("\xB8"), "");
  EXPECT_EQ(s.push("\xAD!"), "\xE4\xB8\xAD!");
  EXPECT_EQ(s.push("\xF0\x9F"), "");
  EXPECT_EQ(s.push("\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(s.push("\xFF"), "\xFF");  // can never start a character: passed through
  EXPECT_EQ(s.push("x\xC3"), "x");
  EXPECT_EQ(s.flush(), "\xC3");
  EXPECT_EQ(s.flush(), "");
}

}  // namespace
}  // namespace luzao::unicode
