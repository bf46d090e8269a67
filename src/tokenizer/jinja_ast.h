// Syntax tree of a parsed chat template (Jinja subset) and the parser entry point.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace luzao::jinja {

enum class ExprKind : uint8_t {
  kConst,    // value
  kName,     // name
  kNsRef,    // name.attr as an assignment target ({% set ns.x = ... %})
  kGetattr,  // a.name
  kGetitem,  // a[b]
  kSlice,    // a[b:c:d] (any of b, c, d may be null)
  kCall,     // a(items..., kwargs...)
  kFilter,   // a | name(items..., kwargs...); a is null inside {% filter %} / {% set %} blocks
  kTest,     // a is name(items...)
  kUnary,    // op a
  kBinary,   // a op b
  kAnd,
  kOr,
  kCompare,  // a ops[0] items[0] ops[1] items[1] ...
  kConcat,   // items joined with ~
  kCond,     // a if b else c (c may be null)
  kList,
  kTuple,
  kDict,  // items: key, value, key, value, ...
};

enum class Op : uint8_t {
  kNone,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kFloorDiv,
  kMod,
  kPow,
  kNeg,
  kPos,
  kNot,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kIn,
  kNotIn,
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind;
  int line = 0;
  Op op = Op::kNone;
  Value value;       // kConst
  std::string name;  // kName, kNsRef (namespace), kGetattr, kFilter, kTest
  std::string attr;  // kNsRef
  ExprPtr a, b, c;
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<Op> ops;  // kCompare
};

enum class StmtKind : uint8_t {
  kText,         // literal text
  kOutput,       // {{ expr }}
  kIf,           // branches + else_body
  kFor,          // target in expr [if cond] body [else else_body]
  kSet,          // target = expr
  kSetBlock,     // {% set target [| filter] %}body{% endset %}
  kMacro,        // name(params=defaults) body
  kCallBlock,    // {% call [(params)] expr %}body{% endcall %}
  kFilterBlock,  // {% filter f %}body{% endfilter %}
  kScope,        // body in its own scope ({% generation %}, {% with %})
  kBreak,
  kContinue,
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  StmtKind kind;
  int line = 0;
  std::string text;  // kText; kMacro name
  ExprPtr expr;      // output, set value, for iterable, call expression, filter chain
  ExprPtr target;    // set / for target
  ExprPtr cond;      // for ... if cond
  std::vector<std::pair<ExprPtr, Body>> branches;  // kIf
  Body body;
  Body else_body;
  std::vector<std::string> params;  // kMacro / kCallBlock; kScope (with): assigned names
  std::vector<ExprPtr> defaults;    // aligned to the last params; kScope (with): values
  bool uses_varargs = false;        // kMacro: body mentions varargs / kwargs / caller
  bool uses_kwargs = false;
  bool uses_caller = false;
};

// Parses template source. Fails with kInvalidArgument ("chat template line N: ...") on syntax
// errors, and kUnsupported on constructs outside the subset (extends, include, recursive loops...).
Body parse_template(std::string_view source);

// The filter and test names jinja2 knows (built-in + Hugging Face's), for compile-time checks.
bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);

}  // namespace luzao::jinja
