// `luzao router` without sockets: request reading (stream mode, determinism, routing hints),
// backend addresses, and the backend set (health, load accounting, routing, measured speed,
// metrics).
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "server/openai_api.h"
#include "server/router_backends.h"
#include "server/router_request.h"

namespace luzao::server {
namespace {

using nlohmann::json;

int status_of_bad(const std::string& body, bool chat, std::string* param = nullptr) {
  try {
    parse_forward_request(body, chat);
  } catch (const ApiError& e) {
    if (param) *param = e.param();
    return e.status();
  }
  return 0;
}

TEST(RouterRequest, BadBodiesAre400) {
  EXPECT_EQ(status_of_bad("{\"messages\": [", true), 400);
  EXPECT_EQ(status_of_bad("[1, 2]", true), 400);
  std::string param;
  EXPECT_EQ(status_of_bad(R"({"prompt": "x", "stream": "yes"})", false, &param), 400);
  EXPECT_EQ(param, "stream");
  EXPECT_EQ(status_of_bad(R"({"prompt": "x", "stream": true, "stream_options": 3})", false, &param),
            400);
  EXPECT_EQ(param, "stream_options");
  // Everything else is the backend's to judge (passed through unchanged).
  EXPECT_EQ(status_of_bad(R"({"prompt": 5, "max_tokens": "many"})", false), 0);
}

TEST(RouterRequest, Determinism) {
  EXPECT_TRUE(parse_forward_request(R"({"prompt": "a", "temperature": 0})", false).deterministic);
  EXPECT_TRUE(parse_forward_request(R"({"prompt": "a", "temperature": 0.0})", false).deterministic);
  EXPECT_TRUE(parse_forward_request(R"({"prompt": "a", "temperature": 0.9, "seed": 7})", false)
                  .deterministic);
  EXPECT_TRUE(parse_forward_request(R"({"prompt": "a", "top_k": 1})", false).deterministic);
  EXPECT_FALSE(parse_forward_request(R"({"prompt": "a"})", false).deterministic);  // temperature 1
  EXPECT_FALSE(parse_forward_request(R"({"prompt": "a", "temperature": 0.2, "seed": null})", false)
                   .deterministic);
}

TEST(RouterRequest, BackendBodyAndRoutingHints) {
  const std::string plain = R"({"model":"m",  "prompt": "Once upon a time", "max_tokens": 40})";
  const ForwardRequest p = parse_forward_request(plain, false);
  EXPECT_FALSE(p.stream);
  EXPECT_EQ(p.backend_body, plain) << "non-streaming bodies go to the backend byte for byte";
  EXPECT_EQ(p.route.max_tokens, 40);
  EXPECT_EQ(p.prompt_text, "Once upon a time");
  EXPECT_EQ(p.route.prefix_key, pool::prefix_key("Once upon a time"));
  EXPECT_GT(p.route.prompt_tokens, 0);

  const ForwardRequest s = parse_forward_request(
      R"({"messages": [{"role": "user", "content": "hi"}], "stream": true})", true);
  EXPECT_TRUE(s.stream);
  EXPECT_FALSE(s.include_usage);
  const json sent = json::parse(s.backend_body);
  EXPECT_EQ(sent["stream_options"]["include_usage"], true) << "the router always counts tokens";
  EXPECT_EQ(sent["messages"][0]["content"], "hi");
  EXPECT_EQ(s.route.max_tokens, 256);  // chat default assumed for routing
  EXPECT_TRUE(
      parse_forward_request(
          R"({"prompt": "x", "stream": true, "stream_options": {"include_usage": true}})", false)
          .include_usage);

  // Same conversation, same prefix key; another conversation, another key. Array content counts.
  const auto key = [](const std::string& body) {
    return parse_forward_request(body, true).route.prefix_key;
  };
  const std::string a = R"({"messages": [{"role": "user", "content": "tell me about rivers"}]})";
  const std::string b =
      R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "tell me about rivers"}]}]})";
  const std::string c = R"({"messages": [{"role": "user", "content": "tell me about snow"}]})";
  EXPECT_EQ(key(a), key(b));
  EXPECT_NE(key(a), key(c));
  EXPECT_NE(key(a), 0u);
}

