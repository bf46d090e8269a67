// Simulator: hand-computed latencies on one device, a withdrawal that moves every request and
// loses none, the trace file format and a large pool in a reasonable time.
#include "pool/simulator.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "pool_test_util.h"

#include "core/error.h"

namespace luzao::pool {
namespace {

using test::dev;

TEST(Simulator, OneDeviceHandComputedLatencies) {
  SimConfig c;
  c.devices = {dev("a", "v", 36.0, 1000, 10, 10)};
  c.parallel = {1};
  // Request 0 at t=0: prefill 100 tokens = 0.1 s (first token), then 4 decode steps of 0.1 s:
  // done at 0.5 s. Request 1 at t=0.2 waits (one sequence at a time): prefill 0.5..0.55,
  // then 1 decode step: done 0.65 s.
  c.requests = {{0.0, 100, 5, 0}, {0.2, 50, 2, 0}};
  c.plan_for = Workload{0.1, 75, 3.5};
  const SimReport r = simulate(c);
  ASSERT_EQ(r.initial.replicas.size(), 1u);
  EXPECT_EQ(r.all.requests, 2);
  EXPECT_EQ(r.all.completed, 2);
  EXPECT_EQ(r.all.lost, 0);
  EXPECT_EQ(r.all.generated_tokens, 7);
  EXPECT_NEAR(r.end_s, 0.65, 1e-12);
  // TTFTs 100 and 350 ms; TPOTs 100 and 100 ms. Nearest-rank p50 of two values is the lower.
  EXPECT_NEAR(r.all.ttft_p50_ms, 100, 1e-9);
  EXPECT_NEAR(r.all.ttft_p99_ms, 350, 1e-9);
  EXPECT_NEAR(r.all.tpot_p50_ms, 100, 1e-9);
  EXPECT_NEAR(r.all.tpot_p99_ms, 100, 1e-9);
  // 36 $/h for 0.65 s = 0.0065 $ for 7 tokens.
  EXPECT_NEAR(r.all.cost, 0.0065, 1e-12);
  EXPECT_NEAR(r.all.cost_per_million_tokens, 0.0065 / 7 * 1e6, 1e-6);
  EXPECT_NEAR(r.all.throughput_tps, 7 / 0.65, 1e-9);
}

TEST(Simulator, BatchedDecodeStepTimesInterpolate) {
  SimConfig c;
  // parallel 2: a step of one sequence takes 1/10 s, a step of two 2/40 = 0.05 s.
  c.devices = {dev("a", "v", 1.0, 1000, 10, 40)};
  c.parallel = {2};
  // Both arrive at 0: prefill A (0..0.1, token 1), then B's prefill may not follow directly
  // (a decode step comes between prefills when something runs): decode A alone 0.1..0.2 (token 2),
  // prefill B 0.2..0.3 (token 1), then decode both: 0.3..0.35 (A 3, B 2), 0.35..0.40 (A done at
  // 4 tokens, B 3), then B alone 0.40..0.50 (B done at 4).
  c.requests = {{0.0, 100, 4, 0}, {0.0, 100, 4, 0}};
  c.plan_for = Workload{0.1, 100, 4};
  const SimReport r = simulate(c);
  EXPECT_EQ(r.all.completed, 2);
  EXPECT_NEAR(r.end_s, 0.50, 1e-12);
  EXPECT_NEAR(r.all.ttft_p99_ms, 300, 1e-9);
  EXPECT_NEAR(r.all.ttft_p50_ms, 100, 1e-9);
  // A: (0.40 - 0.10) / 3 = 100 ms; B: (0.50 - 0.30) / 3 = 66.7 ms.
  EXPECT_NEAR(r.all.tpot_p99_ms, 100, 1e-9);
  EXPECT_NEAR(r.all.tpot_p50_ms, 200.0 / 3, 1e-9);
}

TEST(Simulator, WithdrawalMovesEveryRequestAndLosesNone) {
  SimConfig c;
  for (int i = 0; i < 4; ++i) {
    c.devices.push_back(dev("cheap" + std::to_string(i), "cheapco", 1.0, 2000, 40, 320));
    c.devices.push_back(dev("dear" + std::to_string(i), "dearco", 3.0, 2000, 40, 320));
  }
  c.parallel.assign(c.devices.size(), 8);
  c.requests = poisson_trace(4, 20, 200, 60, 4, 7);
  c.withdraw_vendor = "cheapco";
  c.withdraw_at_s = 10;
  c.spinup_s = 2;
  const SimReport r = simulate(c);
  ASSERT_FALSE(r.initial.replicas.empty());
  for (const auto& p : r.initial.replicas) EXPECT_EQ(p.vendor, "cheapco");
  ASSERT_FALSE(r.replanned.replicas.empty());
  for (const auto& p : r.replanned.replicas) EXPECT_EQ(p.vendor, "dearco");
  EXPECT_EQ(r.replanned.removed.size(), r.initial.replicas.size());
  EXPECT_EQ(r.all.lost, 0);
  EXPECT_EQ(r.all.completed, r.all.requests);
  EXPECT_GT(r.all.moved, 0);  // requests were in flight at t=10 with 4 requests/s
  EXPECT_GT(r.all.reprefilled_tokens, 0);
  // Moved requests waited for the new replicas to load (2 s) before their next token.
  EXPECT_GE(r.before.move_delay_p50_ms, 2000 - 1e-6);
  EXPECT_EQ(r.before.requests + r.after.requests, r.all.requests);
  EXPECT_EQ(r.before.generated_tokens + r.after.generated_tokens, r.all.generated_tokens);
  int64_t expected_tokens = 0;
  for (const auto& q : c.requests) expected_tokens += q.output_tokens;
  EXPECT_EQ(r.all.generated_tokens, expected_tokens);  // nothing generated twice or dropped
  // After the withdrawal the dearer vendor serves: cost per token rises.
  EXPECT_GT(r.after.cost_per_million_tokens, r.before.cost_per_million_tokens);
}

TEST(Simulator, WithdrawingTheOnlyVendorLosesRequests) {
  SimConfig c;
  c.devices = {dev("a", "only", 1.0, 2000, 40, 320)};
  c.requests = poisson_trace(2, 10, 100, 30, 0, 3);
  c.withdraw_vendor = "only";
  c.withdraw_at_s = 5;
  const SimReport r = simulate(c);
  EXPECT_GT(r.all.lost, 0);
  EXPECT_EQ(r.all.completed + r.all.lost, r.all.requests);
  EXPECT_FALSE(r.replanned.feasible);
}

TEST(Simulator, PrefixAffinityKeepsGroupsTogether) {
  SimConfig c;
  for (int i = 0; i < 4; ++i)
    c.devices.push_back(dev("d" + std::to_string(i), "v", 1.0, 5000, 50, 800));
  c.options.min_replicas = 4;
  c.requests = poisson_trace(2, 30, 300, 40, 3, 11);
  const SimReport r = simulate(c);
  EXPECT_EQ(r.all.lost, 0);
  EXPECT_GT(r.affinity_hits, static_cast<int64_t>(c.requests.size()) / 2);
}

TEST(Simulator, TraceFile) {
  const auto path = std::filesystem::temp_directory_path() / "luzao_trace_test.csv";
  std::ofstream(path) << "arrival_s,prompt_tokens,output_tokens,prefix_group\n# comment\n"
                         "1.5,100,20,3\n0.5,10,2\n";
  const auto t = load_trace(path);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_DOUBLE_EQ(t[0].arrival_s, 0.5);
  EXPECT_EQ(t[0].prefix_key, 0u);
  EXPECT_EQ(t[1].prompt_tokens, 100);
  EXPECT_EQ(t[1].prefix_key, 4u);
  std::ofstream(path) << "0.5,abc,2\n";
  try {
    load_trace(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(":1: expected"), std::string::npos) << e.what();
  }
  std::ofstream(path) << "0.5,10,0\n";
  EXPECT_THROW(load_trace(path), Error);
  std::filesystem::remove(path);
}

TEST(Simulator, ThousandDevicesThreeVendors) {
  SimConfig c;
  c.devices = make_sim_devices(1000, 3, 1);
  ASSERT_EQ(c.devices.size(), 1000u);
  c.parallel.assign(1000, 32);
  c.slo = {2000, 100};
  c.requests = poisson_trace(400, 10, 256, 64, 64, 5);
  c.withdraw_vendor = "nvidia";
  c.withdraw_at_s = 5;
  const auto t0 = std::chrono::steady_clock::now();
  const SimReport r = simulate(c);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.all.lost, 0);
  EXPECT_EQ(r.all.completed, r.all.requests);
  for (const auto& p : r.replanned.replicas) EXPECT_NE(p.vendor, "nvidia");
  EXPECT_LT(secs, 60.0);  // generous: sanitizer builds on a shared machine
}

}  // namespace
}  // namespace luzao::pool
