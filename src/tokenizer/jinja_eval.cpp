// The chat-template interpreter: executes statements with jinja2's scoping (a fresh scope per loop
// iteration and macro call; `if` shares its scope) and evaluates expressions with Python semantics.
#include "tokenizer/jinja_eval.h"

#include <cmath>

#include "core/error.h"

namespace luzao::jinja {

namespace {

constexpr int kMaxMacroDepth = 200;

const std::string& error_prefix_marker() {
  static const std::string kMarker = "chat template line ";
  return kMarker;
}

bool is_int_like(const Value& v) {
  return v.is_int() || v.is_bool();
}

// Python ints are unbounded; luzao's are 64-bit and refuse to wrap.
void check_overflow(bool overflowed) {
  if (overflowed) fail(ErrorKind::kUnsupported, "integers beyond 64 bits are not supported");
}

constexpr size_t kMaxRepeatBytes = size_t{64} << 20;
int64_t int_of(const Value& v) {
  return v.is_bool() ? (v.as_bool() ? 1 : 0) : v.as_int();
}

[[noreturn]] void type_error(std::string_view op, const Value& a, const Value& b) {
  fail(ErrorKind::kInvalidArgument, "unsupported operand type(s) for {}: '{}' and '{}'", op,
       a.type_name(), b.type_name());
}

Value arith(Op op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (op == Op::kAdd) return add_values(a, b);
  const char* sym = op == Op::kSub        ? "-"
                    : op == Op::kMul      ? "*"
                    : op == Op::kDiv      ? "/"
                    : op == Op::kFloorDiv ? "//"
                    : op == Op::kMod      ? "%"
                                          : "**";
  if (op == Op::kMul) {
    const Value* seq = a.is_string() || a.is_list()   ? &a
                       : b.is_string() || b.is_list() ? &b
                                                      : nullptr;
    const Value* count = seq == &a ? &b : &a;
    if (seq && is_int_like(*count)) {
      int64_t n = std::max<int64_t>(0, int_of(*count));
      size_t unit = seq->is_string() ? seq->str().size() : seq->list().size() * sizeof(Value);
      if (unit > 0 && static_cast<uint64_t>(n) > kMaxRepeatBytes / unit) {
        fail(ErrorKind::kInvalidArgument, "repetition result too large");
      }
      if (seq->is_string()) {
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += seq->str();
        return Value(std::move(out));
      }
      ValueList out;
      for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq->list().begin(), seq->list().end());
      return Value(std::move(out), seq->is_tuple());
    }
  }
  if (op == Op::kMod && a.is_string()) {
    fail(ErrorKind::kUnsupported,
         "printf-style string formatting ('%' on a string) is not supported");
  }
  if (!a.is_number() || !b.is_number()) type_error(sym, a, b);
  bool ints = is_int_like(a) && is_int_like(b);
  if (ints && op != Op::kDiv) {
    int64_t x = int_of(a), y = int_of(b), r = 0;
    switch (op) {
      case Op::kSub:
        check_overflow(__builtin_sub_overflow(x, y, &r));
        return Value(r);
      case Op::kMul:
        check_overflow(__builtin_mul_overflow(x, y, &r));
        return Value(r);
      case Op::kFloorDiv:
      case Op::kMod: {
        if (y == 0) fail(ErrorKind::kInvalidArgument, "integer division or modulo by zero");
        check_overflow(x == INT64_MIN && y == -1);
        int64_t q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          q -= 1;
          r += y;
        }
        return op == Op::kFloorDiv ? Value(q) : Value(r);
      }
      case Op::kPow: {
        if (y < 0) return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
        if (x == 0 || x == 1) return Value(y == 0 ? int64_t{1} : x);
        if (x == -1) return Value(y % 2 == 0 ? int64_t{1} : int64_t{-1});
        int64_t p = 1;
        for (int64_t i = 0; i < y; ++i) check_overflow(__builtin_mul_overflow(p, x, &p));
        return Value(p);
      }
      default:
        break;
    }
  }
  double x = a.as_double(), y = b.as_double();
  switch (op) {
    case Op::kSub:
      return Value(x - y);
    case Op::kMul:
      return Value(x * y);
    case Op::kDiv:
      if (y == 0) fail(ErrorKind::kInvalidArgument, "division by zero");
      return Value(x / y);
    case Op::kFloorDiv:
      if (y == 0) fail(ErrorKind::kInvalidArgument, "float floor division by zero");
      return Value(std::floor(x / y));
    case Op::kMod: {
      if (y == 0) fail(ErrorKind::kInvalidArgument, "float modulo");
      double r = std::fmod(x, y);
      if (r != 0 && ((r < 0) != (y < 0))) r += y;
      return Value(r);
    }
    case Op::kPow:
      return Value(std::pow(x, y));
    default:
      break;
  }
  LUZAO_CHECK(false);
  return Value();
}

}  // namespace

