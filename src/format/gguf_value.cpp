// GGUF metadata values: type names, one-line display formatting, constructors, and the typed
// getters of GgufFile (which name the file and key in every error).
#include <limits>
#include <type_traits>

#include "core/error.h"
#include "format/gguf.h"

namespace luzao {

std::string_view gguf_type_name(GgufType type) noexcept {
  switch (type) {
    case GgufType::kUint8:
      return "uint8";
    case GgufType::kInt8:
      return "int8";
    case GgufType::kUint16:
      return "uint16";
    case GgufType::kInt16:
      return "int16";
    case GgufType::kUint32:
      return "uint32";
    case GgufType::kInt32:
      return "int32";
    case GgufType::kFloat32:
      return "float32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kUint64:
      return "uint64";
    case GgufType::kInt64:
      return "int64";
    case GgufType::kFloat64:
      return "float64";
  }
  return "unknown";
}

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not valid UTF-8.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t len = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;  // overlong
    if (c == 0xed) hi = 0x9f;  // surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;  // overlong
    if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  }
  return len;
}

template <typename T>
std::string number_to_string(T v) {
  if constexpr (std::is_same_v<T, int8_t> || std::is_same_v<T, uint8_t>) {
    return fmt::format("{}", static_cast<int>(v));
  } else {
    return fmt::format("{}", v);
  }
}

std::string plural(GgufType type) {
  if (type == GgufType::kString) return "strings";
  if (type == GgufType::kArray) return "arrays";
  return fmt::format("{} values", gguf_type_name(type));
}

// The value as an unsigned/signed 64-bit integer when it is an integer type (any width).
std::optional<uint64_t> as_uint(const GgufValue& v) {
  return std::visit(
      [](const auto& x) -> std::optional<uint64_t> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_signed_v<T>) {
            if (x < 0) return std::nullopt;
          }
          return static_cast<uint64_t>(x);
        } else {
          return std::nullopt;
        }
      },
      v.value);
}

std::optional<int64_t> as_int(const GgufValue& v) {
  return std::visit(
      [](const auto& x) -> std::optional<int64_t> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_same_v<T, uint64_t>) {
            if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
          }
          return static_cast<int64_t>(x);
        } else {
          return std::nullopt;
        }
      },
      v.value);
}

bool is_integer_type(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kUint16:
    case GgufType::kInt16:
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kUint64:
    case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string escape_for_display(std::string_view text, size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + 8);
  size_t i = 0;
  while (i < text.size()) {
    const size_t len = utf8_sequence_length(text, i);
    if (i + std::max<size_t>(len, 1) > max_bytes) break;
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (len == 0) {
      out += fmt::format("\\x{:02x}", c);
      i += 1;
      continue;
    }
    if (len > 1) {
      out.append(text.substr(i, len));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\\' || c == '"') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
    i += len;
  }
  if (i < text.size()) out += fmt::format("...({} bytes)", text.size());
  return out;
}

std::string gguf_value_to_string(const GgufValue& value, size_t max_items,
                                 size_t max_string_bytes) {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          std::string out(1, '"');  // (not "\"" + ...: GCC 12 -O3 warns falsely on that)
          out += escape_for_display(x, max_string_bytes);
          out += '"';
          return out;
        } else if constexpr (std::is_same_v<T, std::shared_ptr<GgufArray>>) {
          if (!x) return "[]";
          const size_t n = x->items.size();
          const bool abbreviated = n > max_items;
          std::string out = "[";
          if (abbreviated) {
            out += fmt::format("{} {}", n, plural(x->element_type));
            if (max_items == 0) return out + "]";
            out += ": ";
          }
          const size_t shown = std::min(n, max_items);
          for (size_t i = 0; i < shown; ++i) {
            if (i > 0) out += ", ";
            out += gguf_value_to_string(x->items[i], max_items, max_string_bytes);
          }
          if (abbreviated) out += ", ...";
          return out + "]";
        } else {
          return number_to_string(x);
        }
      },
      value.value);
}

GgufValue gguf_uint32(uint32_t v) {
  return {GgufType::kUint32, v};
}
GgufValue gguf_int32(int32_t v) {
  return {GgufType::kInt32, v};
}
GgufValue gguf_uint64(uint64_t v) {
  return {GgufType::kUint64, v};
}
GgufValue gguf_float32(float v) {
  return {GgufType::kFloat32, v};
}
GgufValue gguf_bool(bool v) {
  return {GgufType::kBool, v};
}
GgufValue gguf_string(std::string v) {
  return {GgufType::kString, std::move(v)};
}
GgufValue gguf_array(GgufType element_type, std::vector<GgufValue> items) {
  auto array = std::make_shared<GgufArray>();
  array->element_type = element_type;
  array->items = std::move(items);
  return {GgufType::kArray, std::move(array)};
}

