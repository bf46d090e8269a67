// OpenAI request validation and error shapes, and the Prometheus rendering of the metrics.
#include <gtest/gtest.h>

#include <string>

#include "server/metrics.h"
#include "server/openai_api.h"
#include "server/web_assets.h"

namespace luzao::server {
namespace {

using nlohmann::json;

// The ApiError a body raises, or a failure when it raises none.
ApiError error_of(const json& body, bool chat) {
  try {
    parse_completion_request(body, chat);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body.dump();
  return ApiError(0, "");
}

const json kChat = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};

TEST(OpenAiApi, ChatDefaultsFollowOpenAi) {
  const CompletionParams p = parse_completion_request(kChat, true);
  ASSERT_EQ(p.messages.size(), 1u);
  EXPECT_EQ(p.messages[0].role, "user");
  EXPECT_EQ(p.messages[0].content, "hi");
  EXPECT_EQ(p.model, "m");
  EXPECT_FLOAT_EQ(p.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(p.sampling.top_p, 1.0f);
  EXPECT_EQ(p.sampling.top_k, 40);  // llama.cpp server defaults for the knobs OpenAI lacks
  EXPECT_FLOAT_EQ(p.sampling.min_p, 0.05f);
  EXPECT_FALSE(p.max_tokens.has_value());
  EXPECT_FALSE(p.stream);
  EXPECT_FALSE(p.seeded);
}

TEST(OpenAiApi, ChatFieldsAreRead) {
  json b = kChat;
  b["messages"].push_back(
      {{"role", "assistant"},
       {"content", {{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}}}});
  b["max_completion_tokens"] = 7;
  b["temperature"] = 0;
  b["top_p"] = 0.5;
  b["seed"] = -3;
  b["stop"] = {"x", "yz"};
  b["stream"] = true;
  b["stream_options"] = {{"include_usage", true}};
  const CompletionParams p = parse_completion_request(b, true);
  EXPECT_EQ(p.messages[1].content, "ab");
  EXPECT_EQ(p.max_tokens, 7);
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(p.sampling.top_p, 0.5f);
  EXPECT_TRUE(p.seeded);
  EXPECT_EQ(p.sampling.seed, static_cast<uint64_t>(-3));
  EXPECT_EQ(p.stop, (std::vector<std::string>{"x", "yz"}));
  EXPECT_TRUE(p.stream);
  EXPECT_TRUE(p.include_usage);
}

TEST(OpenAiApi, CompletionPromptForms) {
  EXPECT_EQ(parse_completion_request({{"prompt", "abc"}}, false).prompt, "abc");
  EXPECT_EQ(parse_completion_request({{"prompt", {"abc"}}}, false).prompt, "abc");
  const auto ids = parse_completion_request({{"prompt", {1, 2, 3}}, {"stop", "q"}}, false);
  EXPECT_EQ(ids.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(ids.stop, std::vector<std::string>{"q"});
  EXPECT_EQ(error_of({{"prompt", {1, "a"}}}, false).param(), "prompt");
  EXPECT_EQ(error_of({{"prompt", {-1}}}, false).param(), "prompt");
  EXPECT_EQ(error_of(json::object(), false).param(), "prompt");
}

TEST(OpenAiApi, BadFieldsAreNamed) {
  struct Case {
    const char* key;
    json value;
  };
  const Case cases[] = {
      {"temperature", "hot"}, {"temperature", 3}, {"top_p", 0},
      {"top_p", 1.5},         {"max_tokens", -1}, {"max_tokens", 1.5},
      {"max_tokens", "9"},    {"seed", 1.5},      {"stop", 3},
      {"stop", {1}},          {"stream", "yes"},  {"n", 2},
      {"stream_options", 1},  {"model", 5},       {"top_k", -1},
      {"logprobs", true},
  };
  for (const Case& c : cases) {
    json b = kChat;
    b[c.key] = c.value;
    const ApiError e = error_of(b, true);
    EXPECT_EQ(e.status(), 400) << c.key;
    EXPECT_EQ(e.param(), c.key) << c.key << " = " << c.value.dump() << ": " << e.what();
  }
  json b = kChat;
  b["stop"] = {"1", "2", "3", "4", "5"};
  EXPECT_EQ(error_of(b, true).param(), "stop");
  b = kChat;
  b["stream_options"] = {{"include_usage", true}};  // without stream
  EXPECT_EQ(error_of(b, true).param(), "stream_options");
}

TEST(OpenAiApi, MessagesAreChecked) {
  EXPECT_EQ(error_of({{"model", "m"}}, true).param(), "messages");
  EXPECT_EQ(error_of({{"messages", "hi"}}, true).param(), "messages");
  EXPECT_EQ(error_of({{"messages", json::array()}}, true).param(), "messages");
  EXPECT_EQ(error_of({{"messages", {1}}}, true).param(), "messages[0]");
  EXPECT_EQ(error_of({{"messages", {{{"content", "x"}}}}}, true).param(), "messages[0].role");
  EXPECT_EQ(error_of({{"messages", {{{"role", "wizard"}, {"content", "x"}}}}}, true).param(),
            "messages[0].role");
  EXPECT_EQ(error_of({{"messages", {{{"role", "user"}, {"content", 5}}}}}, true).param(),
            "messages[0].content");
  const json image = {{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}}};
  EXPECT_EQ(error_of(image, true).param(), "messages[0].content[0].type");
  EXPECT_EQ(error_of(json::array(), true).status(), 400);
}

TEST(OpenAiApi, MalformedJsonAndErrorShape) {
  EXPECT_THROW(parse_json_body("{\"model\": "), ApiError);
  EXPECT_EQ(parse_json_body("{\"a\": 1}")["a"], 1);
  const json e = error_body("boom", "invalid_request_error", "messages", "");
  EXPECT_EQ(e["error"]["message"], "boom");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "messages");
  EXPECT_TRUE(e["error"]["code"].is_null());
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  Histogram h({0.1, 1.0});
  h.observe(0.0625);
  h.observe(0.5);
  h.observe(0.75);
  h.observe(5.0);
  std::string out;
  h.render(out, "x_seconds", "help");
  EXPECT_NE(out.find("# TYPE x_seconds histogram\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"1\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_sum 6.3125\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_count 4\n"), std::string::npos) << out;
}

TEST(Metrics, RenderHasRequestsTokensAndGauges) {
  Metrics m;
  m.count_request("/v1/completions", 200);
  m.count_request("/v1/completions", 200);
  m.count_request("/v1/completions", 400);
  m.observe_time_to_first_token(0.2);
  SchedulerStats s;
  s.queued = 3;
  s.kv_pages_total = 10;
  s.kv_pages_used = 4;
  s.generated_tokens = 77;
  const std::string out = m.render(s);
  EXPECT_NE(out.find("luzao_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 2\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("luzao_requests_total{endpoint=\"/v1/completions\",status=\"400\"} 1\n"),
            std::string::npos);
  EXPECT_NE(out.find("luzao_generated_tokens_total 77\n"), std::string::npos);
  EXPECT_NE(out.find("luzao_requests_queued 3\n"), std::string::npos);
  EXPECT_NE(out.find("luzao_kv_cache_usage_ratio 0.4\n"), std::string::npos);
  EXPECT_NE(out.find("luzao_time_to_first_token_seconds_count 1\n"), std::string::npos);
}

TEST(WebAssets, PageAndScriptAreEmbeddedWithoutExternalUrls) {
  bool index = false, script = false;
  for (const WebAsset& a : web_assets()) {
    index |= a.path == "/index.html" &&
             a.body.find("<script src=\"/app.js\">") != std::string_view::npos;
    script |= a.path == "/app.js" && a.body.find("/v1/chat/completions") != std::string_view::npos;
    EXPECT_EQ(a.body.find("http://"), std::string_view::npos) << a.path;
    EXPECT_EQ(a.body.find("https://"), std::string_view::npos) << a.path;
  }
  EXPECT_TRUE(index);
  EXPECT_TRUE(script);
}

}  // namespace
}  // namespace luzao::server