// ---- statements ----

Interp::~Interp() {
  // Break the scope -> macro -> scope references so that everything is freed.
  for (const auto& scope : captured_) scope->vars.clear();
}

std::string Interp::render(const Body& body) {
  std::string out;
  auto root = std::make_shared<Scope>();
  try {
    exec_body(body, root, out);
  } catch (const Error& e) {
    std::string_view msg = e.what();
    if (msg.substr(0, error_prefix_marker().size()) == error_prefix_marker()) throw;
    throw Error(e.kind(), fmt::format("chat template line {}: {}", line_, msg));
  }
  return out;
}

Interp::Flow Interp::exec_body(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const auto& s : body) {
    Flow f = exec(*s, scope, out);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Interp::Flow Interp::exec(const Stmt& s, const ScopePtr& scope, std::string& out) {
  line_ = s.line;
  switch (s.kind) {
    case StmtKind::kText:
      out += s.text;
      break;
    case StmtKind::kOutput: {
      Value v = eval(*s.expr, scope);
      if (v.is_string()) {
        out += v.str();
      } else {
        out += to_str(v);
      }
      break;
    }
    case StmtKind::kIf:
      for (const auto& [test, body] : s.branches) {
        if (eval(*test, scope).truthy()) return exec_body(body, scope, out);
      }
      return exec_body(s.else_body, scope, out);
    case StmtKind::kFor:
      exec_for(s, scope, out);
      break;
    case StmtKind::kSet:
      exec_set(s, scope, eval(*s.expr, scope));
      break;
    case StmtKind::kSetBlock: {
      std::string body_out;
      exec_body(s.body, scope, body_out);
      Value v(std::move(body_out));
      if (s.expr) v = apply_filter_chain(*s.expr, std::move(v), scope);
      exec_set(s, scope, std::move(v));
      break;
    }
    case StmtKind::kMacro:
      scope->set(s.text, make_macro(s, scope));
      break;
    case StmtKind::kCallBlock: {
      // caller() renders the body in a scope of its own, as a macro would.
      CallArgs args;
      const Expr& call = *s.expr;
      eval_args(call, scope, args);
      args.kwargs.emplace_back("caller", make_macro(s, scope));
      Value callee = eval(*call.a, scope);
      Value v = call_value(callee, args);
      out += to_str(v);
      break;
    }
    case StmtKind::kFilterBlock: {
      std::string body_out;
      auto inner = std::make_shared<Scope>();
      inner->parent = scope;
      exec_body(s.body, inner, body_out);
      out += to_str(apply_filter_chain(*s.expr, Value(std::move(body_out)), scope));
      break;
    }
    case StmtKind::kScope: {
      auto inner = std::make_shared<Scope>();
      inner->parent = scope;
      for (size_t i = 0; i < s.params.size(); ++i)
        inner->set(s.params[i], eval(*s.defaults[i], scope));
      return exec_body(s.body, inner, out);
    }
    case StmtKind::kBreak:
      return Flow::kBreak;
    case StmtKind::kContinue:
      return Flow::kContinue;
  }
  return Flow::kNormal;
}

Value Interp::apply_filter_chain(const Expr& chain_end, Value input, const ScopePtr& scope) {
  // The chain `| a | b` is stored outermost first (b wraps a); apply innermost first.
  std::vector<const Expr*> chain;
  for (const Expr* f = &chain_end; f; f = f->a.get()) chain.push_back(f);
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    CallArgs args;
    eval_args(**it, scope, args);
    input = filter((*it)->name, input, args);
  }
  return input;
}

