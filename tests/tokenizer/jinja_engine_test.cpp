// Chat-template engine behaviour that the jinja2 goldens cannot show: error kinds and line numbers
// for unsupported constructs, clean failure on malformed or hostile input, and the JSON reader.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/chat_template.h"

namespace luzao {
namespace {

namespace fs = std::filesystem;

// The error a template raises (parsing or rendering with an empty context), or "" if none.
std::pair<ErrorKind, std::string> error_of(std::string_view source) {
  try {
    ChatTemplate::parse(source).render({});
  } catch (const Error& e) {
    return {e.kind(), e.what()};
  }
  return {ErrorKind::kInternal, ""};
}

TEST(JinjaEngine, UnsupportedFilterNamesLineAndFilter) {
  auto [kind, msg] = error_of("a\n{% set x = 'y' %}\n{{ x | wordwrap(5) }}");
  EXPECT_EQ(kind, ErrorKind::kUnsupported);
  EXPECT_EQ(msg, "chat template line 3: filter 'wordwrap' is not supported");
}

TEST(JinjaEngine, UnsupportedTagsAreReportedAtParseTime) {
  auto [k1, m1] = error_of("x\n{% extends 'base.html' %}");
  EXPECT_EQ(k1, ErrorKind::kUnsupported);
  EXPECT_EQ(m1, "chat template line 2: tag 'extends' is not supported");
  auto [k2, m2] = error_of("{% include 'x' %}");
  EXPECT_EQ(k2, ErrorKind::kUnsupported);
  auto [k3, m3] = error_of("\n\n{% for x in y recursive %}{% endfor %}");
  EXPECT_EQ(k3, ErrorKind::kUnsupported);
  EXPECT_EQ(m3, "chat template line 3: recursive for loop is not supported");
  auto [k4, m4] = error_of("{{ f(*args) }}");
  EXPECT_EQ(k4, ErrorKind::kUnsupported);
}

TEST(JinjaEngine, SyntaxErrorsNameTheLine) {
  auto [k1, m1] = error_of("ok\n{% if x %}\nnever closed");
  EXPECT_EQ(k1, ErrorKind::kInvalidArgument);
  EXPECT_EQ(m1,
            "chat template line 2: block is never closed (unexpected end of template, expected "
            "'elif' or 'else' or 'endif')");
  auto [k2, m2] = error_of("{{ 'unterminated }}");
  EXPECT_EQ(k2, ErrorKind::kInvalidArgument);
  EXPECT_EQ(m2.rfind("chat template line 1: ", 0), 0u) << m2;
  auto [k3, m3] = error_of("\n{{ x | no_such_filter }}");
  EXPECT_EQ(m3, "chat template line 2: no filter named 'no_such_filter'");
  auto [k4, m4] = error_of("{% frobnicate %}");
  EXPECT_NE(m4.find("unknown tag 'frobnicate'"), std::string::npos) << m4;
  auto [k5, m5] = error_of("{% break %}");
  EXPECT_NE(m5.find("outside of a loop"), std::string::npos) << m5;
}

TEST(JinjaEngine, RuntimeErrorsNameTheLine) {
  auto [k1, m1] = error_of("line1\n\n{{ raise_exception('System role not supported') }}");
  EXPECT_EQ(k1, ErrorKind::kInvalidArgument);
  EXPECT_EQ(m1, "chat template line 3: raise_exception: System role not supported");
  auto [k2, m2] = error_of("{% macro m() %}\n{{ undefined_thing.attr }}{% endmacro %}\n{{ m() }}");
  EXPECT_EQ(m2, "chat template line 2: 'undefined_thing' is undefined");
  auto [k3, m3] = error_of("{{ [1].append(2) }}");
  EXPECT_NE(m3.find("unsafe"), std::string::npos) << m3;
}

// Python ints are unbounded; luzao refuses (kUnsupported) rather than wrapping.
TEST(JinjaEngine, IntegerOverflowIsRefused) {
  for (const char* src : {"{{ 2 ** 64 }}", "{{ 9223372036854775807 + 1 }}",
                          "{{ -(-9223372036854775807 - 1) }}", "{{ 4611686018427387904 * 2 }}"}) {
    EXPECT_EQ(error_of(src).first, ErrorKind::kUnsupported) << src;
  }
  EXPECT_EQ(ChatTemplate::parse("{{ 2 ** 62 }} {{ (-1) ** 1000000001 }}").render({}),
            "4611686018427387904 -1");
}

TEST(JinjaEngine, RunawayRecursionFailsCleanly) {
  auto [k1, m1] = error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}");
  EXPECT_EQ(k1, ErrorKind::kInvalidArgument);
  EXPECT_NE(m1.find("recursed too deeply"), std::string::npos) << m1;
  auto [k2, m2] = error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}");
  EXPECT_NE(m2.find("nests too deeply"), std::string::npos) << m2;
  auto [k3, m3] = error_of(std::string(3000, ' ') + [] {
    std::string s;
    for (int i = 0; i < 3000; ++i) s += "{% if true %}";
    return s;
  }());
  EXPECT_NE(m3.find("nests too deeply"), std::string::npos) << m3;
}

