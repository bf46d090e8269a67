// jinja2's built-in filters and tests as chat templates use them, with Hugging Face's tojson
// (json.dumps with ensure_ascii=False). Filters jinja2 has but luzao lacks fail with kUnsupported.
#include <algorithm>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "tokenizer/jinja_eval.h"
#include "tokenizer/jinja_strings.h"

namespace luzao::jinja {

namespace {

constexpr std::string_view kKnownFilters[] = {
    "abs",    "attr",       "batch",       "capitalize", "center",   "count",
    "d",      "default",    "dictsort",    "e",          "escape",   "filesizeformat",
    "first",  "float",      "forceescape", "format",     "groupby",  "indent",
    "int",    "items",      "join",        "last",       "length",   "list",
    "lower",  "map",        "max",         "min",        "pprint",   "random",
    "reject", "rejectattr", "replace",     "reverse",    "round",    "safe",
    "select", "selectattr", "slice",       "sort",       "string",   "striptags",
    "sum",    "title",      "tojson",      "trim",       "truncate", "unique",
    "upper",  "urlencode",  "urlize",      "wordcount",  "wordwrap", "xmlattr"};

constexpr std::string_view kKnownTests[] = {
    "boolean", "callable", "defined",  "divisibleby", "eq",       "equalto",     "escaped",
    "even",    "false",    "filter",   "float",       "ge",       "greaterthan", "gt",
    "in",      "integer",  "iterable", "le",          "lessthan", "lower",       "lt",
    "mapping", "ne",       "none",     "number",      "odd",      "sameas",      "sequence",
    "string",  "test",     "true",     "undefined",   "upper",    "==",          "!=",
    ">",       ">=",       "<",        "<="};

// Positional argument `pos` or keyword `name`, or null.
const Value* arg(const CallArgs& a, size_t pos, std::string_view name) {
  if (const Value* v = a.kwarg(name)) return v;
  return pos < a.args.size() ? &a.args[pos] : nullptr;
}

bool flag_arg(const CallArgs& a, size_t pos, std::string_view name, bool fallback) {
  const Value* v = arg(a, pos, name);
  return v ? v->truthy() : fallback;
}

// Follows a dotted attribute path ("function.name", "0") as jinja2's make_attrgetter does.
Value attr_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(),
                                                [](char c) { return c >= '0' && c <= '9'; });
    v = numeric ? get_item(v, Value(static_cast<int64_t>(std::stoll(part))))
                : get_item(v, Value(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// The sort key jinja2 uses when case_sensitive is false: strings lowered.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(str_lower(v.str()));
  return v;
}

void stable_sort_values(ValueList& items, bool reverse,
                        const std::function<Value(const Value&)>& key) {
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (auto& item : items) keyed.emplace_back(key(item), std::move(item));
  std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& x, const auto& y) {
    return reverse ? values_less(y.first, x.first) : values_less(x.first, y.first);
  });
  items.clear();
  for (auto& kv : keyed) items.push_back(std::move(kv.second));
}

int64_t length_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return static_cast<int64_t>(utf8_length(v.str()));
    case Value::Kind::kList:
      return static_cast<int64_t>(v.list().size());
    case Value::Kind::kDict:
      return static_cast<int64_t>(v.dict().size());
    default:
      fail(ErrorKind::kInvalidArgument, "object of type '{}' has no len()", v.type_name());
  }
}

Value do_tojson(const Value& v, const CallArgs& a) {
  JsonOptions opt;
  if (const Value* x = arg(a, 0, "ensure_ascii")) opt.ensure_ascii = x->truthy();
  if (const Value* x = arg(a, 1, "indent"); x && !x->is_none()) {
    if (x->is_string()) {
      opt.indent_text = x->str();
      if (opt.indent_text.empty()) opt.indent = 0;
    } else if (x->is_int()) {
      if (x->as_int() > 4096) fail(ErrorKind::kInvalidArgument, "tojson indent too large");
      opt.indent = static_cast<int>(std::max<int64_t>(0, x->as_int()));
    } else {
      fail(ErrorKind::kInvalidArgument, "tojson indent must be an int or a string");
    }
  }
  if (const Value* x = arg(a, 2, "separators"); x && !x->is_none()) {
    if (!x->is_list() || x->list().size() != 2 || !x->list()[0].is_string() ||
        !x->list()[1].is_string()) {
      fail(ErrorKind::kInvalidArgument, "tojson separators must be a pair of strings");
    }
    opt.separators_set = true;
    opt.item_separator = x->list()[0].str();
    opt.key_separator = x->list()[1].str();
  }
  if (const Value* x = arg(a, 3, "sort_keys")) opt.sort_keys = x->truthy();
  return Value(to_json(v, opt));
}

