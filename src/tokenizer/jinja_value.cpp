// Value construction, Python printing (str/repr), comparison and UTF-8 helpers for the Jinja
// engine.
#include "tokenizer/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace luzao::jinja {

// ---- ValueDict / CallArgs ----

const Value* ValueDict::find(std::string_view key) const {
  for (const auto& e : entries_) {
    if (e.first.is_string() && e.first.str() == key) return &e.second;
  }
  return nullptr;
}

Value* ValueDict::find(std::string_view key) {
  for (auto& e : entries_) {
    if (e.first.is_string() && e.first.str() == key) return &e.second;
  }
  return nullptr;
}

const Value* ValueDict::find_key(const Value& key) const {
  if (key.is_string()) return find(key.str());
  for (const auto& e : entries_) {
    if (!e.first.is_string() && values_equal(e.first, key)) return &e.second;
  }
  return nullptr;
}

void ValueDict::set(Value key, Value value) {
  if (const Value* v = find_key(key)) {
    *const_cast<Value*>(v) = std::move(value);
    return;
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

const Value* CallArgs::kwarg(std::string_view name) const {
  for (const auto& kv : kwargs) {
    if (kv.first == name) return &kv.second;
  }
  return nullptr;
}

// ---- Value ----

namespace {
const std::string kEmpty;
const ValueList kEmptyList;
const ValueDict kEmptyDict;
}  // namespace

Value Value::undefined(std::string hint) {
  Value v;
  if (!hint.empty()) v.heap_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value::Value(bool b) : kind_(Kind::kBool) {
  b_ = b;
}
Value::Value(int64_t v) : kind_(Kind::kInt) {
  i_ = v;
}
Value::Value(double v) : kind_(Kind::kFloat) {
  f_ = v;
}
Value::Value(std::string s)
    : kind_(Kind::kString), heap_(std::make_shared<const std::string>(std::move(s))) {}
Value::Value(std::string_view s)
    : kind_(Kind::kString), heap_(std::make_shared<const std::string>(s)) {}
Value::Value(ValueList list, bool tuple)
    : kind_(Kind::kList), flag_(tuple), heap_(std::make_shared<const ValueList>(std::move(list))) {}
Value::Value(ValueDict dict)
    : kind_(Kind::kDict), heap_(std::make_shared<const ValueDict>(std::move(dict))) {}

Value Value::markup(std::string s) {
  Value v(std::move(s));
  v.flag_ = true;
  return v;
}

Value Value::namespace_(ValueDict attrs) {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.heap_ = std::make_shared<ValueDict>(std::move(attrs));
  return v;
}

Value Value::callable(std::string name, std::function<Value(CallArgs&)> fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.heap_ = std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

namespace {
struct GeneratorState {
  ValueList items;
  size_t pos = 0;
};
}  // namespace

Value Value::generator(ValueList items) {
  Value v;
  v.kind_ = Kind::kGenerator;
  v.heap_ = std::make_shared<GeneratorState>(GeneratorState{std::move(items), 0});
  return v;
}

ValueList Value::consume(size_t max) const {
  LUZAO_CHECK(kind_ == Kind::kGenerator);
  auto* state = const_cast<GeneratorState*>(static_cast<const GeneratorState*>(heap_.get()));
  size_t end = state->items.size() - state->pos < max ? state->items.size() : state->pos + max;
  ValueList out(std::make_move_iterator(state->items.begin() + static_cast<ptrdiff_t>(state->pos)),
                std::make_move_iterator(state->items.begin() + static_cast<ptrdiff_t>(end)));
  state->pos = end;
  return out;
}

double Value::as_double() const {
  if (kind_ == Kind::kFloat) return f_;
  if (kind_ == Kind::kBool) return b_ ? 1.0 : 0.0;
  return static_cast<double>(i_);
}

const std::string& Value::str() const {
  if ((kind_ == Kind::kString || kind_ == Kind::kUndefined) && heap_) {
    return *static_cast<const std::string*>(heap_.get());
  }
  return kEmpty;
}

const ValueList& Value::list() const {
  return kind_ == Kind::kList ? *static_cast<const ValueList*>(heap_.get()) : kEmptyList;
}

const ValueDict& Value::dict() const {
  if (kind_ == Kind::kDict || kind_ == Kind::kNamespace) {
    return *static_cast<const ValueDict*>(heap_.get());
  }
  return kEmptyDict;
}

ValueDict& Value::namespace_attrs() const {
  LUZAO_CHECK(kind_ == Kind::kNamespace);
  // Namespaces are the one mutable container; the heap object was created non-const.
  return *const_cast<ValueDict*>(static_cast<const ValueDict*>(heap_.get()));
}

const Callable& Value::callable_ref() const {
  LUZAO_CHECK(kind_ == Kind::kCallable);
  return *static_cast<const Callable*>(heap_.get());
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return f_ != 0.0;
    case Kind::kString:
      return !str().empty();
    case Kind::kList:
      return !list().empty();
    case Kind::kDict:
      return !dict().empty();
    case Kind::kNamespace:
    case Kind::kCallable:
    case Kind::kGenerator:
      return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return flag_ ? "tuple" : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return "function";
    case Kind::kGenerator:
      return "generator";
  }
  return "object";
}

// ---- UTF-8 ----

std::vector<uint32_t> utf8_to_cps(std::string_view s) {
  std::vector<uint32_t> cps;
  unicode::decode_utf8(s, cps);
  return cps;
}

std::string cps_to_utf8(const uint32_t* cps, size_t n) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) unicode::append_utf8(cps[i], out);
  return out;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  return n;
}

bool is_py_space(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
  return unicode::is_whitespace(cp);
}

// ---- printing ----

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // e.g. "-1.2345e+02"
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  int exp = std::stoi(sci.substr(e + 1));
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exp) + 1) + "." +
             digits.substr(static_cast<size_t>(exp) + 1);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char ebuf[16];
  std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  return out + ebuf;
}

