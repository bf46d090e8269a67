// Router: least expected completion time, prefix affinity within the slack, LRU bound, forget.
#include "pool/routing.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

namespace luzao::pool {
namespace {

ReplicaState replica(const char* id, double prefill, double decode, int64_t pp = 0,
                     int64_t po = 0) {
  ReplicaState r;
  r.id = id;
  r.prefill_tps = prefill;
  r.decode_tps = decode;
  r.pending_prompt_tokens = pp;
  r.pending_output_tokens = po;
  return r;
}

TEST(PrefixKey, MatchesPublishedFnv1aVectors) {
  // Test vectors from the FNV reference (Fowler/Noll/Vo), 64-bit FNV-1a.
  EXPECT_EQ(prefix_key("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(prefix_key("foobar"), 0x85944171f73967e8ULL);
  EXPECT_EQ(prefix_key(""), 0u);
  // Only the first `chars` bytes count.
  EXPECT_EQ(prefix_key("foobarbaz", 6), prefix_key("foobar"));
  EXPECT_NE(prefix_key("foobarbaz", 7), prefix_key("foobar"));
}

TEST(Router, ExpectedCompletionIsHandComputed) {
  const ReplicaState r = replica("a", 100, 10, 200, 30);
  // (200 + 100) / 100 + (30 + 20) / 10 = 3 + 5 = 8 s
  EXPECT_DOUBLE_EQ(Router::expected_completion_s(r, {0, 100, 20}), 8.0);
  // Unknown speeds: 1000 and 50 tokens/s; unknown max_tokens: 256.
  const ReplicaState u = replica("u", 0, 0);
  EXPECT_DOUBLE_EQ(Router::expected_completion_s(u, {0, 500, 0}), 0.5 + 256.0 / 50.0);
  ReplicaState down = r;
  down.available = false;
  EXPECT_TRUE(std::isinf(Router::expected_completion_s(down, {0, 1, 1})));
}

TEST(Router, PicksLeastExpectedCompletion) {
  Router router;
  std::vector<ReplicaState> rs = {replica("slow", 100, 10), replica("fast", 1000, 100),
                                  replica("busy", 1000, 100, 0, 10000)};
  EXPECT_EQ(router.pick(rs, {0, 100, 50}), 1);
  rs[1].available = false;
  EXPECT_EQ(router.pick(rs, {0, 100, 50}), 0);  // slow: 1 + 5 = 6 s; busy: 0.1 + 100.5 s
  rs[0].available = false;
  rs[2].available = false;
  EXPECT_EQ(router.pick(rs, {0, 100, 50}), -1);
  EXPECT_EQ(router.stats().unavailable, 1u);
  EXPECT_EQ(router.pick(std::span<const ReplicaState>{}, {0, 1, 1}), -1);
}

TEST(Router, AffinityWinsOnlyWithinSlack) {
  Router router(0.25);
  std::vector<ReplicaState> rs = {replica("a", 1000, 100), replica("b", 1000, 100)};
  const RouteRequest req{42, 100, 100};  // 0.1 + 1.0 = 1.1 s on an idle replica
  EXPECT_EQ(router.pick(rs, req), 0);
  EXPECT_EQ(router.affinity_of(42), "a");
  // a now carries 20 more output tokens: 1.1 + 0.2 = 1.3 s <= 1.1 * 1.25 = 1.375: stays on a.
  rs[0].pending_output_tokens = 20;
  EXPECT_EQ(router.pick(rs, req), 0);
  EXPECT_EQ(router.stats().affinity_hits, 1u);
  // 40 more: 1.5 s > 1.375: moves to b, and the affinity follows.
  rs[0].pending_output_tokens = 40;
  EXPECT_EQ(router.pick(rs, req), 1);
  EXPECT_EQ(router.affinity_of(42), "b");
  // Without a prefix key the least loaded wins and nothing is recorded.
  rs[1].pending_output_tokens = 30;
  EXPECT_EQ(router.pick(rs, {0, 100, 100}), 1);
  rs[1].pending_output_tokens = 50;
  EXPECT_EQ(router.pick(rs, {0, 100, 100}), 0);
  EXPECT_EQ(router.affinity_size(), 1u);
}

TEST(Router, AffinityToUnavailableOrForgottenReplicaIsIgnored) {
  Router router(10.0);
  std::vector<ReplicaState> rs = {replica("a", 1000, 100), replica("b", 1000, 100)};
  EXPECT_EQ(router.pick(rs, {7, 10, 10}), 0);
  rs[0].available = false;
  EXPECT_EQ(router.pick(rs, {7, 10, 10}), 1);
  EXPECT_EQ(router.affinity_of(7), "b");
  rs[0].available = true;
  rs[1].pending_output_tokens = 5;  // a is now better, but b is within the huge slack
  EXPECT_EQ(router.pick(rs, {7, 10, 10}), 1);
  router.forget("b");
  EXPECT_FALSE(router.affinity_of(7).has_value());
  EXPECT_EQ(router.pick(rs, {7, 10, 10}), 0);
}

TEST(Router, AffinityTableIsBoundedLru) {
  Router router(0.25, 3);
  std::vector<ReplicaState> rs = {replica("a", 1000, 100)};
  for (uint64_t k = 1; k <= 3; ++k) router.pick(rs, {k, 1, 1});
  router.pick(rs, {1, 1, 1});  // refresh 1: 2 is now the least recent
  router.pick(rs, {4, 1, 1});
  EXPECT_EQ(router.affinity_size(), 3u);
  EXPECT_TRUE(router.affinity_of(1).has_value());
  EXPECT_FALSE(router.affinity_of(2).has_value());
  EXPECT_TRUE(router.affinity_of(3).has_value());
  EXPECT_TRUE(router.affinity_of(4).has_value());
}

}  // namespace
}  // namespace luzao::pool