Value do_indent(const Value& v, const CallArgs& a) {
  std::string indention = "    ";
  if (const Value* w = arg(a, 0, "width")) {
    if (!w->is_string() && (!w->is_int() || w->as_int() > 4096)) {
      fail(ErrorKind::kInvalidArgument, "indent width must be a string or an integer up to 4096");
    }
    indention = w->is_string()
                    ? w->str()
                    : std::string(static_cast<size_t>(std::max<int64_t>(0, w->as_int())), ' ');
  }
  bool first = flag_arg(a, 1, "first", false);
  bool blank = flag_arg(a, 2, "blank", false);
  std::vector<std::string> lines = str_splitlines(to_str(v) + "\n");
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + indention : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i)
      rv += "\n" + (lines[i].empty() ? "" : indention) + lines[i];
  }
  return Value(first ? indention + rv : rv);
}

Value do_int(const Value& v, const CallArgs& a) {
  const Value* d = arg(a, 0, "default");
  Value fallback = d ? *d : Value(static_cast<int64_t>(0));
  if (v.is_int() || v.is_bool()) return Value(v.is_bool() ? int64_t{v.as_bool()} : v.as_int());
  if (v.is_float())
    return std::isfinite(v.as_double()) ? Value(static_cast<int64_t>(v.as_double())) : fallback;
  if (v.is_string()) {
    std::string s = str_strip(v.str(), nullptr, true, true);
    const Value* b = arg(a, 1, "base");
    int base = b ? static_cast<int>(b->as_int()) : 10;
    try {
      size_t used = 0;
      long long x = std::stoll(s, &used, base);
      if (used == s.size()) return Value(static_cast<int64_t>(x));
      double f = std::stod(s, &used);
      if (used == s.size() && std::isfinite(f)) return Value(static_cast<int64_t>(f));
    } catch (const std::exception&) {
    }
  }
  return fallback;
}

Value do_float(const Value& v, const CallArgs& a) {
  const Value* d = arg(a, 0, "default");
  Value fallback = d ? *d : Value(0.0);
  if (v.is_number()) return Value(v.as_double());
  if (v.is_string()) {
    std::string s = str_strip(v.str(), nullptr, true, true);
    try {
      size_t used = 0;
      double f = std::stod(s, &used);
      if (used == s.size()) return Value(f);
    } catch (const std::exception&) {
    }
  }
  return fallback;
}

Value do_round(const Value& v, const CallArgs& a) {
  const Value* p = arg(a, 0, "precision");
  int64_t precision = p ? p->as_int() : 0;
  const Value* m = arg(a, 1, "method");
  std::string method = m ? m->str() : "common";
  if (!v.is_number()) fail(ErrorKind::kInvalidArgument, "round needs a number");
  double x = v.as_double();
  double scale = std::pow(10.0, static_cast<double>(precision));
  if (method == "ceil") return Value(std::ceil(x * scale) / scale);
  if (method == "floor") return Value(std::floor(x * scale) / scale);
  if (method != "common") fail(ErrorKind::kInvalidArgument, "method must be common, ceil or floor");
  // Python's round(): half to even on the scaled value.
  double y = x * scale;
  double r = std::nearbyint(y);
  return Value(r / scale);
}

