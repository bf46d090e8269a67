// Renders every chat template in ../shared/templates for the recorded conversations and compares
// byte for byte with Python jinja2's output (tests/golden/templates,
// scripts/record_template_goldens.py).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/chat_template.h"

namespace luzao {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

const fs::path kGoldenDir = fs::path(LUZAO_SOURCE_DIR) / "tests" / "golden" / "templates";
const fs::path kTemplateDir = fs::path(LUZAO_SOURCE_DIR) / ".." / "shared" / "templates";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// JSON (read by nlohmann, independently of luzao's reader) to a template value.
jinja::Value to_value(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null:
      return jinja::Value::none();
    case Json::value_t::boolean:
      return jinja::Value(j.get<bool>());
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return jinja::Value(j.get<int64_t>());
    case Json::value_t::number_float:
      return jinja::Value(j.get<double>());
    case Json::value_t::string:
      return jinja::Value(j.get<std::string>());
    case Json::value_t::array: {
      jinja::ValueList items;
      for (const auto& x : j) items.push_back(to_value(x));
      return jinja::Value(std::move(items));
    }
    case Json::value_t::object: {
      jinja::ValueDict d;
      for (const auto& [k, v] : j.items()) d.set(k, to_value(v));
      return jinja::Value(std::move(d));
    }
    default:
      return jinja::Value();
  }
}

struct Conversations {
  jinja::RenderDate date;
  std::map<std::string, jinja::ValueDict> contexts;
};

const Conversations& conversations() {
  static const Conversations convs = [] {
    Conversations c;
    Json meta = Json::parse(read_file(kGoldenDir / "conversations.json"));
    std::string now = meta["now"].get<std::string>();  // 2026-01-15T09:30:05
    std::sscanf(now.c_str(), "%d-%d-%dT%d:%d:%d", &c.date.year, &c.date.month, &c.date.day,
                &c.date.hour, &c.date.minute, &c.date.second);
    for (const auto& conv : meta["conversations"]) {
      c.contexts[conv["name"].get<std::string>()] = to_value(conv["context"]).dict();
    }
    return c;
  }();
  return convs;
}

