// The chat-template lexer. Follows jinja2's lexer rules: newline normalisation, one trailing
// newline dropped, "-" strips all whitespace, lstrip_blocks for {% and {#, trim_blocks after %}/#}.
#include "tokenizer/jinja_lexer.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "core/error.h"
#include "tokenizer/jinja_value.h"
#include "tokenizer/unicode.h"

namespace luzao::jinja {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}

// Length of the run of (unicode) whitespace that ends `text`.
size_t trailing_space_bytes(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    std::vector<uint32_t> cps;
    unicode::decode_utf8(text.substr(start, end - start), cps);
    if (cps.size() != 1 || !is_py_space(cps[0])) break;
    end = start;
  }
  return text.size() - end;
}

bool all_space(std::string_view text) {
  return !text.empty() && trailing_space_bytes(text) == text.size();
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    // Normalise \r\n and \r to \n, and drop one trailing newline (keep_trailing_newline=False).
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t t = find_tag(pos);
      if (t == std::string::npos) {
        emit_data(pos, src_.substr(pos));
        break;
      }
      char kind = src_[t + 1];
      char sign =
          t + 2 < src_.size() && (src_[t + 2] == '-' || src_[t + 2] == '+') ? src_[t + 2] : 0;
      size_t raw_end = kind == '%' ? match_raw_begin(t) : 0;
      std::string_view text = std::string_view(src_).substr(pos, t - pos);
      text = apply_strip(text, sign, kind != '{', line_starting);
      emit_data(pos, text);
      size_t p = t + 2 + (sign ? 1 : 0);
      size_t end;
      if (raw_end) {
        end = lex_raw(raw_end);
      } else if (kind == '#') {
        end = skip_comment(p, t);
      } else {
        end = lex_tag(t, p, kind == '%');
      }
      line_starting = src_[end - 1] == '\n';
      pos = end;
    }
    tokens_.push_back(Token{TokKind::kEof, line_at(src_.size()), {}});
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void error(size_t pos, std::string_view msg) {
    fail(ErrorKind::kInvalidArgument, "chat template line {}: {}", line_at(pos), msg);
  }

  int line_at(size_t pos) {
    // Positions are asked for in nearly increasing order; rescan from the start otherwise.
    if (pos < line_pos_) {
      line_pos_ = 0;
      line_ = 1;
    }
    for (; line_pos_ < pos && line_pos_ < src_.size(); ++line_pos_)
      line_ += src_[line_pos_] == '\n';
    return line_;
  }

  size_t find_tag(size_t pos) const {
    while (true) {
      size_t t = src_.find('{', pos);
      if (t == std::string::npos || t + 1 >= src_.size()) return std::string::npos;
      char c = src_[t + 1];
      if (c == '{' || c == '%' || c == '#') return t;
      pos = t + 1;
    }
  }

  // Skips Python's \s (str.isspace(): ASCII and Unicode whitespace).
  size_t skip_space(size_t p) const {
    while (p < src_.size()) {
      unsigned char c = static_cast<unsigned char>(src_[p]);
      if (c < 0x80) {
        if (!is_py_space(c)) break;
        ++p;
        continue;
      }
      size_t len = std::min(unicode::utf8_len(src_[p]), src_.size() - p);
      std::vector<uint32_t> cps;
      unicode::decode_utf8(std::string_view(src_).substr(p, len), cps);
      if (cps.size() != 1 || !is_py_space(cps[0])) break;
      p += len;
    }
    return p;
  }

  bool word_at(size_t p, std::string_view word) const {
    return src_.compare(p, word.size(), word) == 0 &&
           (p + word.size() >= src_.size() || !is_name_char(src_[p + word.size()]));
  }

  // If `{% raw %}` starts at t, the position after it; else 0.
  size_t match_raw_begin(size_t t) const {
    size_t p = t + 2;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    p = skip_space(p);
    if (!word_at(p, "raw")) return 0;
    p = skip_space(p + 3);
    if (src_.compare(p, 3, "-%}") == 0) return skip_space(p + 3);
    if (src_.compare(p, 2, "%}") == 0) return p + 2;
    return 0;
  }

  std::string_view apply_strip(std::string_view text, char sign, bool block_or_comment,
                               bool line_starting) const {
    if (sign == '-') return text.substr(0, text.size() - trailing_space_bytes(text));
    if (sign != '+' && block_or_comment) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting) && all_space(text.substr(l_pos)))
        return text.substr(0, l_pos);
    }
    return text;
  }

  void emit_data(size_t pos, std::string_view text) {
    if (text.empty()) return;
    tokens_.push_back(Token{TokKind::kData, line_at(pos), std::string(text)});
  }

  // Position after the end of a block tag ("%}") starting at p, or npos.
  size_t match_block_end(size_t p, bool block) const {
    std::string_view close = block ? "%}" : "}}";
    if (block && src_.compare(p, 3, "+%}") == 0) return p + 3;
    if (src_[p] == '-' && src_.compare(p + 1, 2, close) == 0) return skip_space(p + 3);
    if (src_.compare(p, 2, close) == 0) {
      size_t end = p + 2;
      if (block && end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
      return end;
    }
    return std::string::npos;
  }

  size_t lex_raw(size_t p) {
    size_t search = p;
    while (true) {
      size_t t = src_.find("{%", search);
      if (t == std::string::npos) error(p, "Missing end of raw directive");
      size_t q = t + 2;
      char sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : 0;
      if (sign) ++q;
      q = skip_space(q);
      if (word_at(q, "endraw")) {
        q = skip_space(q + 6);
        size_t end = match_block_end(q, true);
        if (end != std::string::npos) {
          std::string_view text = std::string_view(src_).substr(p, t - p);
          emit_data(p, apply_strip(text, sign, true, false));
          return end;
        }
      }
      search = t + 2;
    }
  }

  size_t skip_comment(size_t p, size_t start) {
    for (size_t q = p; q + 1 < src_.size(); ++q) {
      if ((src_[q] == '+' || src_[q] == '-') && src_.compare(q + 1, 2, "#}") == 0) {
        return src_[q] == '-' ? skip_space(q + 3) : q + 3;
      }
      if (src_.compare(q, 2, "#}") == 0) {
        size_t end = q + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
        return end;
      }
    }
    error(start, "Missing end of comment tag");
  }

  size_t lex_tag(size_t start, size_t p, bool block) {
    tokens_.push_back(Token{block ? TokKind::kBlockBegin : TokKind::kVarBegin, line_at(start), {}});
    std::vector<char> balance;
    while (true) {
      if (p >= src_.size())
        error(start, block ? "unexpected end of template, expected '%}'"
                           : "unexpected end of template, expected '}}'");
      if (balance.empty()) {
        size_t end = match_block_end(p, block);
        if (end != std::string::npos) {
          tokens_.push_back(Token{block ? TokKind::kBlockEnd : TokKind::kVarEnd, line_at(p), {}});
          return end;
        }
      }
      char c = src_[p];
      size_t after_space = skip_space(p);
      if (after_space != p) {
        p = after_space;
      } else if (is_digit(c)) {
        p = lex_number(p);
      } else if (is_name_start(c)) {
        size_t q = p;
        while (q < src_.size() && is_name_char(src_[q])) ++q;
        tokens_.push_back(Token{TokKind::kName, line_at(p), src_.substr(p, q - p)});
        p = q;
      } else if (c == '\'' || c == '"') {
        p = lex_string(p);
      } else {
        p = lex_operator(p, balance);
      }
    }
  }

  size_t lex_number(size_t p) {
    auto digits = [&](size_t at) {
      size_t r = at;
      while (r < src_.size() && (is_digit(src_[r]) || (src_[r] == '_' && r > at))) ++r;
      return r;
    };
    auto clean = [&](size_t from, size_t to) {
      std::string text;
      for (size_t i = from; i < to; ++i) {
        if (src_[i] != '_') text += src_[i];
      }
      return text;
    };
    char radix = p + 1 < src_.size() && src_[p] == '0' ? static_cast<char>(src_[p + 1] | 0x20) : 0;
    if (radix == 'x' || radix == 'o' || radix == 'b') {
      int base = radix == 'x' ? 16 : radix == 'o' ? 8 : 2;
      size_t q = p + 2;
      while (q < src_.size() &&
             (std::isxdigit(static_cast<unsigned char>(src_[q])) || src_[q] == '_'))
        ++q;
      std::string text = clean(p + 2, q);
      Token tok{TokKind::kInt, line_at(p), clean(p, q)};
      auto res = std::from_chars(text.data(), text.data() + text.size(), tok.int_value, base);
      if (res.ec != std::errc() || res.ptr != text.data() + text.size())
        error(p, "bad integer literal");
      tokens_.push_back(std::move(tok));
      return q;
    }
    size_t q = digits(p);
    bool is_float = false;
    if (q + 1 < src_.size() && src_[q] == '.' && is_digit(src_[q + 1])) {
      q = digits(q + 1);
      is_float = true;
    }
    if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
      size_t r = q + 1;
      if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
      if (r < src_.size() && is_digit(src_[r])) {
        q = digits(r);
        is_float = true;
      }
    }
    std::string text = clean(p, q);
    Token tok{is_float ? TokKind::kFloat : TokKind::kInt, line_at(p), text};
    if (is_float) {
      auto res = std::from_chars(text.data(), text.data() + text.size(), tok.float_value);
      if (res.ec == std::errc::result_out_of_range) {
        bool tiny = text.find("e-") != std::string::npos || text.find("E-") != std::string::npos;
        tok.float_value = tiny ? 0.0 : HUGE_VAL;
      }
    } else {
      auto res = std::from_chars(text.data(), text.data() + text.size(), tok.int_value);
      if (res.ec != std::errc()) error(p, "integer literal out of range");
    }
    tokens_.push_back(std::move(tok));
    return q;
  }

  size_t lex_string(size_t p) {
    char quote = src_[p];
    std::string out;
    size_t q = p + 1;
    while (true) {
      if (q >= src_.size()) error(p, "unexpected end of string literal");
      char c = src_[q];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++q;
        continue;
      }
      if (q + 1 >= src_.size()) error(p, "unexpected end of string literal");
      char e = src_[q + 1];
      q += 2;
      auto hex = [&](int n) {
        uint32_t v = 0;
        if (q + static_cast<size_t>(n) > src_.size())
          error(p, "truncated escape in string literal");
        auto res = std::from_chars(src_.data() + q, src_.data() + q + n, v, 16);
        if (res.ptr != src_.data() + q + n) error(p, "bad escape in string literal");
        q += static_cast<size_t>(n);
        return v;
      };
      switch (e) {
        case '\n':
          break;  // line continuation
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
          unicode::append_utf8(hex(2), out);
          break;
        case 'u':
          unicode::append_utf8(hex(4), out);
          break;
        case 'U':
          unicode::append_utf8(hex(8), out);
          break;
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2 && q < src_.size() && src_[q] >= '0' && src_[q] <= '7'; ++i) {
              v = v * 8 + static_cast<uint32_t>(src_[q++] - '0');
            }
            unicode::append_utf8(v, out);
          } else {
            out += '\\';  // unknown escapes stay as written, as Python's unicode-escape does
            out += e;
          }
      }
    }
    tokens_.push_back(Token{TokKind::kString, line_at(p), std::move(out)});
    return q + 1;
  }

  size_t lex_operator(size_t p, std::vector<char>& balance) {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwo) {
      if (src_.compare(p, 2, op) == 0) {
        tokens_.push_back(Token{TokKind::kOp, line_at(p), std::string(op)});
        return p + 2;
      }
    }
    char c = src_[p];
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos) {
      error(p, fmt::format("unexpected char '{}'", c));
    }
    if (c == '(' || c == '[' || c == '{') balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    if (c == ')' || c == ']' || c == '}') {
      if (balance.empty()) error(p, fmt::format("unexpected '{}'", c));
      if (balance.back() != c)
        error(p, fmt::format("unexpected '{}', expected '{}'", c, balance.back()));
      balance.pop_back();
    }
    tokens_.push_back(Token{TokKind::kOp, line_at(p), std::string(1, c)});
    return p + 1;
  }

  std::string src_;
  std::vector<Token> tokens_;
  size_t line_pos_ = 0;
  int line_ = 1;
};

}  // namespace

std::vector<Token> lex_template(std::string_view source) {
  return Lexer(source).run();
}

}  // namespace luzao::jinja
