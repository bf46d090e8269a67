// Attribute and item access, Python str/dict/list methods, and the globals Hugging Face gives chat
// templates (raise_exception, strftime_now, namespace, dict, range), as jinja2's immutable sandbox
// allows them.
#include <algorithm>
#include <cstdio>
#include <optional>

#include "core/error.h"
#include "tokenizer/jinja_eval.h"
#include "tokenizer/jinja_strings.h"

namespace luzao::jinja {

namespace {

Value undefined_attr(const Value& obj, std::string_view name) {
  return Value::undefined(fmt::format("'{} object' has no attribute '{}'", obj.type_name(), name));
}

const std::string& string_arg(const CallArgs& a, size_t i, std::string_view method) {
  if (i >= a.args.size() || !a.args[i].is_string()) {
    fail(ErrorKind::kInvalidArgument, "{}() argument {} must be str", method, i + 1);
  }
  return a.args[i].str();
}

bool has_arg(const CallArgs& a, size_t i) {
  return i < a.args.size() && !a.args[i].is_none();
}

int64_t int_arg(const CallArgs& a, size_t i, int64_t fallback) {
  if (!has_arg(a, i)) return fallback;
  if (!a.args[i].is_int()) fail(ErrorKind::kInvalidArgument, "expected an integer argument");
  return a.args[i].as_int();
}

Value string_list(std::vector<std::string> parts) {
  ValueList out;
  out.reserve(parts.size());
  for (auto& p : parts) out.emplace_back(std::move(p));
  return Value(std::move(out));
}

// Does `s` start (or end) with any of the prefixes in `arg` (a string or a tuple of strings)?
bool affix_match(const std::string& s, const Value& arg, bool suffix) {
  auto one = [&](const Value& p) {
    if (!p.is_string())
      fail(ErrorKind::kInvalidArgument, "startswith/endswith needs str arguments");
    const std::string& x = p.str();
    if (x.size() > s.size()) return false;
    return suffix ? s.compare(s.size() - x.size(), x.size(), x) == 0
                  : s.compare(0, x.size(), x) == 0;
  };
  if (arg.is_list()) {
    return std::any_of(arg.list().begin(), arg.list().end(), one);
  }
  return one(arg);
}

Value string_method(const Value& self, const std::string& name, CallArgs& a) {
  const std::string& s = self.str();
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    std::optional<std::string> chars;
    if (has_arg(a, 0)) chars = string_arg(a, 0, name);
    return Value(str_strip(s, chars ? &*chars : nullptr, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    const Value* sep = a.kwarg("sep");
    if (!sep && has_arg(a, 0)) sep = &a.args[0];
    const Value* maxsplit_kw = a.kwarg("maxsplit");
    int64_t maxsplit = maxsplit_kw ? maxsplit_kw->as_int() : int_arg(a, 1, -1);
    if (sep && !sep->is_none() && !sep->is_string()) {
      fail(ErrorKind::kInvalidArgument, "{}() separator must be str", name);
    }
    const std::string* sep_str = sep && sep->is_string() ? &sep->str() : nullptr;
    if (sep_str && sep_str->empty()) fail(ErrorKind::kInvalidArgument, "empty separator");
    return string_list(str_split(s, sep_str, maxsplit, name == "rsplit"));
  }
  if (name == "splitlines") return string_list(str_splitlines(s));
  if (name == "startswith" || name == "endswith") {
    if (a.args.empty()) fail(ErrorKind::kInvalidArgument, "{}() takes at least 1 argument", name);
    if (a.args.size() > 1)
      fail(ErrorKind::kUnsupported, "{}() with start/end is not supported", name);
    return Value(affix_match(s, a.args[0], name == "endswith"));
  }
  if (name == "upper") return Value(str_upper(s));
  if (name == "lower") return Value(str_lower(s));
  if (name == "title") return Value(str_title(s));
  if (name == "capitalize") return Value(str_capitalize(s));
  if (name == "replace") {
    return Value(str_replace(s, string_arg(a, 0, name), string_arg(a, 1, name), int_arg(a, 2, -1)));
  }
  if (name == "format") return Value(py_format(s, a));
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    const std::string& sub = string_arg(a, 0, name);
    if (a.args.size() > 1)
      fail(ErrorKind::kUnsupported, "{}() with start/end is not supported", name);
    size_t at = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
    if (at == std::string::npos) {
      if (name == "index" || name == "rindex")
        fail(ErrorKind::kInvalidArgument, "substring not found");
      return Value(static_cast<int64_t>(-1));
    }
    return Value(static_cast<int64_t>(utf8_length(std::string_view(s).substr(0, at))));
  }
  if (name == "count") {
    const std::string& sub = string_arg(a, 0, name);
    if (sub.empty()) return Value(static_cast<int64_t>(utf8_length(s) + 1));
    int64_t n = 0;
    for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
    return Value(n);
  }
  if (name == "join") {
    std::string out;
    bool first = true;
    for (const Value& item : iterate(a.args.empty() ? Value() : a.args[0])) {
      if (!item.is_string())
        fail(ErrorKind::kInvalidArgument, "sequence item: expected str instance");
      if (!first) out += s;
      first = false;
      out += item.str();
    }
    return Value(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const std::string& x = string_arg(a, 0, name);
    bool suffix = name == "removesuffix";
    if (affix_match(s, Value(x), suffix)) {
      return Value(suffix ? s.substr(0, s.size() - x.size()) : s.substr(x.size()));
    }
    return self;
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" ||
      name == "islower" || name == "isupper" || name == "isnumeric" || name == "isdecimal") {
    return Value(str_predicate(s, name));
  }
  fail(ErrorKind::kUnsupported, "string method '{}' is not supported", name);
}

Value dict_method(const Value& self, const std::string& name, CallArgs& a) {
  const ValueDict& d = self.dict();
  if (name == "get") {
    if (a.args.empty())
      fail(ErrorKind::kInvalidArgument, "get expected at least 1 argument, got 0");
    const Value* v = d.find_key(a.args[0]);
    if (v) return *v;
    return a.args.size() > 1 ? a.args[1] : Value::none();
  }
  ValueList out;
  out.reserve(d.size());
  for (const auto& [k, v] : d.entries()) {
    if (name == "items") {
      out.emplace_back(ValueList{Value(k), v}, true);
    } else if (name == "keys") {
      out.emplace_back(k);
    } else {
      out.push_back(v);
    }
  }
  return Value(std::move(out));
}

bool is_mutating_method(const Value& obj, std::string_view name) {
  static constexpr std::string_view kList[] = {"append", "clear",  "extend",  "insert",
                                               "pop",    "remove", "reverse", "sort"};
  static constexpr std::string_view kDict[] = {"clear", "pop", "popitem", "setdefault", "update"};
  if (obj.is_list()) return std::find(std::begin(kList), std::end(kList), name) != std::end(kList);
  if (obj.is_dict()) return std::find(std::begin(kDict), std::end(kDict), name) != std::end(kDict);
  return false;
}

Value bound(const Value& obj, std::string name,
            Value (*method)(const Value&, const std::string&, CallArgs&)) {
  return Value::callable(name, [obj, name, method](CallArgs& a) { return method(obj, name, a); });
}

Value list_method(const Value& self, const std::string& name, CallArgs& a) {
  const ValueList& items = self.list();
  if (a.args.empty()) fail(ErrorKind::kInvalidArgument, "{}() takes exactly one argument", name);
  if (name == "count") {
    return Value(static_cast<int64_t>(std::count_if(
        items.begin(), items.end(), [&](const Value& v) { return values_equal(v, a.args[0]); })));
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (values_equal(items[i], a.args[0])) return Value(static_cast<int64_t>(i));
  }
  fail(ErrorKind::kInvalidArgument, "{} is not in list", to_repr(a.args[0]));
}

}  // namespace

[[noreturn]] void fail_undefined(const Value& v) {
  const std::string& hint = v.str();
  fail(ErrorKind::kInvalidArgument, "{}", hint.empty() ? "value is undefined" : hint);
}

Value get_attr(const Value& obj, std::string_view name) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      fail_undefined(obj);
    case Value::Kind::kDict: {
      static constexpr std::string_view kMethods[] = {"get", "items", "keys", "values"};
      if (std::find(std::begin(kMethods), std::end(kMethods), name) != std::end(kMethods)) {
        return bound(obj, std::string(name), dict_method);
      }
      if (is_mutating_method(obj, name)) break;
      if (const Value* v = obj.dict().find(name)) return *v;
      return undefined_attr(obj, name);
    }
    case Value::Kind::kNamespace:
      if (const Value* v = obj.dict().find(name)) return *v;
      return undefined_attr(obj, name);
    case Value::Kind::kString: {
      static constexpr std::string_view kMethods[] = {
          "strip",      "lstrip",   "rstrip",       "split",        "rsplit",    "splitlines",
          "startswith", "endswith", "upper",        "lower",        "title",     "capitalize",
          "replace",    "format",   "find",         "rfind",        "index",     "rindex",
          "count",      "join",     "removeprefix", "removesuffix", "isdigit",   "isalpha",
          "isalnum",    "isspace",  "islower",      "isupper",      "isnumeric", "isdecimal"};
      if (std::find(std::begin(kMethods), std::end(kMethods), name) != std::end(kMethods)) {
        return bound(obj, std::string(name), string_method);
      }
      return undefined_attr(obj, name);
    }
    case Value::Kind::kList:
      if (name == "index" || name == "count") return bound(obj, std::string(name), list_method);
      if (is_mutating_method(obj, name)) break;
      return undefined_attr(obj, name);
    default:
      return undefined_attr(obj, name);
  }
  // A method the immutable sandbox refuses: calling it (or using it) raises SecurityError.
  return Value::callable(std::string(name),
                         [type = obj.type_name(), n = std::string(name)](CallArgs&) -> Value {
                           fail(ErrorKind::kInvalidArgument,
                                "access to attribute '{}' of '{}' object is unsafe.", n, type);
                         });
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_dict()) {
    if (const Value* v = obj.dict().find_key(key)) return *v;
  }
  if (key.is_int() || key.is_bool()) {
    int64_t i = key.is_bool() ? key.as_bool() : key.as_int();
    if (obj.is_list()) {
      int64_t n = static_cast<int64_t>(obj.list().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.list()[static_cast<size_t>(i)];
      return Value::undefined(
          fmt::format("'{} object' has no element {}", obj.type_name(), key.as_int()));
    }
    if (obj.is_string()) {
      std::vector<uint32_t> cps = utf8_to_cps(obj.str());
      int64_t n = static_cast<int64_t>(cps.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value(cps_to_utf8(&cps[static_cast<size_t>(i)], 1));
      return Value::undefined(fmt::format("'str object' has no element {}", key.as_int()));
    }
  }
  if (key.is_string()) {
    if (obj.is_dict()) {
      if (const Value* v = obj.dict().find(key.str())) return *v;
    }
    return get_attr(obj, key.str());
  }
  return Value::undefined(
      fmt::format("'{} object' has no element {}", obj.type_name(), to_repr(key)));
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) fail_undefined(obj);
  auto int_or = [](const Value& v, int64_t fallback) {
    if (v.is_none()) return fallback;
    if (!v.is_int()) fail(ErrorKind::kInvalidArgument, "slice indices must be integers or None");
    return v.as_int();
  };
  int64_t st = int_or(step, 1);
  if (st == 0) fail(ErrorKind::kInvalidArgument, "slice step cannot be zero");
  auto pick = [&](int64_t n, auto&& take) {
    // Python's slice.indices().
    auto clamp = [&](const Value& v, int64_t dflt) {
      if (v.is_none()) return dflt;
      int64_t i = int_or(v, 0);
      if (i < 0) i += n;
      if (st > 0) return std::clamp<int64_t>(i, 0, n);
      return std::clamp<int64_t>(i, -1, n - 1);
    };
    int64_t b = clamp(start, st > 0 ? 0 : n - 1);
    int64_t e = clamp(stop, st > 0 ? n : -1);
    for (int64_t i = b; st > 0 ? i < e : i > e; i += st) take(static_cast<size_t>(i));
  };
  if (obj.is_string()) {
    std::vector<uint32_t> cps = utf8_to_cps(obj.str());
    std::vector<uint32_t> out;
    pick(static_cast<int64_t>(cps.size()), [&](size_t i) { out.push_back(cps[i]); });
    return Value(cps_to_utf8(out.data(), out.size()));
  }
  if (obj.is_list()) {
    ValueList out;
    pick(static_cast<int64_t>(obj.list().size()), [&](size_t i) { out.push_back(obj.list()[i]); });
    return Value(std::move(out), obj.is_tuple());
  }
  return Value::undefined(fmt::format("'{} object' is not subscriptable", obj.type_name()));
}