std::vector<std::string> golden_templates() {
  std::vector<std::string> names;
  if (!fs::exists(kGoldenDir)) return names;
  for (const auto& entry : fs::directory_iterator(kGoldenDir)) {
    std::string stem = entry.path().stem().string();
    if (entry.path().extension() == ".json" && stem != "conversations" && stem != "snippets") {
      names.push_back(stem);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

class ChatTemplateGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateGolden, MatchesJinja2) {
  Json golden = Json::parse(read_file(kGoldenDir / (GetParam() + ".json")));
  fs::path source_path = kTemplateDir / golden["template"].get<std::string>();
  if (!fs::exists(source_path)) GTEST_SKIP() << "template not found: " << source_path;
  const Conversations& convs = conversations();
  std::string source = read_file(source_path);
  std::optional<ChatTemplate> tmpl;
  std::string parse_error;
  try {
    tmpl = ChatTemplate::parse(source);
  } catch (const Error& e) {
    parse_error = e.what();
  }
  ASSERT_FALSE(golden["results"].empty());
  for (const auto& result : golden["results"]) {
    std::string conv = result["conversation"].get<std::string>();
    SCOPED_TRACE(GetParam() + " / " + conv);
    std::optional<std::string> output;
    std::string error;
    if (tmpl) {
      try {
        output = tmpl->render(convs.contexts.at(conv), convs.date);
      } catch (const Error& e) {
        error = e.what();
      }
    } else {
      error = parse_error;
    }
    if (result.contains("output")) {
      ASSERT_TRUE(output.has_value()) << "luzao failed where jinja2 rendered: " << error;
      EXPECT_EQ(*output, result["output"].get<std::string>());
    } else {
      EXPECT_FALSE(output.has_value())
          << "jinja2 raised '" << result["error"].get<std::string>() << "' but luzao rendered:\n"
          << output.value_or("");
      if (result["error_type"] == "TemplateError") {
        // raise_exception(msg): the template's own message must come through verbatim.
        EXPECT_NE(error.find(result["error"].get<std::string>()), std::string::npos) << error;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Templates, ChatTemplateGolden, ::testing::ValuesIn(golden_templates()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

// Small templates, one jinja2 behaviour each (scoping, whitespace, printing, filters, errors).
TEST(ChatTemplateSnippets, MatchJinja2) {
  Json snippets = Json::parse(read_file(kGoldenDir / "snippets.json"));
  ASSERT_GT(snippets.size(), 50u);
  jinja::RenderDate date = conversations().date;
  for (const auto& s : snippets) {
    std::string source = s["template"].get<std::string>();
    SCOPED_TRACE(source);
    std::optional<std::string> output;
    std::string error;
    try {
      output = ChatTemplate::parse(source).render(to_value(s["context"]).dict(), date);
    } catch (const Error& e) {
      error = e.what();
    }
    if (s.contains("output")) {
      ASSERT_TRUE(output.has_value()) << "luzao failed where jinja2 rendered: " << error;
      EXPECT_EQ(*output, s["output"].get<std::string>());
    } else {
      EXPECT_FALSE(output.has_value()) << "jinja2 raised '" << s["error"].get<std::string>()
                                       << "' but luzao rendered: " << output.value_or("");
      EXPECT_NE(error.find("chat template line "), std::string::npos) << error;
      if (s["error_type"] == "TemplateError") {
        EXPECT_NE(error.find(s["error"].get<std::string>()), std::string::npos) << error;
      }
    }
  }
}

// The golden files are json.dumps(..., indent=1, ensure_ascii=False) output: luzao's reader and
// writer must reproduce them byte for byte.
TEST(ChatTemplateJson, RoundTripsGoldenFilesLikePython) {
  for (const auto& entry : fs::directory_iterator(kGoldenDir)) {
    if (entry.path().extension() != ".json") continue;
    std::string text = read_file(entry.path());
    SCOPED_TRACE(entry.path().filename().string());
    jinja::Value v = jinja::parse_json(text, entry.path().filename().string());
    EXPECT_TRUE(jinja::values_equal(v, to_value(Json::parse(text))));
    jinja::JsonOptions opt;
    opt.indent = 1;
    EXPECT_EQ(jinja::to_json(v, opt) + "\n", text);
  }
}

// render_chat builds Hugging Face's context from ChatMessage structs: rendering the recorded
// tool-call conversation that way must give jinja2's output.
TEST(ChatTemplateRenderChat, MatchesGoldenForToolConversation) {
  fs::path source_path = kTemplateDir / "Qwen-Qwen2.5-7B-Instruct.jinja";
  if (!fs::exists(source_path)) GTEST_SKIP() << "template not found: " << source_path;
  Json golden = Json::parse(read_file(kGoldenDir / "Qwen-Qwen2.5-7B-Instruct.json"));
  std::string expected;
  for (const auto& r : golden["results"]) {
    if (r["conversation"] == "tool_call_dict") expected = r["output"].get<std::string>();
  }
  ASSERT_FALSE(expected.empty());
  const jinja::ValueDict& ctx = conversations().contexts.at("tool_call_dict");
  std::vector<ChatMessage> messages;
  for (const jinja::Value& m : ctx.find("messages")->list()) {
    ChatMessage msg;
    msg.role = m.dict().find("role")->str();
    if (const jinja::Value* c = m.dict().find("content")) msg.content = c->str();
    if (const jinja::Value* c = m.dict().find("tool_call_id")) msg.tool_call_id = c->str();
    if (const jinja::Value* c = m.dict().find("name")) msg.name = c->str();
    if (const jinja::Value* calls = m.dict().find("tool_calls")) {
      for (const jinja::Value& c : calls->list()) {
        const jinja::ValueDict& fn = c.dict().find("function")->dict();
        msg.tool_calls.push_back(
            {c.dict().find("id")->str(), fn.find("name")->str(), *fn.find("arguments")});
      }
    }
    messages.push_back(std::move(msg));
  }
  ChatRenderOptions opt;
  opt.add_generation_prompt = true;
  opt.bos_token = ctx.find("bos_token")->str();
  opt.eos_token = ctx.find("eos_token")->str();
  opt.tools = *ctx.find("tools");
  EXPECT_EQ(render_chat(read_file(source_path), messages, opt), expected);
}

TEST(ChatTemplateGoldenSet, CoversEveryTemplate) {
  if (!fs::exists(kTemplateDir)) GTEST_SKIP() << "../shared/templates not found";
  size_t templates = 0;
  for (const auto& entry : fs::directory_iterator(kTemplateDir)) {
    if (entry.path().extension() != ".jinja") continue;
    ++templates;
    EXPECT_TRUE(fs::exists(kGoldenDir / (entry.path().stem().string() + ".json")))
        << "no golden for " << entry.path().filename()
        << "; rerun scripts/record_template_goldens.py";
  }
  EXPECT_GT(templates, 0u);
}

}  // namespace
}  // namespace luzao
