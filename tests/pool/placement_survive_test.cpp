// Placement with the survive_vendor_loss policy (spare capacity across vendors): the heuristic
// against exhaustive search, every feasible placement re-checked with each vendor withdrawn, the
// single-vendor case, and unchanged results when the policy is off.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "pool_test_util.h"

#include "core/error.h"
#include "pool/placement.h"

namespace luzao::pool {
namespace {

using test::dev;

using test::random_problem;  // placement_test.cpp's pools (another seed here)

// FNV-1a over a placement's observable result.
void mix(uint64_t& h, const std::string& s) {
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  h = (h ^ 0xff) * 1099511628211ull;
}
void mix(uint64_t& h, const Placement& pl) {
  mix(h, fmt::format("{}|{}|{:.9g}|{:.9g}|{:.9g}", pl.feasible, pl.reason, pl.cost_per_hour,
                     pl.capacity_rps, pl.cost_per_million_tokens));
  for (const PlannedReplica& r : pl.replicas) mix(h, fmt::format("{}:{:.9g}", r.id(), r.load_rps));
  for (const std::string& a : pl.added) mix(h, "+" + a);
  for (const std::string& r : pl.removed) mix(h, "-" + r);
}

// With the policy absent, place(), place_exhaustive() and replan() return exactly what they did
// before the policy existed: the fingerprint below was computed by this very test against the
// placement code of the commit before survive_vendor_loss was added.
TEST(PlacementSurvive, PolicyOffResultsUnchanged) {
  std::mt19937 rng(424242);
  uint64_t h = 14695981039346656037ull;
  for (int trial = 0; trial < 300; ++trial) {
    PlacementProblem p = random_problem(rng);
    if (trial % 3 == 0) {
      p.options.allow_splits = true;
      p.options.model_memory_gb = 20;
      for (size_t i = 0; i < p.devices.size(); ++i) p.devices[i].memory_gb = 8.0 + 4.0 * (i % 4);
    }
    const Placement heur = place(p);
    mix(h, heur);
    mix(h, place_exhaustive(p));
    PlacementProblem q = p;
    q.excluded_vendors.insert(p.devices[0].vendor);
    q.workload.rps *= 0.7;
    mix(h, replan(q, heur));
  }
  std::printf("policy-off fingerprint %016llx\n", static_cast<unsigned long long>(h));
  EXPECT_EQ(h, 0x7622036d38db20c4ull);
}

// Independent check: with vendor `v` withdrawn, the replicas without a device of `v` (looked up
// in the problem's devices, not in the replicas' own vendor lists) carry the whole load within
// the SLO on their own.
void expect_survives_each_vendor(const Placement& pl, const PlacementProblem& p,
                                 const std::string& what) {
  std::map<std::string, std::string> vendor_of;
  for (const PlacementDevice& d : p.devices) vendor_of[d.id] = d.vendor;
  std::set<std::string> vendors;
  for (const PlannedReplica& r : pl.replicas) {
    for (const std::string& id : r.device_ids) vendors.insert(vendor_of.at(id));
  }
  for (const std::string& v : vendors) {
    PlacementProblem q = p;
    q.options.survive_vendor_loss = false;
    q.options.min_replicas = 1;
    q.excluded_vendors.insert(v);
    std::vector<PlannedReplica> left;
    for (const PlannedReplica& r : pl.replicas) {
      bool hit = false;
      for (const std::string& id : r.device_ids) hit = hit || vendor_of.at(id) == v;
      if (!hit) left.push_back(r);
    }
    const Placement after = finish_placement(left, q);
    EXPECT_TRUE(after.feasible) << what << ": without vendor " << v << ": " << after.reason;
    for (const PlannedReplica& r : after.replicas) {
      if (p.slo.ttft_ms > 0) {
        EXPECT_LE(r.ttft_ms, p.slo.ttft_ms * (1 + 1e-9)) << what;
      }
      if (p.slo.tpot_ms > 0) {
        EXPECT_LE(r.tpot_ms, p.slo.tpot_ms * (1 + 1e-9)) << what;
      }
    }
  }
}

// Random small pools with the policy on: the heuristic costs within 5% of the exhaustive
// optimum, is feasible exactly when the optimum is, and every feasible placement (heuristic,
// exhaustive, and a re-plan after a withdrawal) survives the loss of each of its vendors.
TEST(PlacementSurvive, HeuristicWithinFivePercentAndSurvivesEachVendor) {
  std::mt19937 rng(20261129);
  int feasible_cases = 0, exact = 0, replans = 0;
  double worst = 1;
  for (int trial = 0; trial < 600; ++trial) {
    PlacementProblem p = random_problem(rng);
    if (trial % 4 == 0) {  // layer splits, some of them across vendors
      p.options.allow_splits = true;
      p.options.model_memory_gb = 20;
      for (size_t i = 0; i < p.devices.size(); ++i) p.devices[i].memory_gb = 8.0 + 6.0 * (i % 3);
    }
    p.workload.rps *= 0.5;  // spare capacity needs about twice the devices: keep many feasible
    const Placement plain = place_exhaustive(p);
    p.options.survive_vendor_loss = true;
    const std::string what = fmt::format("trial {}", trial);
    const Placement best = place_exhaustive(p);
    const Placement heur = place(p);
    if (!best.feasible) {
      EXPECT_FALSE(heur.feasible) << what;
      EXPECT_NE(heur.reason, "") << what;
      continue;
    }
    ++feasible_cases;
    ASSERT_TRUE(plain.feasible) << what;  // the policy only adds a condition
    EXPECT_GE(best.cost_per_hour, plain.cost_per_hour - 1e-9) << what;
    ASSERT_TRUE(heur.feasible) << what << ": " << heur.reason;
    expect_survives_each_vendor(best, p, what + " exhaustive");
    expect_survives_each_vendor(heur, p, what + " heuristic");
    EXPECT_GE(heur.cost_per_hour, best.cost_per_hour - 1e-9) << what;
    EXPECT_LE(heur.cost_per_hour, best.cost_per_hour * 1.05 + 1e-12) << what;
    const double ratio = best.cost_per_hour > 0 ? heur.cost_per_hour / best.cost_per_hour : 1;
    worst = std::max(worst, ratio);
    exact += ratio < 1 + 1e-9;
    // Withdraw the vendor with the most replicas; the re-plan, when feasible, survives again.
    std::map<std::string, int> per_vendor;
    for (const PlannedReplica& r : heur.replicas) ++per_vendor[r.vendor];
    PlacementProblem q = p;
    q.excluded_vendors.insert(
        std::max_element(per_vendor.begin(), per_vendor.end(), [](auto& a, auto& b) {
          return a.second < b.second;
        })->first);
    const Placement again = replan(q, heur);
    for (const PlannedReplica& r : again.replicas) {
      EXPECT_FALSE(q.excluded_vendors.contains(r.vendor)) << what;
    }
    if (again.feasible) {
      ++replans;
      expect_survives_each_vendor(again, q, what + " replan");
    }
  }
  EXPECT_GT(feasible_cases, 100);
  std::printf(
      "survive_vendor_loss: %d feasible random pools, heuristic optimal in %d, worst ratio %.4f, "
      "%d feasible re-plans\n",
      feasible_cases, exact, worst, replans);
}

// Three vendors whose devices each take exactly 1 request/s (service 80/100 s at 0.8).
PlacementProblem three_vendor_problem() {
  PlacementProblem p;
  p.workload = {2.0, 0, 80};
  for (int i = 0; i < 3; ++i) {
    p.devices.push_back(dev("nv" + std::to_string(i), "nv", 1.0, 1000, 100, 100));
    p.devices.push_back(dev("hw" + std::to_string(i), "hw", 2.0, 1000, 100, 100));
    p.devices.push_back(dev("cb" + std::to_string(i), "cb", 1.5, 1000, 100, 100));
  }
  return p;
}

TEST(PlacementSurvive, HandComputedSpareCapacity) {
  PlacementProblem p = three_vendor_problem();
  EXPECT_NEAR(estimate_replica({&p.devices[0]}, p).max_rps, 1.0, 1e-12);
  const Placement cheap = place(p);
  ASSERT_TRUE(cheap.feasible);
  EXPECT_DOUBLE_EQ(cheap.cost_per_hour, 2.0);  // two nv devices
  p.options.survive_vendor_loss = true;
  // Any two vendors together must take 2 requests/s: one device of each (1 + 2 + 1.5 = 4.5)
  // beats two of nv plus two of cb (2 + 3 = 5) and every other choice.
  const Placement spare = place(p);
  ASSERT_TRUE(spare.feasible) << spare.reason;
  EXPECT_DOUBLE_EQ(spare.cost_per_hour, 4.5);
  EXPECT_DOUBLE_EQ(place_exhaustive(p).cost_per_hour, 4.5);
  expect_survives_each_vendor(spare, p, "three vendors");
  // Withdrawing nv: hw0 + cb0 still carry 2 requests/s, and the re-plan restores the spare:
  // two of hw and two of cb (2*2 + 2*1.5 = 7) keeps both running replicas and starts two.
  p.excluded_vendors = {"nv"};
  const Placement after = replan(p, spare);
  ASSERT_TRUE(after.feasible) << after.reason;
  EXPECT_DOUBLE_EQ(after.cost_per_hour, 7.0);
  EXPECT_EQ(after.added.size(), 2u);
  EXPECT_EQ(after.removed.size(), 1u);
  expect_survives_each_vendor(after, p, "after nv");
  // Withdrawing hw as well leaves one vendor: infeasible, and the reason names it.
  p.excluded_vendors = {"nv", "hw"};
  const Placement one = replan(p, after);
  EXPECT_FALSE(one.feasible);
  EXPECT_NE(one.reason.find("vendor 'cb' is not covered"), std::string::npos) << one.reason;
}

TEST(PlacementSurvive, SingleVendorPoolIsInfeasibleWithAClearReason) {
  PlacementProblem p;
  p.workload = {1.0, 100, 50};
  for (int i = 0; i < 4; ++i)
    p.devices.push_back(dev("g" + std::to_string(i), "nv", 1, 4000, 60, 400));
  const Placement plain = place(p);
  ASSERT_TRUE(plain.feasible);
  p.options.survive_vendor_loss = true;
  const std::string why =
      "survive_vendor_loss: the loss of vendor 'nv' is not covered: no replica of another vendor "
      "(every replica has a 'nv' device)";
  const Placement ex = place_exhaustive(p);
  EXPECT_FALSE(ex.feasible);
  EXPECT_EQ(ex.reason, why);
  // place() and replan() fall back to the placement for the load alone, still infeasible.
  for (const Placement& pl : {place(p), replan(p, plain)}) {
    EXPECT_FALSE(pl.feasible);
    EXPECT_EQ(pl.reason, why + "; placed for the load alone, without spare capacity");
    EXPECT_DOUBLE_EQ(pl.cost_per_hour, plain.cost_per_hour);
    EXPECT_EQ(pl.replicas.size(), plain.replicas.size());
  }
  // A second vendor too small to carry the load alone: the reason gives its capacity.
  p.devices.push_back(dev("small", "hw", 1, 500, 10, 20));
  const Placement pl = place(p);
  EXPECT_FALSE(pl.feasible);
  EXPECT_NE(pl.reason.find("the loss of vendor 'nv' is not covered: the other vendors' 1 replicas "
                           "carry"),
            std::string::npos)
      << pl.reason;
  EXPECT_EQ(worst_vendor_loss(pl.replicas).vendor, "nv");
}

TEST(PlacementSurvive, PoolFilePolicyKey) {
  const char* text = R"(
devices:
  - {id: a, device: cpu, price_per_hour: 1, labels: {vendor: intel}}
  - {id: b, device: "opencl:0", price_per_hour: 1}
policy: {survive_vendor_loss: true}
)";
  const PoolSpec spec = parse_pool_spec(text, "p.yaml");
  EXPECT_TRUE(spec.policy.survive_vendor_loss);
  EXPECT_TRUE(make_problem(spec, {}, {}).options.survive_vendor_loss);
  EXPECT_FALSE(
      make_problem(parse_pool_spec("devices: [{id: a, device: cpu, price_per_hour: 1}]", "q.yaml"),
                   {}, {})
          .options.survive_vendor_loss);
  try {
    parse_pool_spec(
        "devices: [{id: a, device: cpu, price_per_hour: 1}]\n"
        "policy: {survive_vendor_loss: maybe}\n",
        "p.yaml");
    FAIL() << "accepted survive_vendor_loss: maybe";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "p.yaml: policy.survive_vendor_loss: expected true or false, found "
                 "'maybe'");
  }
}

}  // namespace
}  // namespace luzao::pool