// select/reject/selectattr/rejectattr.
Value do_select(Interp& in, const Value& v, const CallArgs& a, bool with_attr, bool keep) {
  if (!v.truthy()) return Value::generator({});  // jinja2 skips falsy input (None included)
  size_t next = 0;
  std::string attribute;
  if (with_attr) {
    if (a.args.empty() || !a.args[0].is_string())
      fail(ErrorKind::kInvalidArgument, "missing attribute name");
    attribute = a.args[0].str();
    next = 1;
  }
  std::optional<std::string> test_name;
  if (next < a.args.size()) test_name = to_str(a.args[next++]);
  ValueList out;
  for (const Value& item : iterate(v)) {
    Value subject = with_attr ? attr_path(item, attribute) : item;
    bool ok;
    if (test_name) {
      CallArgs targs;
      targs.args.assign(a.args.begin() + static_cast<ptrdiff_t>(next), a.args.end());
      ok = in.test(*test_name, subject, targs);
    } else {
      ok = subject.truthy();
    }
    if (ok == keep) out.push_back(item);
  }
  return Value::generator(std::move(out));
}

Value do_map(Interp& in, const Value& v, const CallArgs& a) {
  ValueList out;
  if (!v.truthy()) return Value::generator({});  // jinja2 skips falsy input (None included)
  if (const Value* attr = a.kwarg("attribute")) {
    const Value* dflt = a.kwarg("default");
    for (const Value& item : iterate(v)) {
      Value x = attr_path(item, to_str(*attr));
      out.push_back(x.is_undefined() && dflt ? *dflt : x);
    }
    return Value::generator(std::move(out));
  }
  if (a.args.empty()) fail(ErrorKind::kInvalidArgument, "map requires a filter argument");
  std::string name = to_str(a.args[0]);
  CallArgs fargs;
  fargs.args.assign(a.args.begin() + 1, a.args.end());
  fargs.kwargs = a.kwargs;
  for (const Value& item : iterate(v)) {
    CallArgs copy = fargs;
    out.push_back(in.filter(name, item, copy));
  }
  return Value::generator(std::move(out));
}

Value do_unique(const Value& v, const CallArgs& a) {
  bool cs = flag_arg(a, 0, "case_sensitive", false);
  const Value* attribute = arg(a, 1, "attribute");
  ValueList out, seen;
  for (const Value& item : iterate(v)) {
    Value key = sort_key(attribute ? attr_path(item, to_str(*attribute)) : item, cs);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return values_equal(s, key); }))
      continue;
    seen.push_back(key);
    out.push_back(item);
  }
  return Value::generator(std::move(out));
}

Value do_minmax(const Value& v, const CallArgs& a, bool want_max) {
  bool cs = flag_arg(a, 0, "case_sensitive", false);
  const Value* attribute = arg(a, 1, "attribute");
  ValueList items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  auto key = [&](const Value& x) {
    return sort_key(attribute ? attr_path(x, to_str(*attribute)) : x, cs);
  };
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    bool better = want_max ? values_less(key(items[best]), key(items[i]))
                           : values_less(key(items[i]), key(items[best]));
    if (better) best = i;
  }
  return items[best];
}

}  // namespace

bool is_known_filter(std::string_view name) {
  return std::find(std::begin(kKnownFilters), std::end(kKnownFilters), name) !=
         std::end(kKnownFilters);
}

bool is_known_test(std::string_view name) {
  return std::find(std::begin(kKnownTests), std::end(kKnownTests), name) != std::end(kKnownTests);
}

