// The chat-template interpreter (internal): scopes, the render loop, and the built-in filters,
// tests, methods and globals it dispatches to.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace luzao::jinja {

struct LoopState {
  ValueList items;
  size_t index = 0;
};

// One level of variables: the template, a loop iteration, a macro call.
struct Scope : std::enable_shared_from_this<Scope> {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<LoopState> loop;  // set in loop iteration scopes

  const Value* find(std::string_view name) const {
    for (const auto& v : vars) {
      if (v.first == name) return &v.second;
    }
    return nullptr;
  }
  void set(std::string_view name, Value value) {
    for (auto& v : vars) {
      if (v.first == name) {
        v.second = std::move(value);
        return;
      }
    }
    vars.emplace_back(std::string(name), std::move(value));
  }
};
using ScopePtr = std::shared_ptr<Scope>;

// Renders one template with one context. Not thread-safe; make one per render.
class Interp {
 public:
  Interp(const ValueDict& context, const RenderDate& date) : context_(context), date_(date) {}
  ~Interp();
  Interp(const Interp&) = delete;
  Interp& operator=(const Interp&) = delete;

  std::string render(const Body& body);

  // Used by the built-ins.
  Value call_value(const Value& callee, CallArgs& args);
  Value filter(std::string_view name, const Value& input, CallArgs& args);
  bool test(std::string_view name, const Value& input, CallArgs& args);
  const RenderDate& date() const { return date_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec_body(const Body& body, const ScopePtr& scope, std::string& out);
  Flow exec(const Stmt& s, const ScopePtr& scope, std::string& out);
  void exec_for(const Stmt& s, const ScopePtr& scope, std::string& out);
  void exec_set(const Stmt& s, const ScopePtr& scope, Value value);
  // Applies a {% set x | f %} / {% filter f %} chain to the captured body text.
  Value apply_filter_chain(const Expr& chain_end, Value input, const ScopePtr& scope);
  void assign(const Expr& target, const ScopePtr& scope, Value value);
  Value make_macro(const Stmt& s, const ScopePtr& scope);
  Value call_macro(const Stmt& s, Scope& closure, CallArgs& args);

  Value eval(const Expr& e, const ScopePtr& scope);
  Value eval_name(const std::string& name, const ScopePtr& scope);
  Value eval_binary(const Expr& e, const ScopePtr& scope);
  Value eval_compare(const Expr& e, const ScopePtr& scope);
  Value eval_call(const Expr& e, const ScopePtr& scope);
  void eval_args(const Expr& e, const ScopePtr& scope, CallArgs& args);
  Value loop_attr(const LoopState& loop, std::string_view name);
  Value loop_value(const std::shared_ptr<LoopState>& loop);

  const ValueDict& context_;
  RenderDate date_;
  int line_ = 0;                    // line of the node being evaluated, for error messages
  int depth_ = 0;                   // macro call depth
  std::vector<ScopePtr> captured_;  // scopes that macros were defined in
};

// ---- built-ins (jinja_builtins.cpp, jinja_methods.cpp) ----

// Raises jinja2's UndefinedError for an undefined value being used.
[[noreturn]] void fail_undefined(const Value& v);

Value builtin_filter(Interp& in, std::string_view name, const Value& input, CallArgs& args);
bool builtin_test(Interp& in, std::string_view name, const Value& input, CallArgs& args);
// obj.name: a dict key, a namespace attribute or a bound method; undefined when missing.
Value get_attr(const Value& obj, std::string_view name);
// obj[key], with negative indices and jinja2's fallback to attributes.
Value get_item(const Value& obj, const Value& key);
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// The globals HF provides (raise_exception, strftime_now, namespace, dict, range), or undefined.
Value global_value(Interp& in, std::string_view name);
// Python's `item in container`.
bool contains(const Value& container, const Value& item);
// What iterating over a value gives (list items, dict keys, string characters).
ValueList iterate(const Value& v);
// Python + (strings with Markup escaping, lists, numbers).
Value add_values(const Value& a, const Value& b);
// str.format as jinja2's sandbox allows it ({}, {0}, {name}).
std::string py_format(const std::string& fmt, const CallArgs& args);

}  // namespace luzao::jinja
