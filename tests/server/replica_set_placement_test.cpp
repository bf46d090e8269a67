// ReplicaSet with a placement: devices the placement did not choose wait on standby (no model
// loaded); draining a placed device moves its requests at once and the re-plan loads a standby
// device in the background, which then serves; a load failure marks that device failed; an
// embargo keeps a standby device of that vendor out; stop() joins a load in progress.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "pool/pool_spec.h"
#include "runtime/engine.h"
#include "runtime/scheduler.h"
#include "served_model.h"
#include "served_requests.h"
#include "server/pool_placement.h"
#include "server/replica_set.h"
#include "three_vendor_pool.h"

namespace luzao::server {
namespace {

using namespace std::chrono_literals;
using luzao::testing::collect;
using luzao::testing::Outcome;
using Ids = std::vector<std::string>;

// testing::kThreeVendorPool: 'a' and 'b' are placed, 'c' waits on standby; drained 'a' is
// replaced by 'c'.
ReplicaPlanning planning(const std::string& extra_policy = "") {
  return plan_startup(
      pool::parse_pool_spec(std::string(luzao::testing::kThreeVendorPool) + extra_policy, "p.yaml"),
      luzao::testing::equal_speeds({"a", "b", "c"}));
}

class PlacedReplicaSetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = new std::filesystem::path(luzao::testing::write_served_model("placed"));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove(*path_);
    delete path_;
  }

  static EngineOptions engine_options() { return luzao::testing::served_engine_options(*path_); }

  static ReplicaSetOptions set_options(ReplicaPlanning plan) {
    ReplicaSetOptions o;
    o.engine = engine_options();
    o.scheduler.max_sequences = 4;
    o.scheduler.prefill_chunk = 16;
    o.watchdog = 0ms;
    o.planning = std::move(plan);
    return o;
  }

  static GenerationRequest request(int salt, int max_tokens) {
    return luzao::testing::salted_request(salt, max_tokens);
  }

  static std::vector<std::string> undisturbed(const std::vector<GenerationRequest>& requests) {
    return luzao::testing::undisturbed(engine_options(), requests);
  }

  static ReplicaReport find(const ReplicaSet& set, const std::string& id) {
    for (const ReplicaReport& r : set.report()) {
      if (r.id == id) return r;
    }
    ADD_FAILURE() << "no replica " << id;
    return {};
  }

  // Waits until replica `id` leaves the loading state (or 60 s pass).
  static ReplicaHealth settled(const ReplicaSet& set, const std::string& id) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      const ReplicaHealth h = find(set, id).health;
      if (h != ReplicaHealth::kLoading) return h;
      std::this_thread::sleep_for(10ms);
    }
    return ReplicaHealth::kLoading;
  }

  static std::filesystem::path* path_;
};
std::filesystem::path* PlacedReplicaSetTest::path_ = nullptr;