Value builtin_filter(Interp& in, std::string_view name, const Value& v, CallArgs& a) {
  if (name == "tojson") return do_tojson(v, a);
  if (name == "length" || name == "count") return Value(length_of(v));
  if (name == "trim") {
    const Value* chars = arg(a, 0, "chars");
    std::string c = chars && !chars->is_none() ? to_str(*chars) : std::string();
    return Value(str_strip(to_str(v), chars && !chars->is_none() ? &c : nullptr, true, true));
  }
  if (name == "string") return v.is_string() ? v : Value(to_str(v));
  if (name == "default" || name == "d") {
    const Value* d = arg(a, 0, "default_value");
    bool boolean = flag_arg(a, 1, "boolean", false);
    if (v.is_undefined() || (boolean && !v.truthy())) return d ? *d : Value(std::string());
    return v;
  }
  if (name == "join") {
    const Value* sep = arg(a, 0, "d");
    const Value* attribute = arg(a, 1, "attribute");
    std::string s = sep ? to_str(*sep) : std::string(), out;
    bool first = true;
    for (const Value& item : iterate(v)) {
      if (!first) out += s;
      first = false;
      out += to_str(attribute ? attr_path(item, to_str(*attribute)) : item);
    }
    return Value(std::move(out));
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::generator({});
    if (!v.is_dict()) fail(ErrorKind::kInvalidArgument, "Can only get item pairs from a mapping.");
    ValueList out;
    for (const auto& [k, x] : v.dict().entries()) out.emplace_back(ValueList{Value(k), x}, true);
    return Value::generator(std::move(out));
  }
  if (name == "lower") return Value(str_lower(to_str(v)));
  if (name == "upper") return Value(str_upper(to_str(v)));
  if (name == "capitalize") return Value(str_capitalize(to_str(v)));
  if (name == "title") return Value(jinja_title(to_str(v)));
  if (name == "safe") return v.is_markup() ? v : Value::markup(to_str(v));
  if (name == "e" || name == "escape")
    return v.is_markup() ? v : Value::markup(html_escape(to_str(v)));
  if (name == "list") return Value(iterate(v));
  if (name == "first") {
    if (v.is_generator()) {
      ValueList one = v.consume(1);
      return one.empty() ? Value::undefined("No first item, sequence was empty.") : one[0];
    }
    ValueList items = iterate(v);
    return items.empty() ? Value::undefined("No first item, sequence was empty.") : items[0];
  }
  if (name == "last") {
    if (v.is_generator()) fail(ErrorKind::kInvalidArgument, "'generator' object is not reversible");
    ValueList items = iterate(v);
    return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::vector<uint32_t> cps = utf8_to_cps(v.str());
      std::reverse(cps.begin(), cps.end());
      return Value(cps_to_utf8(cps.data(), cps.size()));
    }
    ValueList items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::generator(std::move(items));
  }
  if (name == "replace") {
    const Value* count = arg(a, 2, "count");
    if (a.args.size() < 2) fail(ErrorKind::kInvalidArgument, "replace needs old and new strings");
    return Value(str_replace(to_str(v), to_str(a.args[0]), to_str(a.args[1]),
                             count && !count->is_none() ? count->as_int() : -1));
  }
  if (name == "dictsort") {
    if (!v.is_dict()) fail(ErrorKind::kInvalidArgument, "dictsort needs a mapping");
    bool cs = flag_arg(a, 0, "case_sensitive", false);
    const Value* by = arg(a, 1, "by");
    bool by_value = by && to_str(*by) == "value";
    bool reverse = flag_arg(a, 2, "reverse", false);
    ValueList items;
    for (const auto& [k, x] : v.dict().entries()) items.emplace_back(ValueList{Value(k), x}, true);
    stable_sort_values(items, reverse,
                       [&](const Value& p) { return sort_key(p.list()[by_value ? 1 : 0], cs); });
    return Value(std::move(items));
  }
  if (name == "sort") {
    bool reverse = flag_arg(a, 0, "reverse", false);
    bool cs = flag_arg(a, 1, "case_sensitive", false);
    const Value* attribute = arg(a, 2, "attribute");
    ValueList items = iterate(v);
    stable_sort_values(items, reverse, [&](const Value& x) {
      return sort_key(attribute ? attr_path(x, to_str(*attribute)) : x, cs);
    });
    return Value(std::move(items));
  }
  if (name == "select" || name == "reject") return do_select(in, v, a, false, name == "select");
  if (name == "selectattr" || name == "rejectattr")
    return do_select(in, v, a, true, name == "selectattr");
  if (name == "map") return do_map(in, v, a);
  if (name == "unique") return do_unique(v, a);
  if (name == "min" || name == "max") return do_minmax(v, a, name == "max");
  if (name == "indent") return do_indent(v, a);
  if (name == "int") return do_int(v, a);
  if (name == "float") return do_float(v, a);
  if (name == "round") return do_round(v, a);
  if (name == "abs") {
    if (v.is_int() || v.is_bool()) {
      int64_t x = v.is_bool() ? int64_t{v.as_bool()} : v.as_int();
      if (x == INT64_MIN)
        fail(ErrorKind::kUnsupported, "integers beyond 64 bits are not supported");
      return Value(x < 0 ? -x : x);
    }
    if (v.is_float()) return Value(std::fabs(v.as_double()));
    fail(ErrorKind::kInvalidArgument, "bad operand type for abs(): '{}'", v.type_name());
  }
  if (name == "sum") {
    const Value* attribute = arg(a, 0, "attribute");
    const Value* start = arg(a, 1, "start");
    Value total = start ? *start : Value(static_cast<int64_t>(0));
    for (const Value& item : iterate(v))
      total = add_values(total, attribute ? attr_path(item, to_str(*attribute)) : item);
    return total;
  }
  if (name == "center") {
    const Value* w = arg(a, 0, "width");
    int64_t width = w ? w->as_int() : 80;
    if (width > 4096) fail(ErrorKind::kInvalidArgument, "center width too large");
    std::string s = to_str(v);
    int64_t len = static_cast<int64_t>(utf8_length(s));
    if (width <= len) return Value(s);
    int64_t total = width - len, left = total / 2 + (total & width & 1);
    return Value(std::string(static_cast<size_t>(left), ' ') + s +
                 std::string(static_cast<size_t>(total - left), ' '));
  }
  if (name == "wordcount")
    return Value(static_cast<int64_t>(str_split(to_str(v), nullptr, -1, false).size()));
  if (!is_known_filter(name))
    fail(ErrorKind::kInvalidArgument, "No filter named '{}' found.", name);
  fail(ErrorKind::kUnsupported, "filter '{}' is not supported", name);
}

