// Pre-tokenizer splits on hand-worked examples of each regex family (expected pieces derived by
// applying the regexes llama.cpp uses by hand, leftmost match first).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"

namespace luzao {
namespace {

std::vector<std::string> split(std::string_view pre, std::string_view text) {
  const std::vector<PreTokenizer::Pass> passes = PreTokenizer::passes_for(pre);
  EXPECT_FALSE(passes.empty()) << pre;
  std::vector<uint32_t> cps, offsets, ends, scratch;
  unicode::decode_utf8(text, cps, &offsets);
  PreTokenizer(passes).split(cps, ends, scratch);
  std::vector<std::string> pieces;
  uint32_t begin = 0;
  for (uint32_t end : ends) {
    pieces.emplace_back(text.substr(offsets[begin], offsets[end] - offsets[begin]));
    begin = end;
  }
  return pieces;
}

using Pieces = std::vector<std::string>;

TEST(PreTokenizer, Gpt2) {
  EXPECT_EQ(split("gpt-2", "Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(split("gpt-2", "I'm  here\n\n"), (Pieces{"I", "'m", " ", " here", "\n\n"}));
  EXPECT_EQ(split("gpt-2", "x\t y"), (Pieces{"x", "\t", " y"}));
  EXPECT_EQ(split("gpt-2", "123abc ++ 45"), (Pieces{"123", "abc", " ++", " 45"}));
  EXPECT_EQ(split("gpt-2", "It'S"), (Pieces{"It", "'", "S"}));  // contractions are lower case
  EXPECT_EQ(split("gpt-2", "  "), (Pieces{"  "}));
  EXPECT_EQ(split("mpt", "a  b"), (Pieces{"a", " ", " b"}));  // alias
}

TEST(PreTokenizer, Llama3) {
  EXPECT_EQ(split("llama-bpe", "Hello, World!\n\n  x"),
            (Pieces{"Hello", ",", " World", "!\n\n", " ", " x"}));
  EXPECT_EQ(split("llama-bpe", "12345"), (Pieces{"123", "45"}));
  EXPECT_EQ(split("llama-bpe", "It'S"), (Pieces{"It", "'S"}));
  EXPECT_EQ(split("llama-bpe", "a \n\n b"), (Pieces{"a", " \n\n", " b"}));
  EXPECT_EQ(split("llama-bpe", "$hello"), (Pieces{"$hello"}));
  EXPECT_EQ(split("llama-bpe", "\nhello"), (Pieces{"\n", "hello"}));
}

TEST(PreTokenizer, Qwen2AndQwen35) {
  EXPECT_EQ(split("qwen2", "2024\xE5\xB9\xB4"), (Pieces{"2", "0", "2", "4", "\xE5\xB9\xB4"}));
  // e + COMBINING ACUTE + x: qwen2 leaves the mark out of \p{L}+, qwen35 keeps it in.
  EXPECT_EQ(split("qwen2", "e\xCC\x81x"), (Pieces{"e", "\xCC\x81x"}));
  EXPECT_EQ(split("qwen35", "e\xCC\x81x"), (Pieces{"e\xCC\x81x"}));
  EXPECT_EQ(split("qwen35", "a\xCC\x81!"), (Pieces{"a\xCC\x81", "!"}));
}

TEST(PreTokenizer, DeepseekCoder) {
  EXPECT_EQ(split("deepseek-coder", "abc123 def"), (Pieces{"abc", "1", "2", "3", " def"}));
  EXPECT_EQ(split("deepseek-coder", "a\n\nb"), (Pieces{"a", "\n", "\n", "b"}));
  // CJK letters are split out of a \p{L} run.
  EXPECT_EQ(split("deepseek-coder", "ab\xE4\xB8\xAD"), (Pieces{"ab", "\xE4\xB8\xAD"}));
}

TEST(PreTokenizer, DeepseekLlm) {
  EXPECT_EQ(split("deepseek-llm", "Hi, you 42  "), (Pieces{"Hi", ",", " you", " ", "42", "  "}));
  // IDEOGRAPHIC SPACE is whitespace, so it never joins the CJK runs.
  EXPECT_EQ(split("deepseek-llm", "\xE4\xB8\xAD\xE3\x80\x80\xE6\x96\x87"),
            (Pieces{"\xE4\xB8\xAD", "\xE3\x80\x80", "\xE6\x96\x87"}));
}

TEST(PreTokenizer, FalconStarcoderDefault) {
  EXPECT_EQ(split("falcon", "a,b 12345"), (Pieces{"a", ",", "b", " ", "123", "45"}));
  EXPECT_EQ(split("starcoder", "ab12 x"), (Pieces{"ab", "1", "2", " x"}));
  EXPECT_EQ(split("default", "x=1234;"), (Pieces{"x", "=", "123", "4", ";"}));
  EXPECT_EQ(split("", "x=1"), split("default", "x=1"));
}

TEST(PreTokenizer, UnknownNameHasNoPasses) {
  EXPECT_TRUE(PreTokenizer::passes_for("no-such-pre").empty());
}

}  // namespace
}  // namespace luzao
