// `luzao router` seeding its speed estimates from what each backend reports in GET /v1/pool: the
// parsing of `luzao serve`'s and `luzao router`'s answers, and the seeded backend set.
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "server/router_backends.h"

namespace luzao::server {
namespace {

TEST(RouterSeed, ParsesServePoolSummingServingDevices) {
  // The shape of `luzao serve`'s /v1/pool (server.cpp pool_status), trimmed to what is read.
  const std::optional<ReportedSpeed> s = parse_reported_speed(R"({
    "object": "pool", "model": "m",
    "devices": [
      {"id": "cpu0", "state": "serving", "measured": {"prefill_tps": 1200.5, "decode_tps": 40.25}},
      {"id": "gpu0", "state": "serving", "measured": {"prefill_tps": 800, "decode_tps": 9.75}},
      {"id": "old0", "state": "drained", "measured": {"prefill_tps": 5000, "decode_tps": 500}},
      {"id": "new0", "state": "serving", "measured": {"prefill_tps": 0, "decode_tps": 0}}
    ]})");
  ASSERT_TRUE(s.has_value());
  EXPECT_DOUBLE_EQ(s->prefill_tps, 2000.5);  // 1200.5 + 800; the drained device does not count
  EXPECT_DOUBLE_EQ(s->decode_tps, 50.0);     // 40.25 + 9.75
}

TEST(RouterSeed, ParsesRouterPoolSummingHealthyBackends) {
  const std::optional<ReportedSpeed> s = parse_reported_speed(R"({
    "object": "pool", "backends": [
      {"url": "http://a:1", "healthy": true, "prefill_tokens_per_second": 300,
       "decode_tokens_per_second": 30},
      {"url": "http://b:1", "healthy": false, "prefill_tokens_per_second": 999,
       "decode_tokens_per_second": 99},
      {"url": "http://c:1", "healthy": true, "prefill_tokens_per_second": 0,
       "decode_tokens_per_second": 12.5}]})");
  ASSERT_TRUE(s.has_value());
  EXPECT_DOUBLE_EQ(s->prefill_tps, 300);
  EXPECT_DOUBLE_EQ(s->decode_tps, 42.5);
}

TEST(RouterSeed, NothingReportedIsNullopt) {
  EXPECT_FALSE(parse_reported_speed("").has_value());
  EXPECT_FALSE(parse_reported_speed("not json").has_value());
  EXPECT_FALSE(parse_reported_speed("[1, 2]").has_value());
  EXPECT_FALSE(parse_reported_speed(R"({"object": "pool"})").has_value());
  EXPECT_FALSE(parse_reported_speed(R"({"devices": "x"})").has_value());
  // A freshly started serve has measured nothing yet.
  EXPECT_FALSE(
      parse_reported_speed(
          R"({"devices": [{"state": "serving", "measured": {"prefill_tps": 0, "decode_tps": 0}}]})")
          .has_value());
  // Wrong types and negative or missing values count as not reported; the rest still counts.
  const std::optional<ReportedSpeed> s = parse_reported_speed(
      R"({"devices": [{"state": "serving", "measured": {"prefill_tps": "fast", "decode_tps": -3}},
                      {"state": "serving", "measured": null}, 7,
                      {"measured": {"decode_tps": 8}}]})");
  ASSERT_TRUE(s.has_value());
  EXPECT_DOUBLE_EQ(s->prefill_tps, 0);
  EXPECT_DOUBLE_EQ(s->decode_tps, 8);
}

std::vector<std::string> two() {
  return {"http://a:1", "http://b:2"};
}

TEST(RouterSeed, SeedsOnceAndRoutingUsesIt) {
  BackendSet set(two());
  set.report_health(0, true, "");
  set.report_health(1, true, "");
  EXPECT_TRUE(set.needs_seed(0));
  EXPECT_TRUE(set.needs_seed(1));
  // Backend 1 reports being ten times faster than backend 0.
  EXPECT_TRUE(set.seed(0, ReportedSpeed{500, 20}));
  EXPECT_TRUE(set.seed(1, ReportedSpeed{5000, 200}));
  EXPECT_FALSE(set.needs_seed(0));
  EXPECT_DOUBLE_EQ(set.view(1).prefill_tps, 5000);
  EXPECT_DOUBLE_EQ(set.view(1).decode_tps, 200);
  EXPECT_DOUBLE_EQ(set.view(1).seeded_decode_tps, 200);
  EXPECT_DOUBLE_EQ(set.replica_states()[0].decode_tps, 20);
  // Idle: the expected completion of a 100-token prompt with 50 tokens to generate is
  // 100/500 + 50/20 = 2.7 s on backend 0 and 0.02 + 0.25 s on backend 1; unseeded, both would
  // count the defaults and the tie would go to backend 0.
  pool::RouteRequest req;
  req.prompt_tokens = 100;
  req.max_tokens = 50;
  BackendSet::Ticket t = set.acquire(req);
  EXPECT_EQ(t.backend(), 1u);
  // The seed shows in /v1/pool and /metrics.
  const nlohmann::json j = pool_json(set);
  EXPECT_DOUBLE_EQ(j["backends"][1]["seeded_decode_tokens_per_second"].get<double>(), 200);
  EXPECT_DOUBLE_EQ(j["backends"][1]["decode_tokens_per_second"].get<double>(), 200);
  const std::string m = RouterMetrics().render(set);
  EXPECT_NE(m.find("luzao_router_backend_seeded_decode_tokens_per_second{backend=\"http://b:2\"} "
                   "200"),
            std::string::npos)
      << m;
}

TEST(RouterSeed, TrafficLearningContinuesFromTheSeed) {
  BackendSet set(two());
  set.report_health(0, true, "");
  set.seed(0, ReportedSpeed{0, 100});  // decode only: prefill stays unknown
  EXPECT_DOUBLE_EQ(set.view(0).prefill_tps, 0);
  set.sample_throughput(0, 10.0);
  {
    BackendSet::Ticket t = set.acquire({});
    ASSERT_EQ(t.backend(), 0u);
    t.generated(40);
    set.sample_throughput(0, 12.0);  // 40 tokens in 2 s = 20/s, blended into the seed (0.3)
    EXPECT_NEAR(set.view(0).decode_tps, 0.7 * 100 + 0.3 * 20, 1e-9);
    EXPECT_DOUBLE_EQ(set.view(0).seeded_decode_tps, 100);  // what was reported stays on record
  }
  // A speed the router measured before the seed arrived is kept, and a backend that reports
  // nothing is left to traffic.
  set.report_health(1, true, "");
  EXPECT_FALSE(set.seed(1, std::nullopt));
  EXPECT_FALSE(set.needs_seed(1));
  EXPECT_DOUBLE_EQ(set.view(1).decode_tps, 0);
  BackendSet other(two());
  other.report_health(0, true, "");
  other.sample_throughput(0, 1.0);
  {
    BackendSet::Ticket t = other.acquire({});
    t.generated(30);
    other.sample_throughput(0, 2.0);
  }
  EXPECT_DOUBLE_EQ(other.view(0).decode_tps, 30);
  EXPECT_FALSE(other.seed(0, ReportedSpeed{0, 999}));
  EXPECT_DOUBLE_EQ(other.view(0).decode_tps, 30);
  EXPECT_DOUBLE_EQ(other.view(0).seeded_decode_tps, 0);
}

}  // namespace
}  // namespace luzao::server
