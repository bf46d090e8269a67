// JSON for the Jinja engine: json.dumps exactly as Hugging Face's tojson filter calls it, and a
// small strict JSON reader that builds Values (objects keep their key order).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "tokenizer/jinja_value.h"
#include "tokenizer/unicode.h"

namespace luzao::jinja {

namespace {

void append_json_string(std::string_view s, bool ensure_ascii, std::string& out) {
  out += '"';
  auto escape_u = [&out](uint32_t u) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "\\u%04x", u);
    out += buf;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      escape_u(c);
    } else if (c < 0x7F || !ensure_ascii) {
      out += static_cast<char>(c);
    } else if (c == 0x7F) {
      escape_u(c);
    } else {
      // Decode one UTF-8 sequence and write it as \u escapes (surrogate pairs above the BMP).
      size_t len = unicode::utf8_len(static_cast<char>(c));
      std::vector<uint32_t> cps;
      unicode::decode_utf8(s.substr(i, std::min(len, s.size() - i)), cps);
      for (uint32_t cp : cps) {
        if (cp >= 0x10000) {
          cp -= 0x10000;
          escape_u(0xD800 + (cp >> 10));
          escape_u(0xDC00 + (cp & 0x3FF));
        } else {
          escape_u(cp);
        }
      }
      i += std::min(len, s.size() - i) - 1;
    }
  }
  out += '"';
}

struct JsonWriter {
  const JsonOptions& opt;
  std::string indent_unit;
  bool pretty;
  std::string item_sep;
  std::string key_sep;
  std::string out;

  explicit JsonWriter(const JsonOptions& o) : opt(o) {
    pretty = o.indent >= 0 || !o.indent_text.empty();
    indent_unit = !o.indent_text.empty()
                      ? o.indent_text
                      : std::string(static_cast<size_t>(std::max(0, o.indent)), ' ');
    item_sep = o.separators_set ? o.item_separator : (pretty ? "," : ", ");
    key_sep = o.separators_set ? o.key_separator : ": ";
  }

  void newline(int depth) {
    out += '\n';
    for (int i = 0; i < depth; ++i) out += indent_unit;
  }

  void write(const Value& v, int depth) {
    switch (v.kind()) {
      case Value::Kind::kNone:
        out += "null";
        return;
      case Value::Kind::kBool:
        out += v.as_bool() ? "true" : "false";
        return;
      case Value::Kind::kInt:
        out += std::to_string(v.as_int());
        return;
      case Value::Kind::kFloat: {
        double d = v.as_double();
        if (std::isnan(d)) {
          out += "NaN";
        } else if (std::isinf(d)) {
          out += d < 0 ? "-Infinity" : "Infinity";
        } else {
          out += float_repr(d);
        }
        return;
      }
      case Value::Kind::kString:
        append_json_string(v.str(), opt.ensure_ascii, out);
        return;
      case Value::Kind::kList: {
        const auto& items = v.list();
        if (items.empty()) {
          out += "[]";
          return;
        }
        out += '[';
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_sep;
          if (pretty) newline(depth + 1);
          write(items[i], depth + 1);
        }
        if (pretty) newline(depth);
        out += ']';
        return;
      }
      case Value::Kind::kDict: {
        const auto& d = v.dict();
        if (d.empty()) {
          out += "{}";
          return;
        }
        // json.dumps turns int, float, bool and None keys into strings.
        std::vector<std::pair<std::string, const Value*>> entries;
        for (const auto& [k, x] : d.entries()) {
          std::string key;
          if (k.is_string()) {
            key = k.str();
          } else if (k.is_bool()) {
            key = k.as_bool() ? "true" : "false";
          } else if (k.is_none()) {
            key = "null";
          } else if (k.is_int() || k.is_float()) {
            key = to_str(k);
          } else {
            fail(ErrorKind::kInvalidArgument, "keys must be str, int, float, bool or None, not {}",
                 k.type_name());
          }
          entries.emplace_back(std::move(key), &x);
        }
        if (opt.sort_keys) {
          std::stable_sort(entries.begin(), entries.end(),
                           [](const auto& a, const auto& b) { return a.first < b.first; });
        }
        out += '{';
        for (size_t i = 0; i < entries.size(); ++i) {
          if (i) out += item_sep;
          if (pretty) newline(depth + 1);
          append_json_string(entries[i].first, opt.ensure_ascii, out);
          out += key_sep;
          write(*entries[i].second, depth + 1);
        }
        if (pretty) newline(depth);
        out += '}';
        return;
      }
      default:
        fail(ErrorKind::kInvalidArgument, "Object of type {} is not JSON serializable",
             v.type_name());
    }
  }
};