TEST(RouterRequest, BackendAddresses) {
  EXPECT_EQ(parse_backend_url("http://127.0.0.1:8081").url(), "http://127.0.0.1:8081");
  EXPECT_EQ(parse_backend_url("localhost:9000/").url(), "http://localhost:9000");
  const BackendAddress a = parse_backend_url("http://10.0.0.5:80");
  EXPECT_EQ(a.host, "10.0.0.5");
  EXPECT_EQ(a.port, 80);
  for (const char* bad : {"", "http://", "host", "host:", ":80", "host:0", "host:70000", "host:8x",
                          "https://host:443", "http://host:80/v1"}) {
    EXPECT_THROW(parse_backend_url(bad), Error) << bad;
  }
}

std::vector<std::string> three() {
  return {"http://a:1", "http://b:2", "http://c:3"};
}

void all_up(BackendSet& set) {
  for (size_t i = 0; i < set.size(); ++i) set.report_health(i, true, "");
}

TEST(BackendSet, StartsDownAndComesUpWithHealthChecks) {
  BackendSet set(three());
  EXPECT_FALSE(set.any_up());
  EXPECT_FALSE(set.acquire({}).valid());
  EXPECT_EQ(set.report_health(1, true, ""), 0);
  EXPECT_TRUE(set.any_up());
  BackendSet::Ticket t = set.acquire({});
  ASSERT_TRUE(t.valid());
  EXPECT_EQ(t.backend(), 1u);
  EXPECT_EQ(set.report_health(1, false, "refused"), 1);
  EXPECT_EQ(set.report_health(1, false, "refused"), 2);
  EXPECT_EQ(set.view(1).last_error, "refused");
  EXPECT_FALSE(set.any_up());
  EXPECT_EQ(set.report_health(1, true, ""), 0);
  EXPECT_TRUE(set.up(1));
}

TEST(BackendSet, LoadSpreadsRequestsAndTicketsReleaseIt) {
  BackendSet set(three());
  all_up(set);
  pool::RouteRequest r;
  r.prompt_tokens = 100;
  r.max_tokens = 50;
  std::vector<BackendSet::Ticket> tickets;
  std::vector<int> count(3, 0);
  for (int k = 0; k < 6; ++k) {
    tickets.push_back(set.acquire(r));
    ASSERT_TRUE(tickets.back().valid());
    count[tickets.back().backend()] += 1;
  }
  EXPECT_EQ(count, (std::vector<int>{2, 2, 2})) << "equal backends share equal requests";
  EXPECT_EQ(set.view(0).outstanding, 2);
  EXPECT_EQ(set.view(0).pending_prompt_tokens, 200);
  EXPECT_EQ(set.view(0).pending_output_tokens, 100);
  // Progress lowers the pending work: prompt done at the first token, output per token.
  BackendSet::Ticket& t = tickets[0];
  const size_t b = t.backend();
  t.first_token(0.1);
  t.generated(10);
  EXPECT_EQ(set.view(b).pending_prompt_tokens, 100);
  EXPECT_EQ(set.view(b).pending_output_tokens, 90);
  EXPECT_EQ(set.view(b).generated_tokens, 10u);
  tickets.clear();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(set.view(i).outstanding, 0);
    EXPECT_EQ(set.view(i).pending_prompt_tokens, 0);
    EXPECT_EQ(set.view(i).pending_output_tokens, 0);
    EXPECT_EQ(set.view(i).requests, 2u);
  }
}

TEST(BackendSet, DownAndExcludedBackendsAreNotPicked) {
  BackendSet set(three());
  all_up(set);
  set.report_down(0, "connection reset");
  const std::vector<size_t> exclude = {1};
  for (int k = 0; k < 4; ++k) {
    BackendSet::Ticket t = set.acquire({}, exclude);
    ASSERT_TRUE(t.valid());
    EXPECT_EQ(t.backend(), 2u);
  }
  const std::vector<size_t> both = {1, 2};
  EXPECT_FALSE(set.acquire({}, both).valid());
  EXPECT_EQ(set.first_up(), 1);
  EXPECT_EQ(set.first_up(exclude), 2);
}

TEST(BackendSet, PrefixAffinityKeepsAConversationOnOneBackend) {
  BackendSet set(three(), /*affinity_slack=*/1.0);
  all_up(set);
  pool::RouteRequest r;
  r.prefix_key = pool::prefix_key("a long shared system prompt");
  r.max_tokens = 10;
  BackendSet::Ticket first = set.acquire(r);
  ASSERT_TRUE(first.valid());
  const size_t home = first.backend();
  first = {};  // done
  // Another backend now carries a little load, the home one none: the home one wins anyway, and
  // it keeps winning with modest load of its own.
  BackendSet::Ticket other = set.acquire({}, std::vector<size_t>{home});
  BackendSet::Ticket again = set.acquire(r);
  EXPECT_EQ(again.backend(), home);
  EXPECT_GE(set.routing_stats().affinity_hits, 1u);
}