TEST_F(PlacedReplicaSetTest, StandbyDeviceStartsWhenAPlacedOneIsDrained) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 8; ++i) requests.push_back(request(i, 40));
  const std::vector<std::string> expected = undisturbed(requests);

  auto slow = [] { std::this_thread::sleep_for(2ms); };
  ReplicaSet set({{"a", "cpu", "xco", 0.5, slow},
                  {"b", "cpu", "yco", 0.5, slow},
                  {"c", "cpu", "zco", 0.9, slow}},
                 set_options(planning()));
  EXPECT_EQ(find(set, "a").health, ReplicaHealth::kServing);
  EXPECT_EQ(find(set, "b").health, ReplicaHealth::kServing);
  const ReplicaReport c0 = find(set, "c");
  EXPECT_EQ(c0.health, ReplicaHealth::kStandby);
  EXPECT_STREQ(replica_health_name(c0.health), "standby");
  EXPECT_EQ(c0.uptime_seconds, 0.0);
  EXPECT_EQ(set.drain("c", false), WithdrawStatus::kNotServing);  // nothing to drain
  std::optional<PlacementReport> p = set.placement();
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->feasible);
  EXPECT_EQ(p->replicas.size(), 2u);
  EXPECT_NEAR(p->cost_per_hour, 1.0, 1e-9);
  EXPECT_TRUE(p->replans.empty());

  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (const auto& r : requests) {
    SubmitResult s = set.submit(r, 0);
    ASSERT_NE(s.stream, nullptr) << s.refusal;
    streams.push_back(s.stream);
  }
  EXPECT_EQ(find(set, "c").routed, 0u);  // standby takes nothing
  GenerationUpdate first;
  ASSERT_TRUE(streams[0]->wait(first, 30000ms));
  ASSERT_GT(find(set, "a").routed, 0u);
  EXPECT_EQ(set.drain("a", false), WithdrawStatus::kDone);
  const uint64_t a_routed = find(set, "a").routed;
  // The re-plan is recorded when drain() returns; the load goes on in the background.
  p = set.placement();
  ASSERT_EQ(p->replans.size(), 1u);
  EXPECT_EQ(p->replans[0].added, (Ids{"c"}));
  EXPECT_EQ(p->replans[0].removed, (Ids{"a"}));
  EXPECT_NE(p->replans[0].trigger.find("'a' was drained"), std::string::npos);
  EXPECT_TRUE(p->replans[0].feasible);
  EXPECT_NEAR(p->cost_per_hour, 1.4, 1e-9);
  for (size_t i = 0; i < streams.size(); ++i) {
    const Outcome o = collect(*streams[i]);
    EXPECT_EQ(i == 0 ? first.text + o.text : o.text, expected[i]) << "request " << i;
    EXPECT_NE(o.last.reason, FinishReason::kError) << o.last.error;
  }
  EXPECT_GT(set.migrations(), 0u);  // the drain caught requests running or queued on 'a'
  EXPECT_EQ(set.lost_requests(), 0u);
  ASSERT_EQ(settled(set, "c"), ReplicaHealth::kServing) << find(set, "c").reason;
  EXPECT_TRUE(find(set, "c").reason.empty());
  // The started device serves new requests (four at once: the router spreads them).
  std::vector<GenerationRequest> more;
  std::vector<std::shared_ptr<GenerationStream>> later;
  for (int i = 20; i < 26; ++i) {
    more.push_back(request(i, 12));
    later.push_back(set.submit(more.back(), 0).stream);
    ASSERT_NE(later.back(), nullptr);
  }
  const std::vector<std::string> expected_more = undisturbed(more);
  for (size_t i = 0; i < later.size(); ++i) EXPECT_EQ(collect(*later[i]).text, expected_more[i]);
  const ReplicaReport c1 = find(set, "c");
  EXPECT_GT(c1.routed, 0u);
  EXPECT_GT(c1.stats.finished, 0u);
  EXPECT_EQ(find(set, "a").routed, a_routed);  // the drained device got nothing new
  // Restoring the drained device works as without a placement.
  EXPECT_EQ(set.restore("a"), WithdrawStatus::kDone);
  EXPECT_EQ(find(set, "a").health, ReplicaHealth::kServing);
}

TEST_F(PlacedReplicaSetTest, AFailedLoadMarksTheDeviceFailedInOneLine) {
  ReplicaSet set({{"a", "cpu", "xco", 0.5, {}},
                  {"b", "cpu", "yco", 0.5, {}},
                  {"c", "nosuchbackend:0", "zco", 0.9, {}}},
                 set_options(planning()));
  EXPECT_EQ(find(set, "c").health, ReplicaHealth::kStandby);
  EXPECT_EQ(set.drain("a", false), WithdrawStatus::kDone);
  ASSERT_EQ(settled(set, "c"), ReplicaHealth::kFailed);
  const std::string reason = find(set, "c").reason;
  EXPECT_NE(reason.find("cannot load the model"), std::string::npos) << reason;
  EXPECT_EQ(reason.find('\n'), std::string::npos) << reason;
  // The failure re-plans again: nothing is left to add; 'b' serves on.
  const std::optional<PlacementReport> p = set.placement();
  ASSERT_EQ(p->replans.size(), 2u);
  EXPECT_NE(p->replans[1].trigger.find("'c' failed to load"), std::string::npos);
  EXPECT_TRUE(p->replans[1].added.empty());
  EXPECT_FALSE(p->replans[1].feasible);
  SubmitResult r = set.submit(request(3, 4), 0);
  ASSERT_NE(r.stream, nullptr) << r.refusal;
  EXPECT_EQ(collect(*r.stream).last.reason, FinishReason::kLength);
}

