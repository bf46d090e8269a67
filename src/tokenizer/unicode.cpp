// Code point class lookup (a two-stage table built once from the generated ranges), UTF-8
// decoding with U+FFFD for bad bytes, and the GPT-2 byte alphabet.
#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <map>

namespace luzao::unicode {
namespace {

constexpr uint32_t kMaxCp = 0x110000;
constexpr uint32_t kBlock = 256;

// Stage 1: block index per 256 code points; stage 2: the distinct 256-entry blocks.
struct ClassTable {
  std::vector<uint16_t> block_of;
  std::vector<uint8_t> blocks;

  ClassTable() {
    std::vector<uint8_t> all(kMaxCp, 0);
    for (size_t i = 0; i < kCpRangeCount; ++i) {
      const uint32_t end = i + 1 < kCpRangeCount ? kCpRanges[i + 1].first : kMaxCp;
      std::fill(all.begin() + kCpRanges[i].first, all.begin() + end, kCpRanges[i].flags);
    }
    std::map<std::vector<uint8_t>, uint16_t> seen;
    block_of.resize(kMaxCp / kBlock);
    for (uint32_t b = 0; b < kMaxCp / kBlock; ++b) {
      std::vector<uint8_t> block(all.begin() + b * kBlock, all.begin() + (b + 1) * kBlock);
      auto [it, fresh] = seen.emplace(block, static_cast<uint16_t>(seen.size()));
      if (fresh) blocks.insert(blocks.end(), block.begin(), block.end());
      block_of[b] = it->second;
    }
  }
};

const ClassTable& class_table() {
  static const ClassTable table;
  return table;
}

struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 512> from_cp{};  // every mapped code point is below 0x144

  ByteMap() {
    from_cp.fill(-1);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      to_cp[b] = printable ? b : next++;
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

}  // namespace

uint8_t flags_of(uint32_t cp) {
  if (cp < 0x80) {
    // ASCII fast path, same values as the table.
    static constexpr auto kAscii = [] {
      std::array<uint8_t, 128> t{};
      for (int c = 0; c < 128; ++c) {
        uint8_t f = kControl;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
          f = kLetter;
        } else if (c >= '0' && c <= '9') {
          f = kNumber;
        } else if (c == ' ') {
          f = kSeparator;
        } else if (c >= 0x21 && c < 0x7F) {
          const bool symbol = c == '$' || c == '+' || c == '<' || c == '=' || c == '>' ||
                              c == '^' || c == '`' || c == '|' || c == '~';
          f = symbol ? kSymbol : kPunct;
        }
        if (c == ' ' || (c >= 0x09 && c <= 0x0D)) f |= kWhitespace;
        t[c] = f;
      }
      return t;
    }();
    return kAscii[cp];
  }
  if (cp >= kMaxCp) return kUndefined;
  const ClassTable& t = class_table();
  return t.blocks[size_t{t.block_of[cp / kBlock]} * kBlock + cp % kBlock];
}

void decode_utf8(std::string_view text, std::vector<uint32_t>& cps,
                 std::vector<uint32_t>* offsets) {
  cps.clear();
  cps.reserve(text.size());
  if (offsets) {
    offsets->clear();
    offsets->reserve(text.size() + 1);
  }
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  auto cont = [&](size_t k) { return i + k < n && (s[i + k] & 0xC0) == 0x80; };
  while (i < n) {
    if (offsets) offsets->push_back(static_cast<uint32_t>(i));
    const uint8_t c = s[i];
    if (c < 0x80) {
      cps.push_back(c);
      i += 1;
    } else if ((c & 0xE0) == 0xC0 && cont(1)) {
      cps.push_back((uint32_t{c} & 0x1F) << 6 | (s[i + 1] & 0x3F));
      i += 2;
    } else if ((c & 0xF0) == 0xE0 && cont(1) && cont(2)) {
      cps.push_back((uint32_t{c} & 0x0F) << 12 | (uint32_t{s[i + 1]} & 0x3F) << 6 |
                    (s[i + 2] & 0x3F));
      i += 3;
    } else if ((c & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
      cps.push_back((uint32_t{c} & 0x07) << 18 | (uint32_t{s[i + 1]} & 0x3F) << 12 |
                    (uint32_t{s[i + 2]} & 0x3F) << 6 | (s[i + 3] & 0x3F));
      i += 4;
    } else {
      cps.push_back(0xFFFD);
      i += 1;
    }
  }
  if (offsets) offsets->push_back(static_cast<uint32_t>(n));
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | ((cp >> 18) & 0x07)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t byte_to_cp(uint8_t byte) {
  return byte_map().to_cp[byte];
}

int byte_from_cp(uint32_t cp) {
  return cp < 512 ? byte_map().from_cp[cp] : -1;
}

}  // namespace luzao::unicode