void Interp::exec_set(const Stmt& s, const ScopePtr& scope, Value value) {
  line_ = s.line;
  assign(*s.target, scope, std::move(value));
}

void Interp::assign(const Expr& target, const ScopePtr& scope, Value value) {
  switch (target.kind) {
    case ExprKind::kName:
      scope->set(target.name, std::move(value));
      return;
    case ExprKind::kNsRef: {
      Value ns = eval_name(target.name, scope);
      if (!ns.is_namespace()) {
        fail(ErrorKind::kInvalidArgument, "cannot assign attribute on non-namespace object");
      }
      if (!target.attr.empty() && target.attr[0] == '_') {
        fail(ErrorKind::kInvalidArgument,
             "cannot store underscore-prefixed attribute '{}' on a namespace", target.attr);
      }
      ns.namespace_attrs().set(target.attr, std::move(value));
      return;
    }
    case ExprKind::kTuple: {
      ValueList items = iterate(value);
      if (items.size() != target.items.size()) {
        fail(ErrorKind::kInvalidArgument, "cannot unpack {} values into {} names", items.size(),
             target.items.size());
      }
      for (size_t i = 0; i < items.size(); ++i)
        assign(*target.items[i], scope, std::move(items[i]));
      return;
    }
    default:
      fail(ErrorKind::kInvalidArgument, "cannot assign to this expression");
  }
}

void Interp::exec_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
  Value iterable = eval(*s.expr, scope);
  auto loop = std::make_shared<LoopState>();
  if (s.cond) {
    auto probe = std::make_shared<Scope>();
    probe->parent = scope;
    for (Value& item : iterate(iterable)) {
      probe->vars.clear();
      assign(*s.target, probe, item);
      if (eval(*s.cond, probe).truthy()) loop->items.push_back(std::move(item));
    }
  } else {
    loop->items = iterate(iterable);
  }
  if (loop->items.empty()) {
    auto inner = std::make_shared<Scope>();
    inner->parent = scope;
    exec_body(s.else_body, inner, out);
    return;
  }
  ScopePtr iter_scope;
  for (size_t i = 0; i < loop->items.size(); ++i) {
    if (!iter_scope || iter_scope.use_count() > 1) {  // reuse unless a macro captured it
      iter_scope = std::make_shared<Scope>();
      iter_scope->parent = scope;
      iter_scope->loop = loop;
    } else {
      iter_scope->vars.clear();
    }
    loop->index = i;
    line_ = s.line;
    assign(*s.target, iter_scope, loop->items[i]);
    if (exec_body(s.body, iter_scope, out) == Flow::kBreak) break;
  }
}

Value Interp::make_macro(const Stmt& s, const ScopePtr& scope) {
  // The macro refers to its defining scope without owning it (the scope holds the macro: owning
  // would make a cycle); the interpreter keeps captured scopes alive until the render ends.
  const Stmt* macro = &s;
  captured_.push_back(scope);
  Scope* closure = scope.get();
  return Value::callable(
      s.kind == StmtKind::kMacro ? s.text : "caller",
      [this, macro, closure](CallArgs& args) { return call_macro(*macro, *closure, args); });
}