TEST_F(PlacedReplicaSetTest, EmbargoKeepsAStandbyDeviceOfThatVendorOut) {
  ReplicaSet set(
      {{"a", "cpu", "xco", 0.5, {}}, {"b", "cpu", "yco", 0.5, {}}, {"c", "cpu", "zco", 0.9, {}}},
      set_options(planning()));
  std::vector<std::string> withdrawn;
  EXPECT_EQ(set.embargo("ZCO", false, withdrawn), WithdrawStatus::kDone);
  EXPECT_TRUE(withdrawn.empty());  // 'c' served nothing: it is not listed as withdrawn
  EXPECT_EQ(find(set, "c").health, ReplicaHealth::kEmbargoed);
  EXPECT_EQ(set.drain("a", false), WithdrawStatus::kDone);
  const std::optional<PlacementReport> p = set.placement();
  ASSERT_EQ(p->replans.size(), 2u);
  EXPECT_TRUE(p->replans[1].added.empty());
  EXPECT_EQ(p->replans[1].replicas, (Ids{"b"}));
  EXPECT_FALSE(p->feasible);
  EXPECT_EQ(find(set, "c").health, ReplicaHealth::kEmbargoed);
}

TEST_F(PlacedReplicaSetTest, StopJoinsALoadInProgress) {
  for (int round = 0; round < 3; ++round) {
    ReplicaSet set(
        {{"a", "cpu", "xco", 0.5, {}}, {"b", "cpu", "yco", 0.5, {}}, {"c", "cpu", "zco", 0.9, {}}},
        set_options(planning()));
    EXPECT_EQ(set.drain("b", false), WithdrawStatus::kDone);
    if (round == 1) std::this_thread::sleep_for(5ms);
    set.stop();  // the loader may be mid-load: stop waits for it, nothing leaks or races
    const ReplicaHealth h = find(set, "c").health;
    EXPECT_TRUE(h == ReplicaHealth::kLoading || h == ReplicaHealth::kServing)
        << replica_health_name(h);
  }
}

TEST_F(PlacedReplicaSetTest, UnmeasuredReplicasAreRoutedByTheirProbedSpeed) {
  // 'slow' was probed at 10 prompt and 2 generated tokens/s, 'fast' at 10,000 and 1,000: before
  // traffic has measured either, a request of ~8 prompt and 16 output tokens is expected to take
  // ~9 s on 'slow' and ~0.02 s per request queued on 'fast', so four at once all go to 'fast'.
  // (Without the probe both would count as equally fast and share the requests.)
  ReplicaPlanning plan;
  plan.problem.devices = {{"slow", "xco", 0.1, 10, 2, 2, 0},
                          {"fast", "yco", 1.0, 10000, 500, 1000, 0}};
  plan.start = {"slow", "fast"};
  ReplicaSet set({{"slow", "cpu", "xco", 0.1, {}}, {"fast", "cpu", "yco", 1.0, {}}},
                 set_options(plan));
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (int i = 0; i < 4; ++i) streams.push_back(set.submit(request(i, 16), 0).stream);
  for (auto& st : streams) {
    ASSERT_NE(st, nullptr);
    collect(*st);
  }
  EXPECT_EQ(find(set, "slow").routed, 0u);
  EXPECT_EQ(find(set, "fast").routed, 4u);
}

TEST_F(PlacedReplicaSetTest, WithoutPlanningEveryDeviceLoadsAndNothingIsPlanned) {
  ReplicaSetOptions o = set_options(planning());
  o.planning.reset();
  ReplicaSet set({{"a", "cpu", "xco", 0.5, {}}, {"c", "cpu", "zco", 0.9, {}}}, o);
  EXPECT_FALSE(set.placement().has_value());
  for (const ReplicaReport& r : set.report()) EXPECT_EQ(r.health, ReplicaHealth::kServing);
}

}  // namespace
}  // namespace luzao::server