TEST(JinjaEngine, ParsedTemplateRendersRepeatedlyWithDifferentContexts) {
  ChatTemplate t = ChatTemplate::parse(
      "{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}{% endfor %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}");
  ChatMessage user{.role = "user", .content = "  hi  "};
  ChatRenderOptions opt;
  EXPECT_EQ(t.render_chat(std::span(&user, 1), opt), "<user>hi<assistant>");
  opt.add_generation_prompt = false;
  EXPECT_EQ(t.render_chat(std::span(&user, 1), opt), "<user>hi");
  ChatTemplate copy = t;  // copies share the parsed tree
  EXPECT_EQ(copy.render_chat({}, opt), "");
}

TEST(JinjaEngine, MessageValueDropsAbsentFieldsAndKeepsArgumentsAsGiven) {
  ChatMessage m{.role = "assistant"};
  m.tool_calls.push_back({.id = "c1", .name = "f", .arguments = jinja::parse_json(R"({"a": 1})")});
  m.tool_calls.push_back({.id = "", .name = "g", .arguments = jinja::Value(R"({"b": 2})")});
  std::string out =
      ChatTemplate::parse(
          "{{ m.content is defined }}|{% for c in m.tool_calls %}{{ c.id is defined }}"
          "{{ c.type }}:{{ c.function.name }}{{ c.function.arguments is mapping }}"
          "{{ c.function.arguments | tojson }};{% endfor %}")
          .render([&] {
            jinja::ValueDict ctx;
            ctx.set("m", chat_message_value(m));
            return ctx;
          }());
  EXPECT_EQ(out, "False|Truefunction:fTrue{\"a\": 1};Falsefunction:gFalse\"{\\\"b\\\": 2}\";");
}

TEST(JinjaJson, ParsesAndRejects) {
  jinja::Value v =
      jinja::parse_json(R"( {"z": [1, -2.5e3, true, null, "\u00e9\ud83d\ude00\n"], "a": {}} )");
  ASSERT_TRUE(v.is_dict());
  EXPECT_EQ(v.dict().entries()[0].first.str(), "z");  // key order kept
  const jinja::ValueList& z = v.dict().find("z")->list();
  EXPECT_EQ(z[0].as_int(), 1);
  EXPECT_DOUBLE_EQ(z[1].as_double(), -2500.0);
  EXPECT_TRUE(z[2].as_bool());
  EXPECT_TRUE(z[3].is_none());
  EXPECT_EQ(z[4].str(), "\xc3\xa9\xf0\x9f\x98\x80\n");
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "\"\\x\"", "01x", "[1] 2", "\"a\nb\""}) {
    EXPECT_THROW(jinja::parse_json(bad, "test"), Error) << bad;
  }
}

TEST(JinjaJson, DumpsLikePythonJson) {
  jinja::Value v = jinja::parse_json(R"({"b": [1, 2.0, 1e16, 0.1], "a": "\u00e9\"\u0001"})");
  EXPECT_EQ(jinja::to_json(v), "{\"b\": [1, 2.0, 1e+16, 0.1], \"a\": \"\xc3\xa9\\\"\\u0001\"}");
  jinja::JsonOptions opt;
  opt.ensure_ascii = true;
  opt.sort_keys = true;
  EXPECT_EQ(jinja::to_json(v, opt), "{\"a\": \"\\u00e9\\\"\\u0001\", \"b\": [1, 2.0, 1e+16, 0.1]}");
  EXPECT_THROW(jinja::to_json(jinja::Value()), Error);
}

// Truncated and spliced real templates must parse-or-fail and render-or-fail with luzao::Error
// only (the sanitizers catch memory errors): a cheap stand-in for fuzzing the parser.
TEST(JinjaEngine, MangledRealTemplatesFailCleanly) {
  fs::path dir = fs::path(LUZAO_SOURCE_DIR) / ".." / "shared" / "templates";
  if (!fs::exists(dir)) GTEST_SKIP() << "../shared/templates not found";
  jinja::ValueDict ctx;
  ctx.set("messages", jinja::parse_json(R"([{"role": "user", "content": "hi"}])"));
  ctx.set("add_generation_prompt", jinja::Value(true));
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".jinja") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string src = ss.str();
    ++files;
    for (size_t cut = 1; cut < src.size(); cut += src.size() / 13 + 1) {
      for (const std::string& variant :
           {src.substr(0, cut), src.substr(cut), src.substr(cut) + src.substr(0, cut)}) {
        try {
          ChatTemplate::parse(variant).render(ctx);
        } catch (const Error&) {
        }
      }
    }
  }
  EXPECT_GT(files, 0);
}

}  // namespace
}  // namespace luzao