TEST(BackendSet, MeasuresDecodeSpeedFromGeneratedTokens) {
  BackendSet set(three());
  all_up(set);
  set.sample_throughput(0, 10.0);
  {
    BackendSet::Ticket t = set.acquire({});
    ASSERT_EQ(t.backend(), 0u);
    t.generated(40);
    set.sample_throughput(0, 12.0);  // 40 tokens in 2 s
    EXPECT_DOUBLE_EQ(set.view(0).decode_tps, 20.0);
    t.generated(10);
    set.sample_throughput(0, 12.2);  // too short an interval: merged into the next
    EXPECT_DOUBLE_EQ(set.view(0).decode_tps, 20.0);
    set.sample_throughput(0, 13.0);  // 10 tokens in 1 s, smoothed
    EXPECT_NEAR(set.view(0).decode_tps, 0.7 * 20 + 0.3 * 10, 1e-9);
    t.first_token(0.5);
    t.finish(StreamUsage{110, 50, 10});  // 100 prompt tokens prefilled in 0.5 s
    EXPECT_DOUBLE_EQ(set.view(0).prefill_tps, 200.0);
  }
  // An idle interval leaves the measurement alone.
  set.sample_throughput(0, 20.0);
  set.sample_throughput(0, 30.0);
  EXPECT_NEAR(set.view(0).decode_tps, 17.0, 1e-9);
  const std::vector<pool::ReplicaState> states = set.replica_states();
  EXPECT_NEAR(states[0].decode_tps, 17.0, 1e-9);
  EXPECT_EQ(states[0].id, "http://a:1");
}

TEST(BackendSet, FinishCorrectsTheTokenCountFromUsage) {
  BackendSet set(three());
  all_up(set);
  BackendSet::Ticket t = set.acquire({});
  t.generated(3);  // three events seen, but usage says five tokens
  t.finish(StreamUsage{4, 5, 0});
  EXPECT_EQ(set.view(t.backend()).generated_tokens, 5u);
}

TEST(BackendSet, AbortHooksMoveRequestsOffAHungBackend) {
  BackendSet set(three());
  int aborted = 0;
  const uint64_t a = set.add_abort(2, [&aborted] { aborted += 1; });
  const uint64_t b = set.add_abort(2, [&aborted] { aborted += 10; });
  set.add_abort(1, [&aborted] { aborted += 100; });
  set.remove_abort(2, b);
  (void)a;
  EXPECT_EQ(set.abort_all(2), 1u);
  EXPECT_EQ(aborted, 1);
  EXPECT_EQ(set.abort_all(2), 0u) << "hooks run once";
}

TEST(RouterMetrics, RendersCountersAndBackendState) {
  BackendSet set({"http://a:1", "http://b:2"});
  set.report_health(0, true, "");
  RouterMetrics m;
  m.count_request("/v1/completions", 200);
  m.count_request("/v1/completions", 200);
  m.count_retry();
  m.count_failover();
  m.observe_moved_request(0.3);
  {
    BackendSet::Ticket t = set.acquire({});
    t.failed();
  }
  const std::string text = m.render(set);
  EXPECT_NE(text.find("luzao_router_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("luzao_router_retries_total 1\n"), std::string::npos);
  EXPECT_NE(text.find("luzao_router_failovers_total 1\n"), std::string::npos);
  EXPECT_NE(text.find("luzao_router_backend_up{backend=\"http://a:1\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("luzao_router_backend_up{backend=\"http://b:2\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("luzao_router_backend_failures_total{backend=\"http://a:1\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("luzao_router_moved_request_duration_seconds_bucket{le=\"0.25\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("luzao_router_moved_request_duration_seconds_bucket{le=\"0.5\"} 1\n"),
            std::string::npos);

  const json pool = pool_json(set);
  ASSERT_EQ(pool["backends"].size(), 2u);
  EXPECT_EQ(pool["backends"][0]["healthy"], true);
  EXPECT_EQ(pool["backends"][1]["healthy"], false);
  EXPECT_EQ(pool["backends"][0]["requests"], 1);
}

}  // namespace
}  // namespace luzao::server