Value Interp::call_macro(const Stmt& s, Scope& closure, CallArgs& args) {
  if (depth_ >= kMaxMacroDepth) {
    fail(ErrorKind::kInvalidArgument, "macro '{}' recursed too deeply", s.text);
  }
  const std::string name = s.kind == StmtKind::kMacro ? s.text : "caller";
  auto scope = std::make_shared<Scope>();
  scope->parent = closure.shared_from_this();
  size_t n = s.params.size();
  if (args.args.size() > n && !s.uses_varargs) {
    fail(ErrorKind::kInvalidArgument, "macro '{}' takes not more than {} argument(s)", name, n);
  }
  std::vector<bool> given(n, false);
  for (size_t i = 0; i < n && i < args.args.size(); ++i) {
    scope->set(s.params[i], args.args[i]);
    given[i] = true;
  }
  ValueDict extra_kwargs;
  bool has_caller = false;
  for (auto& [key, value] : args.kwargs) {
    bool matched = false;
    for (size_t i = 0; i < n; ++i) {
      if (s.params[i] == key) {
        if (given[i])
          fail(ErrorKind::kInvalidArgument, "macro '{}' got multiple values for argument '{}'",
               name, key);
        scope->set(key, value);
        given[i] = true;
        matched = true;
      }
    }
    if (matched) continue;
    if (key == "caller" && s.kind == StmtKind::kMacro) {
      scope->set("caller", value);
      has_caller = true;
    } else if (s.uses_kwargs) {
      extra_kwargs.set(key, value);
    } else {
      fail(ErrorKind::kInvalidArgument, "macro '{}' takes no keyword argument '{}'", name, key);
    }
  }
  size_t first_default = n - s.defaults.size();
  ++depth_;
  for (size_t i = 0; i < n; ++i) {
    if (given[i]) continue;
    if (i >= first_default) {
      scope->set(s.params[i], eval(*s.defaults[i - first_default], scope));
    } else {
      scope->set(s.params[i],
                 Value::undefined(fmt::format("parameter '{}' was not provided", s.params[i])));
    }
  }
  if (s.uses_varargs) {
    ValueList rest;
    for (size_t i = n; i < args.args.size(); ++i) rest.push_back(args.args[i]);
    scope->set("varargs", Value(std::move(rest), true));
  }
  if (s.uses_kwargs) scope->set("kwargs", Value(std::move(extra_kwargs)));
  if (!has_caller && s.uses_caller && s.kind == StmtKind::kMacro && !scope->find("caller")) {
    scope->set("caller", Value::undefined("'caller' is undefined"));
  }
  std::string out;
  int saved_line = line_;
  exec_body(s.body, scope, out);
  line_ = saved_line;
  --depth_;
  return Value(std::move(out));
}

// ---- expressions ----

Value Interp::eval_name(const std::string& name, const ScopePtr& scope) {
  for (const Scope* s = scope.get(); s; s = s->parent.get()) {
    if (const Value* v = s->find(name)) return *v;
    if (s->loop && name == "loop") return loop_value(s->loop);
  }
  if (const Value* v = context_.find(name)) return *v;
  Value g = global_value(*this, name);
  if (!g.is_undefined()) return g;
  return Value::undefined(fmt::format("'{}' is undefined", name));
}

Value Interp::loop_attr(const LoopState& loop, std::string_view name) {
  size_t i = loop.index, n = loop.items.size();
  if (name == "index") return Value(static_cast<int64_t>(i + 1));
  if (name == "index0") return Value(static_cast<int64_t>(i));
  if (name == "revindex") return Value(static_cast<int64_t>(n - i));
  if (name == "revindex0") return Value(static_cast<int64_t>(n - i - 1));
  if (name == "first") return Value(i == 0);
  if (name == "last") return Value(i + 1 == n);
  if (name == "length") return Value(static_cast<int64_t>(n));
  if (name == "depth") return Value(static_cast<int64_t>(1));
  if (name == "depth0") return Value(static_cast<int64_t>(0));
  if (name == "previtem") {
    return i > 0 ? loop.items[i - 1] : Value::undefined("there is no previous item");
  }
  if (name == "nextitem") {
    return i + 1 < n ? loop.items[i + 1] : Value::undefined("there is no next item");
  }
  if (name == "cycle") {
    size_t index = i;
    return Value::callable("cycle", [index](CallArgs& args) {
      if (args.args.empty()) fail(ErrorKind::kInvalidArgument, "no items for cycling given");
      return args.args[index % args.args.size()];
    });
  }
  if (name == "changed") fail(ErrorKind::kUnsupported, "loop.changed is not supported");
  return Value::undefined(fmt::format("'LoopContext object' has no attribute '{}'", name));
}

