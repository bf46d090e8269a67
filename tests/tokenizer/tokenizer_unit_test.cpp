// SPM and BPE tokenizers on small hand-built vocabularies whose results are worked out by hand:
// merge order and tie-breaks, byte fallback, special tokens, EOG detection, errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace luzao {
namespace {

using Ids = std::vector<int32_t>;
constexpr const char* kSp = "\xE2\x96\x81";  // U+2581

// <unk> <s> </s>, 256 byte tokens (ids 3..258), then a few pieces.
VocabData spm_vocab() {
  VocabData v;
  v.source = "spm-test";
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    v.tokens.emplace_back(hex);
    v.types.push_back(6);
  }
  const std::vector<std::pair<std::string, float>> pieces = {{kSp, -1},
                                                             {"a", -1},
                                                             {"b", -1},
                                                             {"c", -1},
                                                             {"ab", -2},
                                                             {"bc", -0.5f},
                                                             {std::string(kSp) + "a", -3}};
  for (const auto& [text, score] : pieces) {  // ids 259..265
    v.tokens.push_back(text);
    v.types.push_back(1);
  }
  v.tokens.push_back("<|user|>");  // 266, user-defined
  v.types.push_back(4);
  v.tokens.push_back("<|end|>");  // 267, typed normal but an end-of-turn text
  v.types.push_back(1);
  v.scores.assign(v.tokens.size(), 0.0f);
  for (size_t i = 0; i < pieces.size(); ++i) v.scores[259 + i] = pieces[i].second;
  return v;
}

TEST(SpmTokenizer, MergesHighestScoreFirst) {
  const auto tok = Tokenizer::from_vocab(spm_vocab());
  // "▁abc": bc (-0.5) beats ab (-2), then ▁a (-3); "abc" and "▁abc" are no tokens.
  EXPECT_EQ(tok->tokenize("abc", false, false), (Ids{265, 264}));
  EXPECT_EQ(tok->tokenize("abc", true, false), (Ids{1, 265, 264}));
  EXPECT_EQ(tok->tokenize("", false, false), Ids{});
  EXPECT_EQ(tok->tokenize("", true, false), Ids{1});
  EXPECT_EQ(tok->detokenize(Ids{265, 264}, false), " abc");
}