class JsonReader {
 public:
  JsonReader(std::string_view text, std::string_view what) : s_(text), what_(what) {}

  Value read_document() {
    Value v = read_value(0);
    skip_ws();
    if (pos_ != s_.size()) error("unexpected trailing characters");
    return v;
  }

 private:
  [[noreturn]] void error(std::string_view msg) const {
    fail(ErrorKind::kInvalidArgument, "{}: invalid JSON at byte {}: {}", what_, pos_, msg);
  }

  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool consume(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Value read_value(int depth) {
    if (depth > 512) error("nesting too deep");
    skip_ws();
    if (pos_ >= s_.size()) error("unexpected end");
    char c = s_[pos_];
    if (c == '{') return read_object(depth);
    if (c == '[') return read_array(depth);
    if (c == '"') return Value(read_string());
    if (consume("true")) return Value(true);
    if (consume("false")) return Value(false);
    if (consume("null")) return Value::none();
    if (c == '-' || (c >= '0' && c <= '9')) return read_number();
    error("unexpected character");
  }

  Value read_object(int depth) {
    ++pos_;
    ValueDict d;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return Value(std::move(d));
    }
    while (true) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') error("expected a string key");
      std::string key = read_string();
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') error("expected ':'");
      ++pos_;
      Value v = read_value(depth + 1);
      d.set(std::move(key), std::move(v));
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return Value(std::move(d));
      }
      error("expected ',' or '}'");
    }
  }

  Value read_array(int depth) {
    ++pos_;
    ValueList items;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return Value(std::move(items));
    }
    while (true) {
      items.push_back(read_value(depth + 1));
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return Value(std::move(items));
      }
      error("expected ',' or ']'");
    }
  }

  uint32_t read_hex4() {
    if (pos_ + 4 > s_.size()) error("truncated \\u escape");
    uint32_t u = 0;
    auto res = std::from_chars(s_.data() + pos_, s_.data() + pos_ + 4, u, 16);
    if (res.ptr != s_.data() + pos_ + 4) error("bad \\u escape");
    pos_ += 4;
    return u;
  }

  std::string read_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) error("unterminated string");
      char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) error("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) error("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
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
        case 'u': {
          uint32_t u = read_hex4();
          if (u >= 0xD800 && u < 0xDC00 && s_.substr(pos_, 2) == "\\u") {
            size_t save = pos_;
            pos_ += 2;
            uint32_t lo = read_hex4();
            if (lo >= 0xDC00 && lo < 0xE000) {
              u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            } else {
              pos_ = save;
            }
          }
          unicode::append_utf8(u, out);
          break;
        }
        default:
          error("bad escape");
      }
    }
  }

  Value read_number() {
    size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    bool is_float = false;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c >= '0' && c <= '9') {
        ++pos_;
      } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
        is_float = true;
        ++pos_;
      } else {
        break;
      }
    }
    std::string_view num = s_.substr(start, pos_ - start);
    if (!is_float) {
      int64_t v = 0;
      auto res = std::from_chars(num.data(), num.data() + num.size(), v);
      if (res.ec == std::errc() && res.ptr == num.data() + num.size()) return Value(v);
    }
    double d = 0;
    auto res = std::from_chars(num.data(), num.data() + num.size(), d);
    if (res.ec != std::errc() || res.ptr != num.data() + num.size()) error("bad number");
    return Value(d);
  }

  std::string_view s_;
  std::string_view what_;
  size_t pos_ = 0;
};

}  // namespace

std::string to_json(const Value& v, const JsonOptions& options) {
  JsonWriter w(options);
  w.write(v, 0);
  return std::move(w.out);
}

Value parse_json(std::string_view text, std::string_view what) {
  return JsonReader(text, what).read_document();
}

}  // namespace luzao::jinja
