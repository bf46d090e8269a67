// The value type of the chat-template (Jinja subset) engine: Python-like values with jinja2's
// printing, comparison and JSON (json.dumps) behaviour, plus a small JSON reader.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace luzao::jinja {

class Value;
using ValueList = std::vector<Value>;

// A dict that keeps insertion order, like a Python dict. Keys are nearly always strings (JSON
// objects); templates may also use numbers, booleans or None as keys.
class ValueDict {
 public:
  using Entry = std::pair<Value, Value>;
  const Value* find(std::string_view key) const;  // string keys
  Value* find(std::string_view key);
  const Value* find_key(const Value& key) const;  // any key, with Python's 1 == 1.0 == True
  void set(Value key, Value value);               // inserts at the end, or replaces in place
  const std::vector<Entry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  std::vector<Entry> entries_;
};

// The clock strftime_now() reads: fixed by the caller so renders are reproducible.
struct RenderDate {
  int year = 2026, month = 1, day = 15, hour = 0, minute = 0, second = 0;
};

// Positional and keyword arguments of a call.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
  // The keyword `name`, or null.
  const Value* kwarg(std::string_view name) const;
};

// Something a template can call: a macro, a global function or a bound method.
struct Callable {
  std::string name;
  std::function<Value(CallArgs&)> fn;
};

// A Python-like value. Lists and dicts are shared (copying a Value is cheap); the engine never
// mutates a list or dict after building it, except namespaces (reference semantics, as in jinja2).
class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,  // jinja2's default Undefined: prints "", is falsy, fails on attribute access
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,  // also tuples (is_tuple())
    kDict,
    kNamespace,  // namespace(): a dict whose attributes can be assigned with {% set ns.x = ... %}
    kCallable,
    kGenerator,  // a one-shot iterator (what map/select/unique/... return): truthy, no len(), no
                 // JSON
  };

  Value() = default;  // undefined
  static Value undefined(std::string hint = {});
  static Value none();
  Value(bool b);  // NOLINT(google-explicit-constructor): literals read naturally
  Value(int v) : Value(static_cast<int64_t>(v)) {}      // NOLINT
  Value(int64_t v);                                     // NOLINT
  Value(double v);                                      // NOLINT
  Value(std::string s);                                 // NOLINT
  Value(std::string_view s);                            // NOLINT
  Value(const char* s) : Value(std::string_view(s)) {}  // NOLINT
  Value(ValueList list, bool tuple = false);
  Value(ValueDict dict);               // NOLINT
  static Value markup(std::string s);  // a string marked safe (jinja2's Markup, from |safe)
  static Value namespace_(ValueDict attrs);
  static Value callable(std::string name, std::function<Value(CallArgs&)> fn);
  static Value generator(ValueList items);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || is_bool(); }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_markup() const { return kind_ == Kind::kString && flag_; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && flag_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }
  bool is_generator() const { return kind_ == Kind::kGenerator; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }  // kInt (or kBool widened by callers)
  double as_double() const;              // kInt, kFloat or kBool
  const std::string& str() const;        // kString, or an undefined's hint
  const ValueList& list() const;
  const ValueDict& dict() const;  // kDict or kNamespace
  ValueDict& namespace_attrs() const;
  const Callable& callable_ref() const;
  // Takes the items a generator has not yielded yet (a generator is consumed once, as in Python);
  // `max` limits how many are taken.
  ValueList consume(size_t max = SIZE_MAX) const;

  // Python truthiness (undefined and None are false).
  bool truthy() const;
  // A short type name for messages, as jinja2 would say ("dict object", "str object").
  std::string type_name() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool flag_ = false;  // kString: markup; kList: tuple
  union {
    bool b_;
    int64_t i_ = 0;
    double f_;
  };
  std::shared_ptr<const void> heap_;  // string, list, dict or callable, by kind
};

// Python's str(value) as jinja2 prints it: None, True, 1.5, "['a', 1]", "" for undefined.
std::string to_str(const Value& v);
// Python's repr(value).
std::string to_repr(const Value& v);
// Python's repr of a float (shortest round-trip, "1.0", "1e+16").
std::string float_repr(double d);

// Options of json.dumps as Hugging Face's tojson filter passes them.
struct JsonOptions {
  bool ensure_ascii = false;
  int indent = -1;          // -1: no indentation (None)
  std::string indent_text;  // used when set (indent given as a string)
  bool sort_keys = false;
  std::string item_separator;  // empty: json.dumps' default for the indent
  std::string key_separator;
  bool separators_set = false;
};
// json.dumps(value, ...). Fails (kInvalidArgument) on values JSON cannot hold.
std::string to_json(const Value& v, const JsonOptions& options = {});
// Parses JSON text into a Value (objects keep key order). Fails with kInvalidArgument naming
// `what` and the byte offset.
Value parse_json(std::string_view text, std::string_view what = "JSON");

// Python ==, and ordering (<) that fails with kInvalidArgument for types Python cannot order.
bool values_equal(const Value& a, const Value& b);
bool values_less(const Value& a, const Value& b);

// UTF-8 helpers shared by the engine (code point counts and slicing as Python strings do).
std::vector<uint32_t> utf8_to_cps(std::string_view s);
std::string cps_to_utf8(const uint32_t* cps, size_t n);
size_t utf8_length(std::string_view s);
bool is_py_space(uint32_t cp);  // str.isspace()

}  // namespace luzao::jinja