bool builtin_test(Interp& in, std::string_view name, const Value& v, CallArgs& a) {
  auto other = [&]() -> const Value& {
    if (a.args.empty()) fail(ErrorKind::kInvalidArgument, "test '{}' needs an argument", name);
    return a.args[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "iterable") {
    return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict() || v.is_generator();
  }
  if (name == "sequence") return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return v.is_markup();
  if (name == "odd" || name == "even") {
    if (!v.is_int() && !v.is_bool())
      fail(ErrorKind::kInvalidArgument, "test '{}' needs an integer", name);
    int64_t x = v.is_bool() ? v.as_bool() : v.as_int();
    return (((x % 2) + 2) % 2 == 1) == (name == "odd");
  }
  if (name == "divisibleby") {
    const Value& n = other();
    if (!n.is_int() || n.as_int() == 0 || !v.is_int())
      fail(ErrorKind::kInvalidArgument, "divisibleby needs non-zero integers");
    return v.as_int() % n.as_int() == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return values_equal(v, other());
  if (name == "ne" || name == "!=") return !values_equal(v, other());
  if (name == "lt" || name == "lessthan" || name == "<") return values_less(v, other());
  if (name == "le" || name == "<=") return !values_less(other(), v);
  if (name == "gt" || name == "greaterthan" || name == ">") return values_less(other(), v);
  if (name == "ge" || name == ">=") return !values_less(v, other());
  if (name == "in") return contains(other(), v);
  if (name == "sameas") {
    const Value& o = other();
    if (v.is_none() || v.is_bool() || o.is_none() || o.is_bool())
      return values_equal(v, o) && v.kind() == o.kind();
    fail(ErrorKind::kUnsupported, "test 'sameas' on {} objects is not supported", v.type_name());
  }
  if (name == "lower" || name == "upper") {
    return v.is_string() && str_predicate(v.str(), name == "lower" ? "islower" : "isupper");
  }
  if (name == "filter") return v.is_string() && is_known_filter(v.str());
  if (name == "test") return v.is_string() && is_known_test(v.str());
  (void)in;
  fail(ErrorKind::kInvalidArgument, "No test named '{}' found.", name);
}

}  // namespace luzao::jinja