ValueList iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
      return v.list();
    case Value::Kind::kGenerator:
      return v.consume();
    case Value::Kind::kDict: {
      ValueList keys;
      for (const auto& e : v.dict().entries()) keys.emplace_back(e.first);
      return keys;
    }
    case Value::Kind::kString: {
      ValueList chars;
      std::vector<uint32_t> cps = utf8_to_cps(v.str());
      for (uint32_t cp : cps) chars.emplace_back(cps_to_utf8(&cp, 1));
      return chars;
    }
    default:
      fail(ErrorKind::kInvalidArgument, "'{}' object is not iterable", v.type_name());
  }
}

bool contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (!item.is_string()) {
      fail(ErrorKind::kInvalidArgument, "'in <string>' requires string as left operand, not {}",
           item.type_name());
    }
    return container.str().find(item.str()) != std::string::npos;
  }
  if (container.is_dict()) return container.dict().find_key(item) != nullptr;
  if (container.is_undefined()) return false;
  for (const Value& v : iterate(container)) {
    if (values_equal(v, item)) return true;
  }
  return false;
}

Value add_values(const Value& a, const Value& b) {
  if (a.is_string() && b.is_string()) {
    // Markup + str escapes the str (and str + Markup too, through Markup.__radd__).
    if (a.is_markup() || b.is_markup()) {
      std::string left = a.is_markup() ? a.str() : html_escape(a.str());
      std::string right = b.is_markup() ? b.str() : html_escape(b.str());
      return Value::markup(left + right);
    }
    return Value(a.str() + b.str());
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    ValueList out = a.list();
    out.insert(out.end(), b.list().begin(), b.list().end());
    return Value(std::move(out), a.is_tuple());
  }
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float()) {
      auto iv = [](const Value& v) { return v.is_bool() ? int64_t{v.as_bool()} : v.as_int(); };
      int64_t sum = 0;
      if (__builtin_add_overflow(iv(a), iv(b), &sum)) {
        fail(ErrorKind::kUnsupported, "integers beyond 64 bits are not supported");
      }
      return Value(sum);
    }
    return Value(a.as_double() + b.as_double());
  }
  if (a.is_string()) {
    fail(ErrorKind::kInvalidArgument, "can only concatenate str (not \"{}\") to str",
         b.type_name());
  }
  if (a.is_list()) {
    fail(ErrorKind::kInvalidArgument, "can only concatenate list (not \"{}\") to list",
         b.type_name());
  }
  fail(ErrorKind::kInvalidArgument, "unsupported operand type(s) for +: '{}' and '{}'",
       a.type_name(), b.type_name());
}

