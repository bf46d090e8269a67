// `luzao router` stream pieces without sockets: the SSE parser and the splicer that resumes a
// stream on another backend without repeated or missing text.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/router_sse.h"

namespace luzao::server {
namespace {

using nlohmann::json;

std::string chat_chunk(const std::string& id, const json& delta, const json& finish = nullptr,
                       bool usage_null = true) {
  json c = {
      {"id", id},
      {"object", "chat.completion.chunk"},
      {"created", id == "A" ? 100 : 200},
      {"model", "m-" + id},
      {"choices", json::array({{{"index", 0}, {"delta", delta}, {"finish_reason", finish}}})}};
  if (usage_null) c["usage"] = nullptr;
  return c.dump();
}

std::string usage_chunk(const std::string& id, int prompt, int completion) {
  return json{{"id", id},
              {"object", "chat.completion.chunk"},
              {"created", 1},
              {"model", "m-" + id},
              {"choices", json::array()},
              {"usage",
               {{"prompt_tokens", prompt},
                {"completion_tokens", completion},
                {"total_tokens", prompt + completion},
                {"prompt_tokens_details", {{"cached_tokens", 3}}}}}}
      .dump();
}

// The events a client received, parsed back.
std::vector<std::string> events_of(const std::string& sse) {
  SseParser p;
  return p.feed(sse);
}

// Concatenated delta content of the chat chunks in `sse`.
std::string text_of(const std::string& sse) {
  std::string text;
  for (const std::string& e : events_of(sse)) {
    if (e == "[DONE]") continue;
    const json j = json::parse(e);
    if (!j.contains("choices") || j["choices"].empty()) continue;
    const json& c = j["choices"][0];
    if (c.contains("delta") && c["delta"].contains("content"))
      text += c["delta"]["content"].get<std::string>();
    if (c.contains("text")) text += c["text"].get<std::string>();
  }
  return text;
}

TEST(SseParser, EventsSurviveAnySplitOfTheBytes) {
  const std::string body =
      ": a comment\r\ndata: {\"a\":1}\r\n\r\ndata: first line\ndata: second\n\nevent: x\ndata: "
      "[DONE]\n\n";
  SseParser whole;
  const std::vector<std::string> expected = whole.feed(body);
  ASSERT_EQ(expected, (std::vector<std::string>{"{\"a\":1}", "first line\nsecond", "[DONE]"}));
  SseParser bytewise;
  std::vector<std::string> got;
  for (const char c : body) {
    for (std::string& e : bytewise.feed(std::string_view(&c, 1))) got.push_back(std::move(e));
  }
  EXPECT_EQ(got, expected);
}

TEST(SseParser, IncompleteEventWaitsAndResetDropsIt) {
  SseParser p;
  EXPECT_TRUE(p.feed("data: half").empty());
  EXPECT_TRUE(p.feed("\n").empty());
  p.reset();
  EXPECT_EQ(p.feed("data: new\n\n"), (std::vector<std::string>{"new"}));
}

TEST(StreamSplicer, FirstAttemptPassesThroughWithoutUsage) {
  StreamSplicer s(/*chat=*/true, /*client_wants_usage=*/false);
  s.begin_attempt();
  std::string out;
  EXPECT_EQ(s.on_event(chat_chunk("A", {{"role", "assistant"}}), out).status,
            SpliceStatus::kContinue);
  EXPECT_FALSE(s.delivered_any());  // the role opener is not text
  const SpliceResult r = s.on_event(chat_chunk("A", {{"content", "Hel"}}), out);
  EXPECT_TRUE(r.generated);
  s.on_event(chat_chunk("A", {{"content", "lo"}}), out);
  s.on_event(chat_chunk("A", json::object(), "stop"), out);
  const SpliceResult u = s.on_event(usage_chunk("A", 7, 2), out);
  ASSERT_TRUE(u.usage.has_value());
  EXPECT_EQ(u.usage->completion_tokens, 2);
  EXPECT_EQ(u.usage->cached_tokens, 3);
  EXPECT_EQ(s.on_event("[DONE]", out).status, SpliceStatus::kDone);
  EXPECT_TRUE(s.done());
  const std::vector<std::string> events = events_of(out);
  ASSERT_EQ(events.size(), 5u);  // role, Hel, lo, finish, [DONE]: no usage chunk
  EXPECT_EQ(events.back(), "[DONE]");
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json j = json::parse(events[i]);
    EXPECT_FALSE(j.contains("usage")) << events[i];
    EXPECT_EQ(j["id"], "A");
  }
  EXPECT_EQ(json::parse(events[0])["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(json::parse(events[3])["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(text_of(out), "Hello");
}

TEST(StreamSplicer, ResumedStreamSkipsDeliveredTextAndKeepsIdentity) {
  StreamSplicer s(true, true);
  std::string out;
  s.begin_attempt();
  s.on_event(chat_chunk("A", {{"role", "assistant"}}), out);
  s.on_event(chat_chunk("A", {{"content", "Hel"}}), out);
  s.on_event(chat_chunk("A", {{"content", "lo wo"}}), out);
  // Backend A dies; B regenerates from the start with other chunk boundaries.
  s.begin_attempt();
  std::string resumed;
  s.on_event(chat_chunk("B", {{"role", "assistant"}}), resumed);
  EXPECT_TRUE(resumed.empty()) << "the role opener must not be sent twice";
  EXPECT_TRUE(s.on_event(chat_chunk("B", {{"content", "He"}}), resumed).generated);
  s.on_event(chat_chunk("B", {{"content", "llo w"}}), resumed);
  EXPECT_TRUE(resumed.empty()) << "text already delivered must be skipped";
  s.on_event(chat_chunk("B", {{"content", "orld"}}), resumed);
  s.on_event(chat_chunk("B", {{"content", "!"}}), resumed);
  s.on_event(chat_chunk("B", json::object(), "length"), resumed);
  s.on_event(usage_chunk("B", 9, 4), resumed);
  EXPECT_EQ(s.on_event("[DONE]", resumed).status, SpliceStatus::kDone);
  EXPECT_EQ(text_of(resumed), "rld!");
  EXPECT_EQ(text_of(out) + text_of(resumed), "Hello world!");
  EXPECT_EQ(s.delivered(), "Hello world!");
  for (const std::string& e : events_of(resumed)) {
    if (e == "[DONE]") continue;
    const json j = json::parse(e);
    EXPECT_EQ(j["id"], "A") << e;
    EXPECT_EQ(j["created"], 100) << e;
    EXPECT_EQ(j["model"], "m-A") << e;
  }
  // The usage chunk of the attempt that completed is forwarded (with A's identity).
  const std::vector<std::string> events = events_of(resumed);
  ASSERT_GE(events.size(), 2u);
  const json usage = json::parse(events[events.size() - 2]);
  EXPECT_EQ(usage["usage"]["completion_tokens"], 4);
  EXPECT_EQ(usage["id"], "A");
}

TEST(StreamSplicer, FinishAndUsageAreSentOnce) {
  StreamSplicer s(true, true);
  std::string out;
  s.begin_attempt();
  s.on_event(chat_chunk("A", {{"content", "ab"}}), out);
  s.on_event(chat_chunk("A", json::object(), "stop"), out);
  s.on_event(usage_chunk("A", 5, 2), out);
  // A breaks before [DONE]: nothing is missing but [DONE] itself.
  std::string tail;
  EXPECT_TRUE(s.complete_without_backend(tail));
  EXPECT_EQ(events_of(tail), (std::vector<std::string>{"[DONE]"}));
  EXPECT_TRUE(s.done());

  StreamSplicer t(true, true);
  std::string first;
  t.begin_attempt();
  t.on_event(chat_chunk("A", {{"content", "ab"}}), first);
  t.on_event(chat_chunk("A", json::object(), "stop"), first);
  std::string none;
  EXPECT_FALSE(t.complete_without_backend(none))
      << "the usage chunk the client asked for is missing";
  t.begin_attempt();
  std::string second;
  t.on_event(chat_chunk("B", {{"content", "ab"}}), second);
  t.on_event(chat_chunk("B", json::object(), "stop"), second);
  EXPECT_TRUE(second.empty()) << "a second finish chunk must be dropped";
  t.on_event(usage_chunk("B", 5, 2), second);
  t.on_event("[DONE]", second);
  ASSERT_EQ(events_of(second).size(), 2u);  // usage, [DONE]
}

TEST(StreamSplicer, DivergentRegenerationIsDetected) {
  StreamSplicer s(true, false);
  std::string out;
  s.begin_attempt();
  s.on_event(chat_chunk("A", {{"content", "Hello"}}), out);
  s.begin_attempt();
  std::string resumed;
  EXPECT_EQ(s.on_event(chat_chunk("B", {{"content", "Help"}}), resumed).status,
            SpliceStatus::kDiverged);
  EXPECT_TRUE(resumed.empty());

  // A regeneration that finishes before reaching the delivered text diverged too.
  StreamSplicer t(true, false);
  t.begin_attempt();
  t.on_event(chat_chunk("A", {{"content", "Hello"}}), out);
  t.begin_attempt();
  EXPECT_EQ(t.on_event(chat_chunk("B", {{"content", "Hel"}}), resumed).status,
            SpliceStatus::kContinue);
  EXPECT_EQ(t.on_event(chat_chunk("B", json::object(), "stop"), resumed).status,
            SpliceStatus::kDiverged);
}

TEST(StreamSplicer, BackendErrorEventsAndFailure) {
  StreamSplicer s(false, false);
  std::string out;
  s.begin_attempt();
  const std::string error =
      R"({"error":{"message":"the request was cancelled","type":"server_error"}})";
  EXPECT_EQ(s.on_event(error, out).status, SpliceStatus::kBackendError);
  EXPECT_EQ(s.error_message(), "the request was cancelled");
  EXPECT_EQ(s.on_event("not json", out).status, SpliceStatus::kBackendError);
  EXPECT_TRUE(out.empty());
  s.fail("no backend left", "no_backend_available", out);
  const std::vector<std::string> events = events_of(out);
  ASSERT_EQ(events.size(), 2u);
  const json j = json::parse(events[0]);
  EXPECT_EQ(j["error"]["message"], "no backend left");
  EXPECT_EQ(j["error"]["type"], "server_error");
  EXPECT_EQ(j["error"]["code"], "no_backend_available");
  EXPECT_EQ(events[1], "[DONE]");
  EXPECT_TRUE(s.done());
}

TEST(StreamSplicer, CompletionsTextChunks) {
  const auto chunk = [](const std::string& id, const std::string& text, const json& finish) {
    return json{
        {"id", id},
        {"object", "text_completion"},
        {"created", 1},
        {"model", "m"},
        {"choices", json::array({{{"index", 0}, {"text", text}, {"finish_reason", finish}}})}}
        .dump();
  };
  StreamSplicer s(false, false);
  std::string out;
  s.begin_attempt();
  s.on_event(chunk("A", " one", nullptr), out);
  s.on_event(chunk("A", " two", nullptr), out);
  s.begin_attempt();
  std::string resumed;
  s.on_event(chunk("B", " one two", nullptr), resumed);
  EXPECT_TRUE(resumed.empty());
  s.on_event(chunk("B", " three", nullptr), resumed);
  s.on_event(chunk("B", "", "length"), resumed);
  s.on_event("[DONE]", resumed);
  EXPECT_EQ(text_of(out) + text_of(resumed), " one two three");
  const std::vector<std::string> events = events_of(resumed);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(json::parse(events[0])["id"], "A");
  EXPECT_EQ(json::parse(events[1])["choices"][0]["finish_reason"], "length");
}

TEST(StreamSplicer, MultiByteTextSplitDifferentlyOnReplay) {
  // "é" is two bytes and "世" three; the replay's pieces cut elsewhere, never inside a character.
  StreamSplicer s(true, false);
  std::string out;
  s.begin_attempt();
  s.on_event(chat_chunk("A", {{"content", "caf\xc3\xa9 "}}), out);
  s.begin_attempt();
  std::string resumed;
  s.on_event(chat_chunk("B", {{"content", "ca"}}), resumed);
  s.on_event(chat_chunk("B", {{"content", "f\xc3\xa9 \xe4\xb8\x96"}}), resumed);
  EXPECT_EQ(text_of(resumed), "\xe4\xb8\x96");
}

}  // namespace
}  // namespace luzao::server