TEST(SpmTokenizer, ByteFallback) {
  const auto tok = Tokenizer::from_vocab(spm_vocab());
  // é = C3 A9 is no token: byte tokens 3 + 0xC3, 3 + 0xA9.
  EXPECT_EQ(tok->tokenize("\xC3\xA9", false, false), (Ids{259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok->token_to_piece(3 + 0xC3, false), "\xC3");
  EXPECT_EQ(tok->detokenize(tok->tokenize("\xC3\xA9 a", false, false), false), " \xC3\xA9 a");
}

TEST(SpmTokenizer, SpecialTokens) {
  const auto tok = Tokenizer::from_vocab(spm_vocab());
  // User-defined tokens are always cut out; the text after a special token gets a space prefix.
  EXPECT_EQ(tok->tokenize("a<|user|>b", false, false), (Ids{265, 266, 259, 261}));
  EXPECT_EQ(tok->tokenize("a<|user|>  b", false, false), (Ids{265, 266, 259, 259, 259, 261}));
  // Control tokens only with parse_special; otherwise their text is plain text (bytes here).
  EXPECT_EQ(tok->tokenize("<s>a", false, true), (Ids{1, 265}));
  EXPECT_EQ(tok->tokenize("<s>a", false, false), (Ids{259, 3 + '<', 3 + 's', 3 + '>', 260}));
  EXPECT_EQ(tok->token_to_piece(1, false), "");
  EXPECT_EQ(tok->token_to_piece(1, true), "<s>");
  EXPECT_EQ(tok->token_to_piece(266, false), "<|user|>");
  // "<|end|>" is typed normal, but llama.cpp makes it a control, end-of-generation token.
  EXPECT_TRUE(tok->is_control(267));
  EXPECT_TRUE(tok->is_end_of_generation(267));
  EXPECT_TRUE(tok->is_end_of_generation(2));
  EXPECT_FALSE(tok->is_end_of_generation(1));
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_TRUE(tok->add_bos());
}

TEST(SpmTokenizer, Phi3StripsSpaceAfterSpecialTokens) {
  VocabData v = spm_vocab();
  v.name = "Phi3";
  const auto tok = Tokenizer::from_vocab(v);
  EXPECT_EQ(tok->tokenize("a<|user|>  b", false, false), (Ids{265, 266, 259, 261}));
}

TEST(SpmTokenizer, NoSpacePrefixWhenDisabled) {
  VocabData v = spm_vocab();
  v.add_space_prefix = false;
  const auto tok = Tokenizer::from_vocab(v);
  EXPECT_EQ(tok->tokenize("abc", false, false), (Ids{260, 264}));
}

// Byte tokens 0..255 (GPT-2 characters in byte order), then merged pieces.
VocabData bpe_vocab(std::string pre, size_t n_merges) {
  VocabData v;
  v.source = "bpe-test";
  v.model = "gpt2";
  v.pre = std::move(pre);
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    unicode::append_utf8(unicode::byte_to_cp(static_cast<uint8_t>(b)), ch);
    v.tokens.push_back(ch);
  }
  const std::vector<std::string> merges = {"h e",        "l l", "he ll",        "hell o",
                                           "\xC4\xA0 w", "o r", "\xC4\xA0w or", "l d"};
  for (const std::string& m : merges) {  // ids 256..263
    const size_t space = m.find(' ');
    v.tokens.push_back(m.substr(0, space) + m.substr(space + 1));
  }
  v.merges.assign(merges.begin(), merges.begin() + static_cast<std::ptrdiff_t>(n_merges));
  v.tokens.push_back("<|endoftext|>");  // 264
  v.types.assign(v.tokens.size(), 1);
  v.types[264] = 3;
  v.bos = 264;
  v.eos = 264;
  return v;
}

TEST(BpeTokenizer, MergesLowestRankFirst) {
  const auto tok = Tokenizer::from_vocab(bpe_vocab("gpt-2", 8));
  EXPECT_EQ(tok->tokenize("hello world", false, false), (Ids{259, 262, 263}));
  EXPECT_EQ(tok->tokenize("lll", false, false), (Ids{257, 'l'}));  // leftmost pair on a tie
  EXPECT_EQ(tok->tokenize("\xC3\xA9", false, false), (Ids{0xC3, 0xA9}));
  EXPECT_EQ(tok->detokenize(Ids{259, 262, 263}, false), "hello world");
  EXPECT_EQ(tok->token_to_piece(' ', false), " ");
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(tok->tokenize("hi", true, false), (Ids{'h', 'i'}));
}

TEST(BpeTokenizer, IgnoreMergesTakesWholeTokens) {
  VocabData v = bpe_vocab("llama-bpe", 3);  // merges stop at "hell"
  const auto llama3 = Tokenizer::from_vocab(v);
  EXPECT_EQ(llama3->tokenize("hello", false, false), Ids{259});
  EXPECT_TRUE(llama3->add_bos());  // llama.cpp's default for llama3 vocabularies
  EXPECT_EQ(llama3->tokenize("hello", true, false), (Ids{264, 259}));
  v.pre = "gpt-2";
  EXPECT_EQ(Tokenizer::from_vocab(v)->tokenize("hello", false, false), (Ids{258, 'o'}));
}

TEST(BpeTokenizer, SpecialTokens) {
  const auto tok = Tokenizer::from_vocab(bpe_vocab("gpt-2", 8));
  EXPECT_EQ(tok->tokenize("<|endoftext|>hi", false, true), (Ids{264, 'h', 'i'}));
  const Ids plain = tok->tokenize("<|endoftext|>hi", false, false);
  EXPECT_EQ(std::find(plain.begin(), plain.end(), 264), plain.end());
  EXPECT_EQ(tok->detokenize(plain, false), "<|endoftext|>hi");
  EXPECT_TRUE(tok->is_end_of_generation(264));
  EXPECT_EQ(tok->find_token("he"), 256);
  EXPECT_EQ(tok->find_token("nope"), -1);
  EXPECT_EQ(tok->token_text(264), "<|endoftext|>");
  EXPECT_THROW((void)tok->token_text(265), Error);
  EXPECT_EQ(tok->token_to_piece(-1, true), "");
}

TEST(Tokenizer, RejectsUnsupportedAndBrokenVocabularies) {
  VocabData v = bpe_vocab("gpt-2", 8);
  v.model = "bert";
  try {
    (void)Tokenizer::from_vocab(v);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("'bert'"), std::string::npos) << e.what();
  }
  v = bpe_vocab("no-such-pre", 8);
  try {
    (void)Tokenizer::from_vocab(v);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("no-such-pre"), std::string::npos) << e.what();
  }
  v = spm_vocab();
  v.scores.resize(10);
  try {
    (void)Tokenizer::from_vocab(v);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadFile);
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.scores"), std::string::npos) << e.what();
  }
  v = spm_vocab();
  v.tokens.clear();
  EXPECT_THROW((void)Tokenizer::from_vocab(v), Error);
}

}  // namespace
}  // namespace luzao
