// Recursive-descent parser for the chat-template Jinja subset, following jinja2's grammar and
// operator precedence (filters and tests bind to unary operands; comparisons chain).
#include <optional>

#include "core/error.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"

namespace luzao::jinja {

namespace {

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Body parse_all() {
    Body body = subparse({});
    if (cur().kind != TokKind::kEof) error("unexpected tag");
    return body;
  }

 private:
  // ---- token helpers ----
  const Token& cur() const { return toks_[pos_]; }
  const Token& look() const { return toks_[std::min(pos_ + 1, toks_.size() - 1)]; }
  const Token& advance() { return toks_[pos_ < toks_.size() - 1 ? pos_++ : pos_]; }
  bool is_op(std::string_view op) const { return cur().kind == TokKind::kOp && cur().text == op; }
  bool is_name(std::string_view name) const {
    return cur().kind == TokKind::kName && cur().text == name;
  }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }

  [[noreturn]] void error(std::string_view msg, int line = 0) const {
    fail(ErrorKind::kInvalidArgument, "chat template line {}: {}", line ? line : cur().line, msg);
  }
  [[noreturn]] void unsupported(std::string_view what, int line = 0) const {
    fail(ErrorKind::kUnsupported, "chat template line {}: {} is not supported",
         line ? line : cur().line, what);
  }

  std::string describe(const Token& t) const {
    switch (t.kind) {
      case TokKind::kEof:
        return "end of template";
      case TokKind::kBlockEnd:
        return "end of statement block";
      case TokKind::kVarEnd:
        return "end of print statement";
      case TokKind::kData:
        return "template data";
      default:
        return t.text;
    }
  }

  void expect_op(std::string_view op) {
    if (!skip_op(op)) error(fmt::format("expected '{}', got '{}'", op, describe(cur())));
  }
  std::string expect_name() {
    if (cur().kind != TokKind::kName)
      error(fmt::format("expected a name, got '{}'", describe(cur())));
    return advance().text;
  }
  void expect_kind(TokKind kind, std::string_view what) {
    if (cur().kind != kind) error(fmt::format("expected {}, got '{}'", what, describe(cur())));
    advance();
  }