Value Interp::loop_value(const std::shared_ptr<LoopState>& loop) {
  ValueDict d;
  for (const char* key : {"index", "index0", "revindex", "revindex0", "first", "last", "length",
                          "depth", "depth0", "previtem", "nextitem", "cycle"}) {
    Value v = loop_attr(*loop, key);
    if (!v.is_undefined()) d.set(key, std::move(v));
  }
  return Value(std::move(d));
}

void Interp::eval_args(const Expr& e, const ScopePtr& scope, CallArgs& args) {
  args.args.reserve(e.items.size());
  for (const auto& a : e.items) args.args.push_back(eval(*a, scope));
  for (const auto& [k, v] : e.kwargs) args.kwargs.emplace_back(k, eval(*v, scope));
}

Value Interp::call_value(const Value& callee, CallArgs& args) {
  if (callee.is_callable()) return callee.callable_ref().fn(args);
  if (callee.is_undefined()) fail_undefined(callee);
  fail(ErrorKind::kInvalidArgument, "'{}' object is not callable", callee.type_name());
}

Value Interp::eval_call(const Expr& e, const ScopePtr& scope) {
  Value callee = eval(*e.a, scope);
  CallArgs args;
  eval_args(e, scope, args);
  line_ = e.line;
  return call_value(callee, args);
}

Value Interp::filter(std::string_view name, const Value& input, CallArgs& args) {
  return builtin_filter(*this, name, input, args);
}

bool Interp::test(std::string_view name, const Value& input, CallArgs& args) {
  return builtin_test(*this, name, input, args);
}

Value Interp::eval_compare(const Expr& e, const ScopePtr& scope) {
  Value left = eval(*e.a, scope);
  for (size_t i = 0; i < e.ops.size(); ++i) {
    Value right = eval(*e.items[i], scope);
    bool ok = false;
    switch (e.ops[i]) {
      case Op::kEq:
        ok = values_equal(left, right);
        break;
      case Op::kNe:
        ok = !values_equal(left, right);
        break;
      case Op::kIn:
        ok = contains(right, left);
        break;
      case Op::kNotIn:
        ok = !contains(right, left);
        break;
      default: {
        if (left.is_undefined()) fail_undefined(left);
        if (right.is_undefined()) fail_undefined(right);
        Op op = e.ops[i];
        if (op == Op::kLt) ok = values_less(left, right);
        if (op == Op::kGt) ok = values_less(right, left);
        if (op == Op::kLe) ok = !values_less(right, left);
        if (op == Op::kGe) ok = !values_less(left, right);
      }
    }
    if (!ok) return Value(false);
    left = std::move(right);
  }
  return Value(true);
}

