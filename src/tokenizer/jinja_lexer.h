// Tokenizer for the chat-template Jinja subset: splits template text into data and tag tokens with
// jinja2's whitespace control (-, +) under trim_blocks=True, lstrip_blocks=True as Hugging Face
// sets.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace luzao::jinja {

enum class TokKind : uint8_t {
  kData,        // literal template text
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,
  kInt,
  kFloat,
  kOp,  // operator or punctuation, text holds it ("==", "(", "|")
  kEof,
};

struct Token {
  TokKind kind;
  int line;
  std::string text;  // data, name, operator, or the unescaped string literal
  int64_t int_value = 0;
  double float_value = 0;
};

// Tokenizes a whole template. Fails with kInvalidArgument ("chat template line N: ...") on
// malformed input. The last token is kEof.
std::vector<Token> lex_template(std::string_view source);

}  // namespace luzao::jinja