  ExprPtr node(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // ---- statements ----

  // Parses until a block tag whose name is in `ends`; leaves the stream at that name.
  Body subparse(std::initializer_list<std::string_view> ends) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.kind == TokKind::kEof) return body;
      if (t.kind == TokKind::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        advance();
      } else if (t.kind == TokKind::kVarBegin) {
        advance();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->line = t.line;
        s->expr = parse_tuple(true, {});
        expect_kind(TokKind::kVarEnd, "'}}'");
        body.push_back(std::move(s));
      } else if (t.kind == TokKind::kBlockBegin) {
        advance();
        if (cur().kind == TokKind::kName) {
          for (auto e : ends) {
            if (cur().text == e) return body;
          }
        }
        if (auto s = parse_statement()) body.push_back(std::move(s));
        expect_kind(TokKind::kBlockEnd, "'%}'");
      } else {
        error(fmt::format("unexpected '{}'", describe(t)));
      }
    }
  }

  Body parse_body(std::initializer_list<std::string_view> ends, bool drop_end) {
    skip_op(":");
    int line = cur().line;  // the opening tag, named if the block is never closed
    expect_kind(TokKind::kBlockEnd, "'%}'");
    Body body = subparse(ends);
    if (cur().kind == TokKind::kEof) {
      std::string list;
      for (auto e : ends) list += (list.empty() ? "'" : " or '") + std::string(e) + "'";
      error(fmt::format("block is never closed (unexpected end of template, expected {})", list),
            line);
    }
    if (drop_end) advance();
    return body;
  }

  StmtPtr make_stmt(StmtKind kind, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = line;
    return s;
  }

  // Bounds recursion so that hostile templates fail cleanly instead of exhausting the stack.
  struct DepthGuard {
    explicit DepthGuard(Parser& p) : parser(p) {
      if (++parser.depth_ > kMaxDepth) parser.error("template nests too deeply");
    }
    ~DepthGuard() { --parser.depth_; }
    Parser& parser;
  };
  static constexpr int kMaxDepth = 200;

  StmtPtr parse_statement() {
    DepthGuard guard(*this);
    const Token& t = cur();
    if (t.kind != TokKind::kName) error("tag name expected");
    const std::string name = t.text;
    int line = t.line;
    if (name == "if") return parse_if();
    if (name == "for") return parse_for();
    if (name == "set") return parse_set();
    if (name == "macro") return parse_macro();
    if (name == "call") return parse_call_block();
    if (name == "filter") return parse_filter_block();
    if (name == "with") return parse_with();
    if (name == "print") {
      advance();
      auto s = make_stmt(StmtKind::kOutput, line);
      s->expr = parse_tuple(true, {});
      return s;
    }
    if (name == "generation") {
      advance();
      auto s = make_stmt(StmtKind::kScope, line);
      soft_.push_back(false);
      s->body = parse_body({"endgeneration"}, true);
      soft_.pop_back();
      return s;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) error(fmt::format("'{}' outside of a loop", name));
      advance();
      return make_stmt(name == "break" ? StmtKind::kBreak : StmtKind::kContinue, line);
    }
    static constexpr std::string_view kUnsupportedTags[] = {
        "extends", "include", "import", "from", "block", "autoescape", "do", "trans"};
    for (auto u : kUnsupportedTags) {
      if (name == u) unsupported(fmt::format("tag '{}'", name), line);
    }
    error(fmt::format("encountered unknown tag '{}'", name), line);
  }

  StmtPtr parse_if() {
    auto s = make_stmt(StmtKind::kIf, cur().line);
    advance();
    soft_.push_back(true);
    while (true) {
      ExprPtr test = parse_tuple(false, {});
      Body body = parse_body({"elif", "else", "endif"}, false);
      s->branches.emplace_back(std::move(test), std::move(body));
      std::string end = advance().text;
      if (end == "elif") continue;
      if (end == "else") s->else_body = parse_body({"endif"}, true);
      break;
    }
    soft_.pop_back();
    return s;
  }

  StmtPtr parse_for() {
    auto s = make_stmt(StmtKind::kFor, cur().line);
    advance();
    s->target = parse_assign_target(true, {"in"}, false);
    if (!skip_name("in")) error("expected 'in' in for loop");
    s->expr = parse_tuple(false, {"recursive"});
    if (skip_name("if")) s->cond = parse_expression(true);
    if (is_name("recursive")) unsupported("recursive for loop");
    soft_.push_back(false);
    ++loop_depth_;
    s->body = parse_body({"endfor", "else"}, false);
    --loop_depth_;
    if (advance().text == "else") s->else_body = parse_body({"endfor"}, true);
    soft_.pop_back();
    return s;
  }

  StmtPtr parse_set() {
    int line = cur().line;
    advance();
    ExprPtr target = parse_assign_target(true, {}, true);
    if (skip_op("=")) {
      auto s = make_stmt(StmtKind::kSet, line);
      s->target = std::move(target);
      s->expr = parse_tuple(true, {});
      return s;
    }
    auto s = make_stmt(StmtKind::kSetBlock, line);
    s->target = std::move(target);
    if (is_op("|")) s->expr = parse_filter(nullptr, false);
    s->body = parse_body({"endset"}, true);
    return s;
  }

  void parse_signature(Stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      s.params.push_back(expect_name());
      if (skip_op("=")) {
        s.defaults.push_back(parse_expression(true));
      } else if (!s.defaults.empty()) {
        error("non-default argument follows default argument");
      }
    }
    expect_op(")");
  }

  StmtPtr parse_macro() {
    auto s = make_stmt(StmtKind::kMacro, cur().line);
    advance();
    s->text = expect_name();
    parse_signature(*s);
    macros_.push_back(s.get());
    soft_.push_back(false);
    int saved_loops = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_body({"endmacro"}, true);
    loop_depth_ = saved_loops;
    soft_.pop_back();
    macros_.pop_back();
    return s;
  }

  StmtPtr parse_call_block() {
    auto s = make_stmt(StmtKind::kCallBlock, cur().line);
    advance();
    if (is_op("(")) parse_signature(*s);
    s->expr = parse_expression(true);
    if (s->expr->kind != ExprKind::kCall) error("expected call", s->line);
    macros_.push_back(s.get());
    soft_.push_back(false);
    s->body = parse_body({"endcall"}, true);
    soft_.pop_back();
    macros_.pop_back();
    return s;
  }

  StmtPtr parse_filter_block() {
    auto s = make_stmt(StmtKind::kFilterBlock, cur().line);
    advance();
    s->expr = parse_filter(nullptr, true);
    soft_.push_back(false);
    s->body = parse_body({"endfilter"}, true);
    soft_.pop_back();
    return s;
  }

  StmtPtr parse_with() {
    auto s = make_stmt(StmtKind::kScope, cur().line);
    advance();
    while (cur().kind != TokKind::kBlockEnd) {
      if (!s->params.empty()) expect_op(",");
      s->params.push_back(expect_name());
      expect_op("=");
      s->defaults.push_back(parse_expression(true));
    }
    soft_.push_back(false);
    s->body = parse_body({"endwith"}, true);
    soft_.pop_back();
    return s;
  }

  ExprPtr parse_assign_target(bool with_tuple, std::initializer_list<std::string_view> extra_end,
                              bool with_namespace) {
    int line = cur().line;
    auto parse_one = [&]() -> ExprPtr {
      std::string name = expect_name();
      if (with_namespace && is_op(".")) {
        advance();
        auto e = node(ExprKind::kNsRef, line);
        e->name = name;
        e->attr = expect_name();
        return e;
      }
      auto e = node(ExprKind::kName, line);
      e->name = name;
      return e;
    };
    if (!with_tuple) return parse_one();
    auto tuple = node(ExprKind::kTuple, line);
    bool is_tuple = false;
    while (true) {
      if (!tuple->items.empty()) expect_op(",");
      if (tuple_end(extra_end)) break;
      tuple->items.push_back(parse_one());
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (tuple->items.empty()) error("expected an assignment target");
    if (!is_tuple) return std::move(tuple->items[0]);
    return tuple;
  }

  // ---- expressions ----

  bool tuple_end(std::initializer_list<std::string_view> extra_end) const {
    if (cur().kind == TokKind::kVarEnd || cur().kind == TokKind::kBlockEnd || is_op(")"))
      return true;
    for (auto e : extra_end) {
      if (is_name(e)) return true;
    }
    return false;
  }

  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<std::string_view> extra_end,
                      bool explicit_parens = false) {
    int line = cur().line;
    auto tuple = node(ExprKind::kTuple, line);
    bool is_tuple = false;
    while (true) {
      if (!tuple->items.empty()) expect_op(",");
      if (tuple_end(extra_end)) break;
      tuple->items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!tuple->items.empty()) return std::move(tuple->items[0]);
      if (!explicit_parens) error(fmt::format("expected an expression, got '{}'", describe(cur())));
    }
    return tuple;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    int line = cur().line;
    ExprPtr expr1 = parse_or();
    while (is_name("if")) {
      advance();
      soft_.push_back(true);
      auto e = node(ExprKind::kCond, line);
      e->b = parse_or();
      if (skip_name("else")) e->c = parse_condexpr();
      soft_.pop_back();
      e->a = std::move(expr1);
      expr1 = std::move(e);
      line = cur().line;
    }
    return expr1;
  }

  ExprPtr binary(ExprKind kind, Op op, ExprPtr a, ExprPtr b, int line) {
    auto e = node(kind, line);
    e->op = op;
    e->a = std::move(a);
    e->b = std::move(b);
    return e;
  }

  ExprPtr parse_or() {
    int line = cur().line;
    ExprPtr left = parse_and();
    while (skip_name("or"))
      left = binary(ExprKind::kOr, Op::kNone, std::move(left), parse_and(), line);
    return left;
  }

  ExprPtr parse_and() {
    int line = cur().line;
    ExprPtr left = parse_not();
    while (skip_name("and")) {
      left = binary(ExprKind::kAnd, Op::kNone, std::move(left), parse_not(), line);
    }
    return left;
  }

  ExprPtr parse_not() {
    DepthGuard guard(*this);
    if (is_name("not")) {
      int line = advance().line;
      auto e = node(ExprKind::kUnary, line);
      e->op = Op::kNot;
      e->a = parse_not();
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr expr = parse_math1();
    auto cmp = node(ExprKind::kCompare, line);
    while (true) {
      Op op = Op::kNone;
      if (cur().kind == TokKind::kOp) {
        const std::string& t = cur().text;
        if (t == "==")
          op = Op::kEq;
        else if (t == "!=")
          op = Op::kNe;
        else if (t == "<")
          op = Op::kLt;
        else if (t == "<=")
          op = Op::kLe;
        else if (t == ">")
          op = Op::kGt;
        else if (t == ">=")
          op = Op::kGe;
        if (op != Op::kNone) advance();
      } else if (is_name("in")) {
        advance();
        op = Op::kIn;
      } else if (is_name("not") && look().kind == TokKind::kName && look().text == "in") {
        advance();
        advance();
        op = Op::kNotIn;
      }
      if (op == Op::kNone) break;
      cmp->ops.push_back(op);
      cmp->items.push_back(parse_math1());
    }
    if (cmp->ops.empty()) return expr;
    cmp->a = std::move(expr);
    return cmp;
  }

  ExprPtr parse_math1() {
    int line = cur().line;
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      Op op = advance().text == "+" ? Op::kAdd : Op::kSub;
      left = binary(ExprKind::kBinary, op, std::move(left), parse_concat(), line);
    }
    return left;
  }

  ExprPtr parse_concat() {
    int line = cur().line;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto e = node(ExprKind::kConcat, line);
    e->items.push_back(std::move(first));
    while (skip_op("~")) e->items.push_back(parse_math2());
    return e;
  }

  ExprPtr parse_math2() {
    int line = cur().line;
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string t = advance().text;
      Op op = t == "*" ? Op::kMul : t == "/" ? Op::kDiv : t == "//" ? Op::kFloorDiv : Op::kMod;
      left = binary(ExprKind::kBinary, op, std::move(left), parse_pow(), line);
    }
    return left;
  }

  ExprPtr parse_pow() {
    int line = cur().line;
    ExprPtr left = parse_unary(true);
    while (skip_op("**"))
      left = binary(ExprKind::kBinary, Op::kPow, std::move(left), parse_unary(true), line);
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    int line = cur().line;
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      Op op = advance().text == "-" ? Op::kNeg : Op::kPos;
      e = node(ExprKind::kUnary, line);
      e->op = op;
      e->a = parse_unary(false);
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    int line = t.line;
    if (t.kind == TokKind::kName) {
      advance();
      auto e = node(ExprKind::kConst, line);
      if (t.text == "true" || t.text == "True") {
        e->value = Value(true);
      } else if (t.text == "false" || t.text == "False") {
        e->value = Value(false);
      } else if (t.text == "none" || t.text == "None") {
        e->value = Value::none();
      } else {
        e->kind = ExprKind::kName;
        e->name = t.text;
        if (!macros_.empty()) {
          if (t.text == "varargs") macros_.back()->uses_varargs = true;
          if (t.text == "kwargs") macros_.back()->uses_kwargs = true;
          if (t.text == "caller") macros_.back()->uses_caller = true;
        }
      }
      return e;
    }
    if (t.kind == TokKind::kString) {
      std::string s;
      while (cur().kind == TokKind::kString) s += advance().text;
      auto e = node(ExprKind::kConst, line);
      e->value = Value(std::move(s));
      return e;
    }
    if (t.kind == TokKind::kInt || t.kind == TokKind::kFloat) {
      auto e = node(ExprKind::kConst, line);
      e->value = t.kind == TokKind::kInt ? Value(t.int_value) : Value(t.float_value);
      advance();
      return e;
    }
    if (is_op("(")) {
      advance();
      ExprPtr e = parse_tuple(true, {}, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      advance();
      auto e = node(ExprKind::kList, line);
      while (!is_op("]")) {
        if (!e->items.empty()) expect_op(",");
        if (is_op("]")) break;
        e->items.push_back(parse_expression(true));
      }
      expect_op("]");
      return e;
    }
    if (is_op("{")) {
      advance();
      auto e = node(ExprKind::kDict, line);
      while (!is_op("}")) {
        if (!e->items.empty()) expect_op(",");
        if (is_op("}")) break;
        e->items.push_back(parse_expression(true));
        expect_op(":");
        e->items.push_back(parse_expression(true));
      }
      expect_op("}");
      return e;
    }
    error(fmt::format("unexpected '{}'", describe(t)));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter(std::move(e), false);
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    const Token& t = advance();
    int line = t.line;
    if (t.text == ".") {
      if (cur().kind == TokKind::kName) {
        auto e = node(ExprKind::kGetattr, line);
        e->name = advance().text;
        e->a = std::move(obj);
        return e;
      }
      if (cur().kind != TokKind::kInt) error("expected name or number");
      auto e = node(ExprKind::kGetitem, line);
      e->a = std::move(obj);
      e->b = node(ExprKind::kConst, line);
      e->b->value = Value(advance().int_value);
      return e;
    }
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    auto e = node(ExprKind::kGetitem, line);
    e->a = std::move(obj);
    if (args.size() == 1) {
      e->b = std::move(args[0]);
    } else {
      e->b = node(ExprKind::kTuple, line);
      e->b->items = std::move(args);
    }
    return e;
  }

  ExprPtr parse_subscribed() {
    int line = cur().line;
    ExprPtr start;
    if (!is_op(":")) {
      start = parse_expression(true);
      if (!is_op(":")) return start;
    }
    advance();  // ':'
    auto e = node(ExprKind::kSlice, line);
    e->a = std::move(start);
    if (!is_op(":") && !is_op("]") && !is_op(",")) e->b = parse_expression(true);
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) e->c = parse_expression(true);
    }
    return e;
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    bool require_comma = false;
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) unsupported("*args / **kwargs in a call");
      if (cur().kind == TokKind::kName && look().kind == TokKind::kOp && look().text == "=") {
        std::string key = advance().text;
        advance();
        e.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) error("positional argument follows keyword argument");
        e.items.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = node(ExprKind::kCall, cur().line);
    e->a = std::move(callee);
    parse_call_args(*e);
    return e;
  }

  std::string dotted_name() {
    std::string name = expect_name();
    while (skip_op(".")) name += "." + expect_name();
    return name;
  }

  bool soft() const { return !soft_.empty() && soft_.back(); }

  ExprPtr parse_filter(ExprPtr obj, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) advance();
      start_inline = false;
      int line = cur().line;
      auto e = node(ExprKind::kFilter, line);
      e->name = dotted_name();
      if (!soft() && !is_known_filter(e->name))
        error(fmt::format("no filter named '{}'", e->name), line);
      if (is_op("(")) parse_call_args(*e);
      e->a = std::move(obj);
      obj = std::move(e);
    }
    return obj;
  }

  ExprPtr parse_test(ExprPtr obj) {
    int line = advance().line;  // 'is'
    bool negated = skip_name("not");
    auto e = node(ExprKind::kTest, line);
    e->name = dotted_name();
    if (!soft() && !is_known_test(e->name)) error(fmt::format("no test named '{}'", e->name), line);
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((cur().kind == TokKind::kName || cur().kind == TokKind::kString ||
                cur().kind == TokKind::kInt || cur().kind == TokKind::kFloat || is_op("(") ||
                is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) error("You cannot chain multiple tests with is");
      e->items.push_back(parse_postfix(parse_primary()));
    }
    e->a = std::move(obj);
    if (!negated) return e;
    auto n = node(ExprKind::kUnary, line);
    n->op = Op::kNot;
    n->a = std::move(e);
    return n;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  std::vector<bool> soft_;  // inside an if / inline-if of the current frame (jinja2's soft frame)
  std::vector<Stmt*> macros_;  // macros / call blocks being parsed
  int loop_depth_ = 0;
  int depth_ = 0;
};

}  // namespace

Body parse_template(std::string_view source) {
  return Parser(lex_template(source)).parse_all();
}

}  // namespace luzao::jinja