namespace {

bool is_printable(uint32_t cp) {
  if (cp == ' ') return true;
  if (cp < 0x20 || cp == 0x7F) return false;
  if (cp < 0x7F) return true;
  auto cls = unicode::class_of(cp);
  return cls != unicode::kControl && cls != unicode::kUndefined && cls != unicode::kSeparator;
}

std::string repr_string(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (uint32_t cp : utf8_to_cps(s)) {
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (is_printable(cp)) {
      unicode::append_utf8(cp, out);
    } else {
      char buf[16];
      if (cp < 0x100) {
        std::snprintf(buf, sizeof(buf), "\\x%02x", cp);
      } else if (cp < 0x10000) {
        std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      } else {
        std::snprintf(buf, sizeof(buf), "\\U%08x", cp);
      }
      out += buf;
    }
  }
  out += quote;
  return out;
}

void append_repr(const Value& v, std::string& out);

void append_dict_body(const ValueDict& d, std::string& out) {
  out += '{';
  bool first = true;
  for (const auto& [k, val] : d.entries()) {
    if (!first) out += ", ";
    first = false;
    append_repr(k, out);
    out += ": ";
    append_repr(val, out);
  }
  out += '}';
}

void append_repr(const Value& v, std::string& out) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      out += "Undefined";
      return;
    case Value::Kind::kString:
      if (v.is_markup()) {
        out += "Markup(" + repr_string(v.str()) + ")";
      } else {
        out += repr_string(v.str());
      }
      return;
    case Value::Kind::kList: {
      const auto& items = v.list();
      out += v.is_tuple() ? '(' : '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        append_repr(items[i], out);
      }
      if (v.is_tuple() && items.size() == 1) out += ',';
      out += v.is_tuple() ? ')' : ']';
      return;
    }
    case Value::Kind::kDict:
      append_dict_body(v.dict(), out);
      return;
    case Value::Kind::kNamespace:
      out += "<Namespace ";
      append_dict_body(v.dict(), out);
      out += '>';
      return;
    default:
      out += to_str(v);
  }
}

}  // namespace

std::string to_repr(const Value& v) {
  std::string out;
  append_repr(v, out);
  return out;
}

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "";
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return v.as_bool() ? "True" : "False";
    case Value::Kind::kInt:
      return std::to_string(v.as_int());
    case Value::Kind::kFloat:
      return float_repr(v.as_double());
    case Value::Kind::kString:
      return v.str();
    case Value::Kind::kCallable:
      return "<function " + v.callable_ref().name + ">";
    case Value::Kind::kGenerator:
      fail(ErrorKind::kUnsupported,
           "printing a generator (the result of map/select/...) is not "
           "supported; apply |list first");
    default:
      return to_repr(v);
  }
}

// ---- comparison ----

bool values_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if ((a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool())) {
      int64_t x = a.is_bool() ? a.as_bool() : a.as_int();
      int64_t y = b.is_bool() ? b.as_bool() : b.as_int();
      return x == y;
    }
    return a.as_double() == b.as_double();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.str() == b.str();
    case Value::Kind::kList: {
      if (a.is_tuple() != b.is_tuple()) return false;
      const auto& x = a.list();
      const auto& y = b.list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!values_equal(x[i], y[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const auto& x = a.dict();
      const auto& y = b.dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.entries()) {
        const Value* w = y.find_key(k);
        if (!w || !values_equal(v, *w)) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace:
    case Value::Kind::kCallable:
      return &a.dict() == &b.dict();
    default:
      return false;
  }
}

bool values_less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if ((a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool())) {
      int64_t x = a.is_bool() ? a.as_bool() : a.as_int();
      int64_t y = b.is_bool() ? b.as_bool() : b.as_int();
      return x < y;
    }
    return a.as_double() < b.as_double();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 order = code point order
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto& x = a.list();
    const auto& y = b.list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!values_equal(x[i], y[i])) return values_less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  fail(ErrorKind::kInvalidArgument, "'<' not supported between instances of '{}' and '{}'",
       a.type_name(), b.type_name());
}

}  // namespace luzao::jinja
