// Pre-tokenizer splits. Each pass reproduces the leftmost-match, ordered-alternation result of
// the regex llama.cpp uses for it (see the Pass comments), where text between matches stays a
// piece of its own. \s is the White_Space property; classes come from unicode_tables.cpp.
#include "tokenizer/pretokenizer.h"

#include <array>
#include <string>

#include "tokenizer/unicode.h"

namespace luzao {
namespace {

using unicode::kClassMask;
using unicode::kWhitespace;

struct NamedPasses {
  std::string_view name;
  std::vector<PreTokenizer::Pass> passes;
};

// deepseek-llm's cased-letter class, as code point ranges (inclusive).
constexpr uint32_t kLatinRanges[][2] = {
    {0x41, 0x5A},       {0x61, 0x7A},       {0xB5, 0xB5},       {0xC0, 0xD6},
    {0xD8, 0xF6},       {0xF8, 0x1BA},      {0x1BC, 0x1BF},     {0x1C4, 0x293},
    {0x295, 0x2AF},     {0x370, 0x373},     {0x376, 0x377},     {0x37B, 0x37D},
    {0x37F, 0x37F},     {0x386, 0x386},     {0x388, 0x38A},     {0x38C, 0x38C},
    {0x38E, 0x3A1},     {0x3A3, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},
    {0x531, 0x556},     {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},
    {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},
    {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},
    {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},
    {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},
    {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},
    {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},   {0x2128, 0x2128},
    {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
    {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},
    {0x2C7E, 0x2CE4},   {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},
    {0xA680, 0xA69B},   {0xA722, 0xA76F},   {0xA771, 0xA787},   {0xA78B, 0xA78E},
    {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
constexpr size_t kLatinCount = sizeof(kLatinRanges) / sizeof(kLatinRanges[0]);

bool in_latin(uint32_t cp) {
  size_t lo = 0, hi = kLatinCount;
  while (lo < hi) {  // first range whose end is >= cp
    const size_t mid = (lo + hi) / 2;
    if (kLatinRanges[mid][1] < cp) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo < kLatinCount && kLatinRanges[lo][0] <= cp;
}

bool in_ascii_punct_wide(uint32_t cp) {
  return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x7E) ||
         (cp >= 0xFF01 && cp <= 0xFF0F) || (cp >= 0xFF1A && cp <= 0xFF5E) ||
         (cp >= 0x2018 && cp <= 0x201F) || (cp >= 0x3001 && cp <= 0x3002);
  // U+3000 is in the original class too, but it is whitespace, which llama.cpp rewrites to
  // U+000B before matching, so it never matches there.
}

bool in_cjk(uint32_t cp) {
  return (cp >= 0x800 && cp <= 0x9FA5) || (cp >= 0xAC00 && cp <= 0xD7FF);
}

// One piece [b, e) of the text being split by one pass.
class PieceSplitter {
 public:
  PieceSplitter(std::span<const uint32_t> cps, std::span<const uint8_t> flags, uint32_t b,
                uint32_t e, std::vector<uint32_t>& out)
      : cp_(cps), fl_(flags), b_(b), e_(e), prev_(b), out_(out) {}

  void run(PreTokenizer::Pass pass) {
    using P = PreTokenizer::Pass;
    switch (pass) {
      case P::kGpt2:
        return gpt2();
      case P::kLlama3:
        return llama3(3, false);
      case P::kQwen2:
        return llama3(1, false);
      case P::kQwen35:
        return llama3(1, true);
      case P::kTrailingWs:
        return trailing_ws();
      default:
        return search(pass);
    }
  }

 private:
  uint8_t cls(uint32_t i) const { return fl_[i] & kClassMask; }
  bool ws(uint32_t i) const { return i < e_ && (fl_[i] & kWhitespace); }
  bool letter(uint32_t i) const { return i < e_ && cls(i) == unicode::kLetter; }
  bool number(uint32_t i) const { return i < e_ && cls(i) == unicode::kNumber; }
  bool mark(uint32_t i) const { return i < e_ && cls(i) == unicode::kMark; }
  bool punct(uint32_t i) const { return i < e_ && cls(i) == unicode::kPunct; }
  // Code points that llama.cpp rewrites to U+000B before matching classes spelled as ranges.
  bool wide_ws(uint32_t i) const { return cp_[i] > 0x7F && (fl_[i] & kWhitespace); }

  void emit(uint32_t end) {
    if (end > prev_) out_.push_back(end);
    prev_ = end;
  }

  template <typename Pred>
  uint32_t run_end(uint32_t i, Pred pred) const {
    while (i < e_ && pred(i)) ++i;
    return i;
  }

  // 's|'t|'re|'ve|'m|'ll|'d, ASCII letters compared case-insensitively when `fold`.
  uint32_t contraction(uint32_t pos, bool fold) const {
    if (cp_[pos] != '\'' || pos + 1 >= e_) return 0;
    auto low = [&](uint32_t i) {
      const uint32_t c = cp_[i];
      return fold && c >= 'A' && c <= 'Z' ? c + 32 : c;
    };
    const uint32_t c1 = low(pos + 1);
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    if (pos + 2 >= e_) return 0;
    const uint32_t c2 = low(pos + 2);
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
    return 0;
  }

  // Whitespace tail of the gpt2/llama3 alternations: \s+(?!\S)|\s+ (a run followed by a
  // non-space gives its last space to the next piece).
  void whitespace(uint32_t& pos) {
    const uint32_t n = run_end(pos, [&](uint32_t i) { return ws(i); }) - pos;
    if (n > 1 && pos + n < e_) {
      pos += n - 1;
    } else if (n > 0) {
      pos += n;
    } else {
      pos += 1;  // nothing matches here: the character is a piece of its own
    }
    emit(pos);
  }

  void gpt2() {
    uint32_t pos = b_;
    while (pos < e_) {
      if (const uint32_t n = contraction(pos, false)) {
        pos += n;
        emit(pos);
        continue;
      }
      const uint32_t q = cp_[pos] == ' ' ? pos + 1 : pos;  // optional leading space
      if (letter(q)) {
        pos = run_end(q, [&](uint32_t i) { return letter(i); });
      } else if (number(q)) {
        pos = run_end(q, [&](uint32_t i) { return number(i); });
      } else if (q < e_ && !ws(q) && !letter(q) && !number(q)) {
        pos = run_end(q, [&](uint32_t i) { return !ws(i) && !letter(i) && !number(i); });
      } else {
        whitespace(pos);
        continue;
      }
      emit(pos);
    }
  }

  // llama3 / qwen2 / qwen35: digits in groups of `max_digits`; `marks` adds \p{M} to letters.
  void llama3(uint32_t max_digits, bool marks) {
    auto word = [&](uint32_t i) { return letter(i) || (marks && mark(i)); };
    auto other = [&](uint32_t i) { return i < e_ && !ws(i) && !word(i) && !number(i); };
    uint32_t pos = b_;
    while (pos < e_) {
      const uint32_t c = cp_[pos];
      if (const uint32_t n = contraction(pos, true)) {
        pos += n;
        emit(pos);
        continue;
      }
      // [^\r\n\p{L}\p{N}]?\p{L}+
      if (c != '\r' && c != '\n' && !number(pos) && (word(pos) || word(pos + 1))) {
        pos = run_end(pos + 1, word);
        emit(pos);
        continue;
      }
      if (number(pos)) {
        const uint32_t end = run_end(pos, [&](uint32_t i) { return number(i); });
        pos = std::min(end, pos + max_digits);
        emit(pos);
        continue;
      }
      // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
      const uint32_t q = c == ' ' ? pos + 1 : pos;
      if (other(q)) {
        pos = run_end(q, other);
        pos = run_end(pos, [&](uint32_t i) { return cp_[i] == '\r' || cp_[i] == '\n'; });
        emit(pos);
        continue;
      }
      // \s*[\r\n]+ : the whitespace run up to its last line break
      const uint32_t n = run_end(pos, [&](uint32_t i) { return ws(i); });
      uint32_t last_break = 0;
      for (uint32_t i = pos; i < n; ++i) {
        if (cp_[i] == '\r' || cp_[i] == '\n') last_break = i + 1;
      }
      if (last_break > 0) {
        pos = last_break;
        emit(pos);
        continue;
      }
      whitespace(pos);
    }
  }

  void trailing_ws() {
    uint32_t t = e_;
    while (t > b_ && (fl_[t - 1] & kWhitespace)) --t;
    emit(t);
    emit(e_);
  }

  // Length of `\s?X+` at pos (0 when it does not match).
  template <typename Pred>
  uint32_t ws_then_run(uint32_t pos, Pred x) const {
    if (ws(pos) && pos + 1 < e_ && x(pos + 1)) return run_end(pos + 1, x) - pos;
    if (x(pos)) return run_end(pos, x) - pos;
    return 0;
  }

  uint32_t match(PreTokenizer::Pass pass, uint32_t pos) const {
    using P = PreTokenizer::Pass;
    const uint32_t c = cp_[pos];
    switch (pass) {
      case P::kNewline:
        return c == '\r' || c == '\n' ? 1 : 0;
      case P::kWsLetters:
        return ws_then_run(pos, [&](uint32_t i) { return letter(i); });
      case P::kWsPunct:
        return ws_then_run(pos, [&](uint32_t i) { return punct(i); });
      case P::kCjk:
        return run_end(pos, [&](uint32_t i) { return in_cjk(cp_[i]) && !wide_ws(i); }) - pos;
      case P::kDigit:
        return number(pos) ? 1 : 0;
      case P::kDigits:
        return run_end(pos, [&](uint32_t i) { return number(i); }) - pos;
      case P::kAsciiDigits3: {
        auto digit = [&](uint32_t i) { return i < e_ && cp_[i] >= '0' && cp_[i] <= '9'; };
        return digit(pos) && digit(pos + 1) && digit(pos + 2) ? 3 : 0;
      }
      case P::kPunctSymbols:
      case P::kPunctSymbolsTick: {
        const bool tick = pass == P::kPunctSymbolsTick;
        auto in = [&](uint32_t i) {
          const uint32_t x = cp_[i];
          return punct(i) || x == '$' || x == '+' || x == '<' || x == '=' || x == '>' || x == '^' ||
                 x == '~' || x == '|' || (tick && x == '`');
        };
        return run_end(pos, in) - pos;
      }
      case P::kWsLatin:
        return ws_then_run(pos, [&](uint32_t i) { return in_latin(cp_[i]) && !wide_ws(i); });
      case P::kWsAsciiPunct:
        return ws_then_run(pos,
                           [&](uint32_t i) { return in_ascii_punct_wide(cp_[i]) && !wide_ws(i); });
      default:
        return 0;
    }
  }

  void search(PreTokenizer::Pass pass) {
    uint32_t pos = b_;
    while (pos < e_) {
      const uint32_t n = match(pass, pos);
      if (n == 0) {
        ++pos;
        continue;
      }
      emit(pos);  // the unmatched text before the match, if any
      pos += n;
      emit(pos);
    }
    emit(e_);
  }

  std::span<const uint32_t> cp_;
  std::span<const uint8_t> fl_;
  uint32_t b_, e_, prev_;
  std::vector<uint32_t>& out_;
};

}  // namespace

std::vector<PreTokenizer::Pass> PreTokenizer::passes_for(std::string_view pre) {
  using P = Pass;
  static const std::vector<NamedPasses> kTable = {
      {"default", {P::kPunctSymbols, P::kGpt2, P::kDigits, P::kAsciiDigits3}},
      {"llama3", {P::kLlama3}},
      {"deepseek-llm",
       {P::kNewline, P::kWsLatin, P::kWsAsciiPunct, P::kTrailingWs, P::kCjk, P::kDigits}},
      {"deepseek-coder", {P::kNewline, P::kWsLetters, P::kWsPunct, P::kCjk, P::kDigit}},
      {"falcon", {P::kPunctSymbolsTick, P::kGpt2, P::kAsciiDigits3}},
      {"gpt-2", {P::kGpt2}},
      {"starcoder", {P::kDigit, P::kGpt2}},
      {"qwen2", {P::kQwen2}},
      {"qwen35", {P::kQwen35}},
  };
  // Other names llama.cpp maps to the same splits.
  static const std::vector<std::pair<std::string_view, std::string_view>> kAliases = {
      {"", "default"},
      {"llama-v3", "llama3"},
      {"llama-bpe", "llama3"},
      {"falcon3", "llama3"},
      {"falcon-h1", "llama3"},
      {"pixtral", "llama3"},
      {"midm-2.0", "llama3"},
      {"lfm2", "llama3"},
      {"dbrx", "llama3"},
      {"smaug-bpe", "llama3"},
      {"chatglm-bpe", "llama3"},
      {"glm4", "llama3"},
      {"phi-2", "gpt-2"},
      {"mpt", "gpt-2"},
      {"olmo", "gpt-2"},
      {"jais", "gpt-2"},
      {"trillion", "gpt-2"},
      {"gigachat", "gpt-2"},
      {"mellum", "gpt-2"},
      {"exaone4", "gpt-2"},
      {"granite-docling", "gpt-2"},
      {"roberta-bpe", "gpt-2"},
      {"refact", "starcoder"},
      {"command-r", "starcoder"},
      {"smollm", "starcoder"},
      {"codeshell", "starcoder"},
      {"exaone", "starcoder"},
      {"minerva-7b", "starcoder"},
      {"deepseek-r1-qwen", "qwen2"},
      {"megrez", "qwen2"},
      {"stablelm2", "qwen2"},
      {"hunyuan", "qwen2"},
      {"grok-2", "qwen2"},
  };
  std::string_view name = pre;
  for (const auto& [alias, target] : kAliases) {
    if (alias == pre) name = target;
  }
  for (const NamedPasses& entry : kTable) {
    if (entry.name == name) return entry.passes;
  }
  return {};
}

void PreTokenizer::split(std::span<const uint32_t> cps, std::vector<uint32_t>& ends,
                         std::vector<uint32_t>& scratch) const {
  ends.clear();
  if (cps.empty()) return;
  std::vector<uint8_t> flags(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) flags[i] = unicode::flags_of(cps[i]);
  ends.push_back(static_cast<uint32_t>(cps.size()));
  for (Pass pass : passes_) {
    scratch.clear();
    uint32_t begin = 0;
    for (uint32_t end : ends) {
      PieceSplitter(cps, flags, begin, end, scratch).run(pass);
      begin = end;
    }
    ends.swap(scratch);
  }
}

}  // namespace luzao
