// Placement: the per-replica estimate by hand, the heuristic against exhaustive search on random
// small pools, exclusions, layer splits and re-planning after a vendor is withdrawn.
#include "pool/placement.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "pool_test_util.h"

#include "core/error.h"
#include "pool/routing.h"

namespace luzao::pool {
namespace {

using test::dev;

TEST(Placement, EstimateIsHandComputed) {
  PlacementProblem p;
  p.workload = {1.0, 200, 100};
  p.slo = {500, 100};
  p.devices = {dev("a", "x", 2.0, 1000, 20, 80)};
  const PlannedReplica r = estimate_replica({&p.devices[0]}, p);
  // service = 200/1000 + 100/80 = 1.45 s; TTFT caps rho at 1 - 0.2/0.5 = 0.6 (below 0.8 and the
  // TPOT cap 1 - 1000/(80*100) = 0.875).
  EXPECT_DOUBLE_EQ(r.service_s, 1.45);
  EXPECT_NEAR(r.max_rps, 0.6 / 1.45, 1e-12);
  // At 0.3 requests/s: rho = 0.435; TTFT = 200 ms / 0.565; TPOT = max(50, 12.5 / 0.565) = 50 ms.
  p.workload.rps = 0.3;
  const Placement pl = finish_placement({estimate_replica({&p.devices[0]}, p)}, p);
  ASSERT_TRUE(pl.feasible) << pl.reason;
  EXPECT_NEAR(pl.replicas[0].utilization, 0.435, 1e-12);
  EXPECT_NEAR(pl.replicas[0].ttft_ms, 200 / 0.565, 1e-9);
  EXPECT_NEAR(pl.replicas[0].tpot_ms, 50, 1e-9);
  // 2 $/h over 0.3 * 100 * 3600 tokens/h = 108000 tokens/h: 18.518... $ per million.
  EXPECT_NEAR(pl.cost_per_million_tokens, 2.0 / 108000 * 1e6, 1e-9);
  // A device that cannot meet the TPOT SLO even alone has no capacity.
  p.slo.tpot_ms = 40;  // 1/20 s = 50 ms per token
  EXPECT_EQ(estimate_replica({&p.devices[0]}, p).max_rps, 0);
  const Placement none = place(p);
  EXPECT_FALSE(none.feasible);
  EXPECT_NE(none.reason.find("none of the 1 eligible devices meets the SLO"), std::string::npos)
      << none.reason;
  p.excluded_ids = {"a"};
  EXPECT_NE(place(p).reason.find("no eligible device"), std::string::npos);
  p.excluded_ids.clear();
  // The load beyond capacity is reported.
  p.slo = {};
  p.workload.rps = 10;
  const Placement over = place(p);
  EXPECT_FALSE(over.feasible);
  EXPECT_NE(over.reason.find("capacity"), std::string::npos) << over.reason;
}

TEST(Placement, PicksCheapestCapacityAndHonoursExclusions) {
  PlacementProblem p;
  p.workload = {1.0, 100, 50};
  p.devices = {dev("dear", "nv", 10, 5000, 100, 1000), dev("cheap1", "hw", 1, 2000, 40, 200),
               dev("cheap2", "hw", 1, 2000, 40, 200), dev("mid", "cb", 3, 3000, 60, 500)};
  // cheap: service 0.05 + 0.25 = 0.3 s -> 2.67 rps each at 80%: one covers 1 rps.
  Placement pl = place(p);
  ASSERT_TRUE(pl.feasible) << pl.reason;
  ASSERT_EQ(pl.replicas.size(), 1u);
  EXPECT_EQ(pl.replicas[0].vendor, "hw");
  EXPECT_DOUBLE_EQ(pl.cost_per_hour, 1);
  p.options.min_replicas = 2;
  pl = place(p);
  ASSERT_EQ(pl.replicas.size(), 2u);
  EXPECT_DOUBLE_EQ(pl.cost_per_hour, 2);
  p.excluded_vendors = {"hw"};
  pl = place(p);
  ASSERT_TRUE(pl.feasible);
  for (const auto& r : pl.replicas) EXPECT_NE(r.vendor, "hw");
  EXPECT_DOUBLE_EQ(pl.cost_per_hour, 13);
  p.excluded_ids = {"dear"};
  pl = place(p);
  EXPECT_FALSE(pl.feasible);  // one device left, two replicas required
  EXPECT_NE(pl.reason.find("fewer than the 2 required"), std::string::npos) << pl.reason;
}

// Random pools of up to 8 devices: the heuristic is within 5% of the exhaustive optimum and is
// feasible (within the SLO) whenever the exhaustive search finds a feasible placement.
TEST(Placement, HeuristicWithinFivePercentOfExhaustive) {
  std::mt19937 rng(20261128);
  int feasible_cases = 0, exact = 0;
  double worst = 1;
  for (int trial = 0; trial < 400; ++trial) {
    const PlacementProblem p = test::random_problem(rng);
    const Placement best = place_exhaustive(p);
    const Placement heur = place(p);
    if (!best.feasible) {
      // finish_placement recomputes feasibility: the heuristic cannot claim what does not exist.
      EXPECT_FALSE(heur.feasible) << "trial " << trial;
      continue;
    }
    ++feasible_cases;
    ASSERT_TRUE(heur.feasible) << "trial " << trial << ": " << heur.reason;
    for (const auto& r : heur.replicas) {
      if (p.slo.ttft_ms > 0) {
        EXPECT_LE(r.ttft_ms, p.slo.ttft_ms * (1 + 1e-9));
      }
      if (p.slo.tpot_ms > 0) {
        EXPECT_LE(r.tpot_ms, p.slo.tpot_ms * (1 + 1e-9));
      }
      EXPECT_FALSE(p.excluded_vendors.contains(r.vendor));
    }
    EXPECT_GE(heur.cost_per_million_tokens, best.cost_per_million_tokens * (1 - 1e-9))
        << "the exhaustive search is not optimal in trial " << trial;
    EXPECT_LE(heur.cost_per_million_tokens, best.cost_per_million_tokens * 1.05 + 1e-12)
        << "trial " << trial;
    const double ratio = best.cost_per_hour > 0 ? heur.cost_per_hour / best.cost_per_hour : 1;
    worst = std::max(worst, ratio);
    exact += ratio < 1 + 1e-9;
  }
  EXPECT_GT(feasible_cases, 150);  // the generator must exercise feasible pools
  RecordProperty("feasible_cases", feasible_cases);
  RecordProperty("exact", exact);
  std::printf("placement: %d feasible random pools, heuristic optimal in %d, worst ratio %.4f\n",
              feasible_cases, exact, worst);
}

TEST(Placement, SplitOverTwoDevicesWhenNoneHoldsTheModel) {
  PlacementProblem p;
  p.workload = {0.5, 100, 50};
  p.options.allow_splits = true;
  p.options.model_memory_gb = 30;
  p.devices = {dev("a", "nv", 2, 1000, 40, 120), dev("b", "hw", 1, 500, 20, 60),
               dev("c", "cb", 1, 500, 20, 60)};
  p.devices[0].memory_gb = 20;
  p.devices[1].memory_gb = 20;
  p.devices[2].memory_gb = 10;
  // Alone none fits; a+b: ratio 0.5/0.5, harmonic speeds: 1/(0.5/1000 + 0.5/500) = 666.67 ...
  const PlannedReplica ab = estimate_replica({&p.devices[0], &p.devices[1]}, p);
  EXPECT_NEAR(ab.prefill_tps, 1000.0 / 1.5, 1e-9);
  EXPECT_NEAR(ab.decode_tps, 40.0 / 1.5, 1e-9);
  EXPECT_DOUBLE_EQ(ab.price_per_hour, 3);
  EXPECT_EQ(estimate_replica({&p.devices[0]}, p).max_rps, 0);
  // b+c: 20 + 10 = 30 GB, ratio 2/3 : 1/3, price 2: the cheapest split that fits.
  const PlannedReplica bc = estimate_replica({&p.devices[1], &p.devices[2]}, p);
  EXPECT_NEAR(bc.ratio[0], 2.0 / 3, 1e-12);
  EXPECT_NEAR(bc.prefill_tps, 500, 1e-9);
  const Placement pl = place(p);
  const Placement ex = place_exhaustive(p);
  ASSERT_TRUE(pl.feasible) << pl.reason;
  ASSERT_TRUE(ex.feasible);
  ASSERT_EQ(pl.replicas.size(), 1u);
  EXPECT_EQ(pl.replicas[0].device_ids.size(), 2u);
  EXPECT_DOUBLE_EQ(pl.cost_per_hour, ex.cost_per_hour);
}

TEST(Placement, ReplanAfterVendorWithdrawal) {
  PlacementProblem p;
  p.workload = {6.0, 100, 50};
  for (int i = 0; i < 6; ++i) {
    p.devices.push_back(dev("nv" + std::to_string(i), "nv", 1.0, 4000, 60, 400));
    p.devices.push_back(dev("hw" + std::to_string(i), "hw", 1.2, 4000, 60, 400));
  }
  const Placement before = place(p);
  ASSERT_TRUE(before.feasible);
  for (const auto& r : before.replicas) EXPECT_EQ(r.vendor, "nv");  // cheaper, same speed
  p.excluded_vendors = {"nv"};
  const Placement after = replan(p, before);
  ASSERT_TRUE(after.feasible) << after.reason;
  for (const auto& r : after.replicas) EXPECT_EQ(r.vendor, "hw");
  EXPECT_EQ(after.removed.size(), before.replicas.size());
  EXPECT_EQ(after.added.size(), after.replicas.size());
  // Load falls: the re-plan keeps running replicas and stops the surplus, starts none.
  p.workload.rps = 2.0;
  const Placement smaller = replan(p, after);
  ASSERT_TRUE(smaller.feasible);
  EXPECT_TRUE(smaller.added.empty());
  EXPECT_LT(smaller.replicas.size(), after.replicas.size());
  EXPECT_EQ(smaller.removed.size(), after.replicas.size() - smaller.replicas.size());
}

TEST(Placement, ExhaustiveRefusesLargePools) {
  PlacementProblem p;
  for (int i = 0; i < 17; ++i) p.devices.push_back(dev(std::to_string(i), "v", 1, 1000, 50, 100));
  EXPECT_THROW(place_exhaustive(p), Error);
  p.excluded_ids = {"0"};
  EXPECT_NO_THROW(place_exhaustive(p));
}

TEST(Placement, ProblemFromPoolFileAndProbe) {
  const PoolSpec spec = parse_pool_spec(R"(
devices:
  - {id: a, device: cpu, price_per_hour: 0.5, labels: {vendor: intel}}
  - {id: b, device: "opencl:0", price_per_hour: 1, memory_gb: 8}
policy: {exclude_vendors: [opencl], slo: {ttft_ms: 900}}
replicas: 2
)",
                                        "p.yaml");
  ProbeResults probe;
  probe["a"] = {300, 25, 90, 4, "", "m", "cpu"};
  const PlacementProblem p = make_problem(spec, probe, {2, 100, 50});
  ASSERT_EQ(p.devices.size(), 2u);
  EXPECT_EQ(p.devices[0].vendor, "intel");
  EXPECT_DOUBLE_EQ(p.devices[0].decode_tps_batched, 90);
  EXPECT_DOUBLE_EQ(p.devices[1].prefill_tps, 0);  // not probed: defaults apply in the estimate
  EXPECT_DOUBLE_EQ(p.devices[1].memory_gb, 8);
  EXPECT_TRUE(p.excluded_vendors.contains("opencl"));
  EXPECT_EQ(p.options.min_replicas, 2);
  EXPECT_DOUBLE_EQ(p.slo.ttft_ms, 900);
  EXPECT_DOUBLE_EQ(estimate_replica({&p.devices[1]}, p).prefill_tps, kDefaultPrefillTps);
}

}  // namespace
}  // namespace luzao::pool
