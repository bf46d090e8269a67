// Server placement decisions (src/server/pool_placement.h) on hand-computed pools: which devices
// start for the stated workload, which wait on standby, the fallback when nothing can be placed,
// and what a re-plan starts after a drain or a (case-insensitive) vendor embargo.
#include "server/pool_placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "three_vendor_pool.h"

namespace luzao::server {
namespace {

using Ids = std::vector<std::string>;

constexpr const char* kPool = testing::kThreeVendorPool;

// The pool's equal speeds, measured with 4 sequences.
pool::ProbeResults probe_all(const Ids& ids) {
  return testing::equal_speeds(ids, 4);
}

Ids sorted(Ids v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(ServePlacement, StartsTheCheapestSufficientDevicesAndLeavesTheRestStandby) {
  const pool::PoolSpec spec = pool::parse_pool_spec(kPool, "p.yaml");
  const ReplicaPlanning plan = plan_startup(spec, probe_all({"a", "b", "c"}));
  EXPECT_FALSE(plan.fallback);
  EXPECT_TRUE(plan.placement.feasible) << plan.placement.reason;
  EXPECT_EQ(sorted(plan.start), (Ids{"a", "b"}));
  EXPECT_NEAR(plan.placement.cost_per_hour, 1.0, 1e-9);
  // 1.0 per hour / (5 requests/s * 40 tokens * 3600 s) * 1e6.
  EXPECT_NEAR(plan.placement.cost_per_million_tokens, 1e6 / 720000.0, 1e-6);
  EXPECT_NEAR(plan.placement.capacity_rps, 6.4, 1e-9);
  const std::string line = describe_startup(plan, 3);
  EXPECT_NE(line.find("2 replica(s)"), std::string::npos) << line;
  EXPECT_NE(line.find("1.00/h"), std::string::npos) << line;
  EXPECT_NE(line.find("1.3889 per million tokens"), std::string::npos) << line;
  EXPECT_NE(line.find("feasible; standby: c"), std::string::npos) << line;
}

TEST(ServePlacement, ReplanAfterADrainStartsTheStandbyDevice) {
  const pool::PoolSpec spec = pool::parse_pool_spec(kPool, "p.yaml");
  const ReplicaPlanning plan = plan_startup(spec, probe_all({"a", "b", "c"}));
  // 'a' drained: 'b' alone (3.2/s) cannot carry 5/s, so 'c' joins it: 1.4 per hour.
  const pool::Placement next = replan_serving(plan.problem, plan.placement, {"b"}, {"a"}, {});
  EXPECT_TRUE(next.feasible) << next.reason;
  EXPECT_EQ(sorted(replica_ids(next)), (Ids{"b", "c"}));
  EXPECT_EQ(next.added, (Ids{"c"}));
  EXPECT_EQ(next.removed, (Ids{"a"}));
  EXPECT_NEAR(next.cost_per_hour, 1.4, 1e-9);
  EXPECT_NEAR(next.cost_per_million_tokens, 1.4e6 / 720000.0, 1e-6);
  // 'a' and 'c' gone too: 'b' is all that is left, infeasible, and nothing can be added.
  const pool::Placement last = replan_serving(plan.problem, next, {"b"}, {"a", "c"}, {});
  EXPECT_FALSE(last.feasible);
  EXPECT_EQ(replica_ids(last), (Ids{"b"}));
  EXPECT_TRUE(last.added.empty());
  EXPECT_EQ(last.removed, (Ids{"c"}));
}

TEST(ServePlacement, EmbargoedVendorsAreMatchedWithoutCase) {
  const pool::PoolSpec spec = pool::parse_pool_spec(kPool, "p.yaml");
  const ReplicaPlanning plan = plan_startup(spec, probe_all({"a", "b", "c"}));
  // Vendor 'YCO' (the device says 'yco') embargoed: its device 'b' was withdrawn with it.
  const pool::Placement next = replan_serving(plan.problem, plan.placement, {"a"}, {"b"}, {"YCO"});
  EXPECT_EQ(sorted(replica_ids(next)), (Ids{"a", "c"}));
  EXPECT_EQ(next.added, (Ids{"c"}));
  // Also when the embargoed vendor's device was never withdrawn (a standby one): 'c' of 'ZCO'
  // is not started; only 'a' and 'b' remain.
  const pool::Placement other =
      replan_serving(plan.problem, plan.placement, {"a", "b"}, {}, {"ZCO"});
  EXPECT_EQ(sorted(replica_ids(other)), (Ids{"a", "b"}));
  EXPECT_TRUE(other.added.empty());
}

TEST(ServePlacement, UnprobedDevicesGetDefaultsAndAnImpossibleSloStartsEveryEligibleDevice) {
  // A TPOT limit of 5 ms: no device decodes one token in 5 ms (10 ms alone), nothing is placed,
  // so every device whose vendor the policy does not exclude starts.
  const std::string text =
      std::string(kPool) + "policy: {slo: {tpot_ms: 5}, exclude_vendors: [ZCO]}\n";
  const pool::PoolSpec spec = pool::parse_pool_spec(text, "p.yaml");
  const ReplicaPlanning plan = plan_startup(spec, probe_all({"a", "b", "c"}));
  EXPECT_TRUE(plan.fallback);
  EXPECT_FALSE(plan.placement.feasible);
  EXPECT_NE(plan.placement.reason.find("meets the SLO"), std::string::npos)
      << plan.placement.reason;
  EXPECT_EQ(plan.start, (Ids{"a", "b"}));
  const std::string line = describe_startup(plan, 3);
  EXPECT_NE(line.find("infeasible"), std::string::npos) << line;
  EXPECT_NE(line.find("starting every eligible device (2)"), std::string::npos) << line;
  // No probe at all: the placement's default speeds are used and something is placed.
  const ReplicaPlanning blind = plan_startup(pool::parse_pool_spec(kPool, "p.yaml"), {});
  EXPECT_FALSE(blind.start.empty());
  EXPECT_FALSE(blind.fallback);
}

TEST(ServePlacement, SurviveVendorLossPlacesTwoVendors) {
  // 1 request/s: one replica carries it (3.2/s); with survive_vendor_loss the loss of its vendor
  // must be covered by another vendor's replica: the two cheapest of different vendors.
  const std::string text = R"(
devices:
  - {id: a, device: cpu, price_per_hour: 0.5, labels: {vendor: xco}}
  - {id: a2, device: cpu, price_per_hour: 0.5, labels: {vendor: xco}}
  - {id: c, device: cpu, price_per_hour: 0.9, labels: {vendor: zco}}
workload: {rps: 1, prompt_tokens: 50, output_tokens: 40}
)";
  const ReplicaPlanning plain =
      plan_startup(pool::parse_pool_spec(text, "p.yaml"), probe_all({"a", "a2", "c"}));
  EXPECT_EQ(plain.start.size(), 1u);
  const ReplicaPlanning spare =
      plan_startup(pool::parse_pool_spec(text + "policy: {survive_vendor_loss: true}\n", "p.yaml"),
                   probe_all({"a", "a2", "c"}));
  EXPECT_TRUE(spare.placement.feasible) << spare.placement.reason;
  const Ids got = sorted(spare.start);
  EXPECT_TRUE(got == (Ids{"a", "c"}) || got == (Ids{"a2", "c"})) << got.size();
  EXPECT_NEAR(spare.placement.cost_per_hour, 1.4, 1e-9);
}

TEST(ServePlacement, EveryVendorExcludedIsAClearError) {
  const pool::PoolSpec spec = pool::parse_pool_spec(
      std::string(kPool) + "policy: {exclude_vendors: [xco, YCO, zco]}\n", "p.yaml");
  EXPECT_EQ(eligible_devices(spec).size(), 0u);
  EXPECT_THROW(plan_startup(spec, {}), Error);
}

}  // namespace
}  // namespace luzao::server