// ---- typed getters ----

namespace {

const GgufValue& require(const GgufFile& file, std::string_view key) {
  const GgufValue* v = file.find(key);
  if (v == nullptr) {
    fail(ErrorKind::kBadFile, "{}: missing key '{}'", file.name(), escape_for_display(key));
  }
  return *v;
}

[[noreturn]] void wrong_type(const GgufFile& file, std::string_view key, const GgufValue& v,
                             std::string_view expected) {
  std::string type(gguf_type_name(v.type));
  if (const auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v.value); a && *a) {
    type = fmt::format("array of {}", gguf_type_name((*a)->element_type));
  }
  fail(ErrorKind::kBadFile, "{}: key '{}' has type {} (value {}), expected {}", file.name(),
       escape_for_display(key), type, gguf_value_to_string(v, 3, 32), expected);
}

const GgufArray& require_array(const GgufFile& file, std::string_view key, const GgufValue& v,
                               std::string_view expected) {
  const auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v.value);
  if (a == nullptr || !*a) wrong_type(file, key, v, expected);
  return **a;
}

uint64_t to_uint(const GgufFile& file, std::string_view key, const GgufValue& v) {
  const auto u = as_uint(v);
  if (!u) wrong_type(file, key, v, "a non-negative integer");
  return *u;
}

std::optional<float> to_float(const GgufValue& v) {
  if (const auto* f = std::get_if<float>(&v.value)) return *f;
  if (const auto* d = std::get_if<double>(&v.value)) return static_cast<float>(*d);
  return std::nullopt;
}

}  // namespace

uint64_t GgufFile::get_uint(std::string_view key) const {
  return to_uint(*this, key, require(*this, key));
}

std::optional<uint64_t> GgufFile::find_uint(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  return to_uint(*this, key, *v);
}

int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue& v = require(*this, key);
  const auto i = as_int(v);
  if (!i) wrong_type(*this, key, v, "an integer that fits int64");
  return *i;
}

float GgufFile::get_float(std::string_view key) const {
  const GgufValue& v = require(*this, key);
  const auto f = to_float(v);
  if (!f) wrong_type(*this, key, v, "float32 or float64");
  return *f;
}

std::optional<float> GgufFile::find_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  const auto f = to_float(*v);
  if (!f) wrong_type(*this, key, *v, "float32 or float64");
  return f;
}

bool GgufFile::get_bool_or(std::string_view key, bool fallback) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return fallback;
  const auto* b = std::get_if<bool>(&v->value);
  if (b == nullptr) wrong_type(*this, key, *v, "bool");
  return *b;
}

std::string GgufFile::get_string(std::string_view key) const {
  const GgufValue& v = require(*this, key);
  const auto* s = std::get_if<std::string>(&v.value);
  if (s == nullptr) wrong_type(*this, key, v, "string");
  return *s;
}

std::optional<std::string> GgufFile::find_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  const auto* s = std::get_if<std::string>(&v->value);
  if (s == nullptr) wrong_type(*this, key, *v, "string");
  return *s;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue& v = require(*this, key);
  const GgufArray& a = require_array(*this, key, v, "array of string");
  if (a.element_type != GgufType::kString) wrong_type(*this, key, v, "array of string");
  std::vector<std::string> out;
  out.reserve(a.items.size());
  for (const GgufValue& item : a.items) out.push_back(std::get<std::string>(item.value));
  return out;
}

std::vector<float> GgufFile::get_float_array(std::string_view key) const {
  const GgufValue& v = require(*this, key);
  const GgufArray& a = require_array(*this, key, v, "array of float32");
  if (a.element_type != GgufType::kFloat32 && a.element_type != GgufType::kFloat64) {
    wrong_type(*this, key, v, "array of float32");
  }
  std::vector<float> out;
  out.reserve(a.items.size());
  for (const GgufValue& item : a.items) out.push_back(*to_float(item));
  return out;
}

std::vector<int32_t> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue& v = require(*this, key);
  const GgufArray& a = require_array(*this, key, v, "array of int32");
  if (!is_integer_type(a.element_type)) wrong_type(*this, key, v, "array of int32");
  std::vector<int32_t> out;
  out.reserve(a.items.size());
  for (size_t i = 0; i < a.items.size(); ++i) {
    const auto x = as_int(a.items[i]);
    if (!x || *x < std::numeric_limits<int32_t>::min() ||
        *x > std::numeric_limits<int32_t>::max()) {
      fail(ErrorKind::kBadFile, "{}: key '{}': item {} ({}) does not fit int32", name(),
           escape_for_display(key), i, gguf_value_to_string(a.items[i]));
    }
    out.push_back(static_cast<int32_t>(*x));
  }
  return out;
}

}  // namespace luzao