Value Interp::eval(const Expr& e, const ScopePtr& scope) {
  line_ = e.line;
  switch (e.kind) {
    case ExprKind::kConst:
      return e.value;
    case ExprKind::kName:
      return eval_name(e.name, scope);
    case ExprKind::kNsRef:
      return get_attr(eval_name(e.name, scope), e.attr);
    case ExprKind::kGetattr: {
      if (e.a->kind == ExprKind::kName && e.a->name == "loop") {
        for (const Scope* s = scope.get(); s; s = s->parent.get()) {
          if (s->find("loop")) break;
          if (s->loop) return loop_attr(*s->loop, e.name);
        }
      }
      Value obj = eval(*e.a, scope);
      line_ = e.line;
      return get_attr(obj, e.name);
    }
    case ExprKind::kGetitem: {
      Value obj = eval(*e.a, scope);
      if (e.b->kind == ExprKind::kSlice) {
        const Expr& sl = *e.b;
        Value start = sl.a ? eval(*sl.a, scope) : Value::none();
        Value stop = sl.b ? eval(*sl.b, scope) : Value::none();
        Value step = sl.c ? eval(*sl.c, scope) : Value::none();
        line_ = e.line;
        return get_slice(obj, start, stop, step);
      }
      Value key = eval(*e.b, scope);
      line_ = e.line;
      return get_item(obj, key);
    }
    case ExprKind::kSlice:
      fail(ErrorKind::kInvalidArgument, "a slice is only valid inside []");
    case ExprKind::kCall:
      return eval_call(e, scope);
    case ExprKind::kFilter: {
      Value input = eval(*e.a, scope);
      CallArgs args;
      eval_args(e, scope, args);
      line_ = e.line;
      return filter(e.name, input, args);
    }
    case ExprKind::kTest: {
      Value input = eval(*e.a, scope);
      CallArgs args;
      eval_args(e, scope, args);
      line_ = e.line;
      return Value(test(e.name, input, args));
    }
    case ExprKind::kUnary: {
      Value v = eval(*e.a, scope);
      if (e.op == Op::kNot) return Value(!v.truthy());
      if (v.is_undefined()) fail_undefined(v);
      if (!v.is_number()) {
        fail(ErrorKind::kInvalidArgument, "bad operand type for unary {}: '{}'",
             e.op == Op::kNeg ? "-" : "+", v.type_name());
      }
      if (e.op == Op::kPos) return is_int_like(v) ? Value(int_of(v)) : v;
      if (is_int_like(v)) {
        check_overflow(int_of(v) == INT64_MIN);
        return Value(-int_of(v));
      }
      return Value(-v.as_double());
    }
    case ExprKind::kBinary: {
      Value a = eval(*e.a, scope);
      Value b = eval(*e.b, scope);
      line_ = e.line;
      return arith(e.op, a, b);
    }
    case ExprKind::kAnd: {
      Value a = eval(*e.a, scope);
      return a.truthy() ? eval(*e.b, scope) : a;
    }
    case ExprKind::kOr: {
      Value a = eval(*e.a, scope);
      return a.truthy() ? a : eval(*e.b, scope);
    }
    case ExprKind::kCompare:
      return eval_compare(e, scope);
    case ExprKind::kConcat: {
      std::string out;
      for (const auto& item : e.items) out += to_str(eval(*item, scope));
      return Value(std::move(out));
    }
    case ExprKind::kCond:
      if (eval(*e.b, scope).truthy()) return eval(*e.a, scope);
      return e.c ? eval(*e.c, scope)
                 : Value::undefined(
                       "the inline if-expression evaluated to false and no else "
                       "section was defined");
    case ExprKind::kList:
    case ExprKind::kTuple: {
      ValueList items;
      items.reserve(e.items.size());
      for (const auto& item : e.items) items.push_back(eval(*item, scope));
      return Value(std::move(items), e.kind == ExprKind::kTuple);
    }
    case ExprKind::kDict: {
      ValueDict d;
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value key = eval(*e.items[i], scope);
        if (key.is_list() && !key.is_tuple())
          fail(ErrorKind::kInvalidArgument, "unhashable type: 'list'");
        if (key.is_dict() || key.is_undefined()) {
          fail(ErrorKind::kInvalidArgument, "unhashable type: '{}'", key.type_name());
        }
        d.set(std::move(key), eval(*e.items[i + 1], scope));
      }
      return Value(std::move(d));
    }
  }
  return Value();
}

}  // namespace luzao::jinja