std::string py_format(const std::string& fmt_str, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt_str.size(); ++i) {
    char c = fmt_str[i];
    if (c == '{' && i + 1 < fmt_str.size() && fmt_str[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (c == '}' && i + 1 < fmt_str.size() && fmt_str[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (c == '{') {
      size_t close = fmt_str.find('}', i);
      if (close == std::string::npos)
        fail(ErrorKind::kInvalidArgument, "Single '{{' encountered in format string");
      std::string field = fmt_str.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!.[") != std::string::npos) {
        fail(ErrorKind::kUnsupported, "str.format field '{{{}}}' is not supported", field);
      }
      const Value* v = nullptr;
      if (field.empty()) {
        if (auto_index < args.args.size()) v = &args.args[auto_index];
        ++auto_index;
      } else if (std::all_of(field.begin(), field.end(),
                             [](char d) { return d >= '0' && d <= '9'; })) {
        size_t k = std::stoul(field);
        if (k < args.args.size()) v = &args.args[k];
      } else {
        v = args.kwarg(field);
      }
      if (!v) fail(ErrorKind::kInvalidArgument, "str.format: no value for field '{{{}}}'", field);
      out += to_str(*v);
      i = close;
    } else if (c == '}') {
      fail(ErrorKind::kInvalidArgument, "Single '}}' encountered in format string");
    } else {
      out += c;
    }
  }
  return out;
}

Value global_value(Interp& in, std::string_view name) {
  if (name == "raise_exception") {
    return Value::callable("raise_exception", [](CallArgs& a) -> Value {
      std::string msg = a.args.empty() ? std::string() : to_str(a.args[0]);
      fail(ErrorKind::kInvalidArgument, "raise_exception: {}", msg);
    });
  }
  if (name == "strftime_now") {
    RenderDate date = in.date();
    return Value::callable("strftime_now", [date](CallArgs& a) {
      if (a.args.empty() || !a.args[0].is_string()) {
        fail(ErrorKind::kInvalidArgument, "strftime_now() needs a format string");
      }
      return Value(format_date(date, a.args[0].str()));
    });
  }
  if (name == "namespace" || name == "dict") {
    bool ns = name == "namespace";
    return Value::callable(std::string(name), [ns](CallArgs& a) {
      ValueDict attrs;
      if (!a.args.empty()) {
        if (!a.args[0].is_dict() || a.args.size() > 1) {
          fail(ErrorKind::kInvalidArgument, "{}() takes an optional mapping and keyword arguments",
               ns ? "namespace" : "dict");
        }
        attrs = a.args[0].dict();
      }
      for (auto& [k, v] : a.kwargs) {
        if (ns && !k.empty() && k[0] == '_') {
          fail(ErrorKind::kInvalidArgument, "cannot store underscore-prefixed attribute '{}'", k);
        }
        attrs.set(k, v);
      }
      return ns ? Value::namespace_(std::move(attrs)) : Value(std::move(attrs));
    });
  }
  if (name == "range") {
    return Value::callable("range", [](CallArgs& a) {
      if (a.args.empty() || a.args.size() > 3)
        fail(ErrorKind::kInvalidArgument, "range expected 1 to 3 arguments");
      for (const Value& v : a.args) {
        if (!v.is_int()) fail(ErrorKind::kInvalidArgument, "range() arguments must be integers");
      }
      int64_t start = a.args.size() > 1 ? a.args[0].as_int() : 0;
      int64_t stop = a.args.size() > 1 ? a.args[1].as_int() : a.args[0].as_int();
      int64_t step = a.args.size() > 2 ? a.args[2].as_int() : 1;
      if (step == 0) fail(ErrorKind::kInvalidArgument, "range() arg 3 must not be zero");
      ValueList out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (out.size() >= 100000) fail(ErrorKind::kInvalidArgument, "range too big");
        out.emplace_back(i);
      }
      return Value(std::move(out));
    });
  }
  return Value();
}

}  // namespace luzao::jinja
