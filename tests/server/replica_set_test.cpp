// Failover: a scheduler's requests evacuated mid-generation continue on another exactly (greedy
// and seeded), and the replica set routes, drains, embargoes, fails over on a backend error or a
// hung step (watchdog), refuses to withdraw its last replica, and restores a drained one.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "runtime/engine.h"
#include "runtime/scheduler.h"
#include "served_model.h"
#include "served_requests.h"
#include "server/replica_set.h"

namespace luzao::server {
namespace {

using namespace std::chrono_literals;
using luzao::testing::collect;
using luzao::testing::Outcome;

class ReplicaSetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = new std::filesystem::path(luzao::testing::write_served_model("replicas"));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove(*path_);
    delete path_;
  }

  static EngineOptions engine_options(int max_sequences = 4) {
    return luzao::testing::served_engine_options(*path_, max_sequences);
  }

  static ReplicaSetOptions set_options(int max_sequences = 4) {
    ReplicaSetOptions o;
    o.engine = engine_options(max_sequences);
    o.scheduler.max_sequences = max_sequences;
    o.scheduler.prefill_chunk = 16;
    o.watchdog = 0ms;
    return o;
  }

  static GenerationRequest request(int salt, int max_tokens, float temperature = 0) {
    return luzao::testing::salted_request(salt, max_tokens, temperature);
  }

  // The undisturbed outcome of each request, one scheduler, nothing withdrawn.
  static std::vector<std::string> undisturbed(const std::vector<GenerationRequest>& requests) {
    return luzao::testing::undisturbed(engine_options(), requests);
  }

  static std::filesystem::path* path_;
};
std::filesystem::path* ReplicaSetTest::path_ = nullptr;

// A backend error in the 4th step of scheduler A moves everything (running with its sampler
// state, and queued) to B; greedy and seeded texts are those of an undisturbed run.
TEST_F(ReplicaSetTest, EvacuatedRequestsContinueExactlyOnAnotherScheduler) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 6; ++i) requests.push_back(request(i, 20, i % 2 == 0 ? 0.0f : 0.9f));
  requests[2].stop = {"w2"};  // a stop string may straddle the move
  const std::vector<std::string> expected = undisturbed(requests);

  Engine ea(engine_options()), eb(engine_options());
  Scheduler b(eb, SchedulerOptions{.max_sequences = 4});
  Scheduler* a_ptr = nullptr;
  std::atomic<int> steps{0};
  std::atomic<int> moved{0};
  std::atomic<bool> submitted{false};
  SchedulerOptions ao{.max_sequences = 4};
  ao.before_decode = [&] {
    // No step before every request is in: on a busy machine A could otherwise reach its fault
    // (and refuse the rest) while the test is still submitting.
    while (!submitted.load()) std::this_thread::yield();
    if (++steps == 4) throw Error(ErrorKind::kIo, "injected: device lost");
  };
  ao.on_fault = [&](const std::string& error) {
    EXPECT_NE(error.find("injected"), std::string::npos) << error;
    for (Migrant& m : a_ptr->evacuate()) {
      EXPECT_TRUE(b.resume(m));
      ++moved;
    }
  };
  Scheduler a(ea, ao);
  a_ptr = &a;
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (const auto& r : requests) streams.push_back(a.submit(r));
  submitted = true;
  for (size_t i = 0; i < streams.size(); ++i) {
    const Outcome o = collect(*streams[i]);
    EXPECT_EQ(o.text, expected[i]) << "request " << i;
    EXPECT_NE(o.last.reason, FinishReason::kError) << o.last.error;
    EXPECT_EQ(o.last.moves, 1) << "request " << i;
  }
  EXPECT_EQ(moved.load(), 6);
  const SchedulerStats sa = a.stats(), sb = b.stats();
  EXPECT_TRUE(sa.withdrawn);
  EXPECT_EQ(sa.evacuated, 6u);
  EXPECT_EQ(sb.resumed, 6u);
  EXPECT_GT(sa.generated_tokens, 0u);           // some tokens came from A before the move
  EXPECT_EQ(a.submit(request(9, 4)), nullptr);  // an evacuated scheduler takes nothing new
}

TEST_F(ReplicaSetTest, RoutesAcrossReplicasAndDrainMovesRequests) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 8; ++i) requests.push_back(request(i, 40));
  const std::vector<std::string> expected = undisturbed(requests);

  // Slow steps so that the drain lands mid-generation.
  auto slow = [] { std::this_thread::sleep_for(2ms); };
  ReplicaSet set({{"a", "cpu", "acme", 2.0, slow}, {"b", "cpu", "zenith", 1.0, slow}},
                 set_options());
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (size_t i = 0; i < requests.size(); ++i) {
    SubmitResult r = set.submit(requests[i], 0);
    ASSERT_NE(r.stream, nullptr) << r.refusal;
    streams.push_back(r.stream);
  }
  const auto before = set.report();
  EXPECT_GT(before[0].routed, 0u);
  EXPECT_GT(before[1].routed, 0u);
  GenerationUpdate first;
  ASSERT_TRUE(streams[0]->wait(first, 30000ms));  // generation has begun
  EXPECT_EQ(set.drain("nope", false), WithdrawStatus::kUnknown);
  EXPECT_EQ(set.drain("a", false), WithdrawStatus::kDone);
  EXPECT_EQ(set.drain("a", false), WithdrawStatus::kNotServing);
  std::string text0 = first.text;
  for (size_t i = 0; i < streams.size(); ++i) {
    Outcome o = collect(*streams[i]);
    if (i == 0) o.text = text0 + o.text;
    EXPECT_EQ(o.text, expected[i]) << "request " << i;
    EXPECT_TRUE(o.last.reason == FinishReason::kLength || o.last.reason == FinishReason::kStop)
        << o.last.error;
  }
  EXPECT_GT(set.migrations(), 0u);
  EXPECT_EQ(set.lost_requests(), 0u);
  EXPECT_EQ(set.resume_delays().size(), set.migrations());
  const auto after = set.report();
  EXPECT_EQ(after[0].health, ReplicaHealth::kDrained);
  EXPECT_EQ(after[0].stats.evacuated, set.migrations());
  EXPECT_EQ(after[1].stats.resumed, set.migrations());
  // New requests avoid the drained replica; the last one cannot be drained without force.
  EXPECT_NE(set.submit(request(20, 2), 0).stream, nullptr);
  EXPECT_EQ(set.report()[0].routed, before[0].routed);
  EXPECT_EQ(set.drain("b", false), WithdrawStatus::kLastReplica);
  // Restored, it serves again.
  EXPECT_EQ(set.restore("a"), WithdrawStatus::kDone);
  EXPECT_EQ(set.report()[0].health, ReplicaHealth::kServing);
  EXPECT_NE(set.submit(request(21, 2), 0).stream, nullptr);
}

TEST_F(ReplicaSetTest, BackendErrorFailsTheReplicaAndItsRequestsMove) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 6; ++i) requests.push_back(request(i, 16, i % 2 ? 0.7f : 0.0f));
  const std::vector<std::string> expected = undisturbed(requests);
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto flaky = [calls] {
    if (++*calls >= 3) throw Error(ErrorKind::kIo, "flaky:0: matmul: injected device failure");
  };
  ReplicaSet set({{"flaky", "cpu", "acme", 1.0, flaky}, {"steady", "cpu", "zenith", 1.0, {}}},
                 set_options(2));
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (const auto& r : requests) streams.push_back(set.submit(r, 0).stream);
  for (size_t i = 0; i < streams.size(); ++i) {
    ASSERT_NE(streams[i], nullptr);
    const Outcome o = collect(*streams[i]);
    EXPECT_EQ(o.text, expected[i]) << "request " << i;
  }
  const auto rep = set.report();
  EXPECT_EQ(rep[0].health, ReplicaHealth::kFailed);
  EXPECT_NE(rep[0].reason.find("injected device failure"), std::string::npos) << rep[0].reason;
  EXPECT_GT(set.migrations(), 0u);
  EXPECT_EQ(rep[0].stats.errors, 0u);  // nothing ended in an error
}

TEST_F(ReplicaSetTest, WatchdogFailsAHungReplica) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 4; ++i) requests.push_back(request(i, 12));
  const std::vector<std::string> expected = undisturbed(requests);
  struct Gate {
    std::mutex m;
    std::condition_variable cv;
    bool open = false;
    std::atomic<int> calls{0};
  };
  auto gate = std::make_shared<Gate>();
  auto hang = [gate] {
    if (++gate->calls < 3) return;
    std::unique_lock lock(gate->m);
    gate->cv.wait(lock, [&] { return gate->open; });
  };
  ReplicaSetOptions o = set_options();
  o.watchdog = 300ms;
  o.watchdog_period = 20ms;
  {
    ReplicaSet set({{"hung", "cpu", "acme", 1.0, hang}, {"ok", "cpu", "zenith", 1.0, {}}}, o);
    std::vector<std::shared_ptr<GenerationStream>> streams;
    for (const auto& r : requests) streams.push_back(set.submit(r, 0).stream);
    for (size_t i = 0; i < streams.size(); ++i) {
      const Outcome out = collect(*streams[i]);
      EXPECT_EQ(out.text, expected[i]) << "request " << i;
    }
    const auto rep = set.report();
    EXPECT_EQ(rep[0].health, ReplicaHealth::kFailed);
    EXPECT_NE(rep[0].reason.find("no progress"), std::string::npos) << rep[0].reason;
    EXPECT_GT(set.migrations(), 0u);
    {
      std::lock_guard lock(gate->m);
      gate->open = true;  // the device comes back: its thread can end before teardown
    }
    gate->cv.notify_all();
  }
}

TEST_F(ReplicaSetTest, EmbargoOfTheLastVendorNeedsForceAndThenFailsClearly) {
  ReplicaSet set({{"a", "cpu", "Acme", 1.0, {}}, {"b", "cpu", "acme", 1.0, {}}}, set_options(1));
  std::vector<std::string> out;
  EXPECT_EQ(set.embargo("ACME", false, out), WithdrawStatus::kLastReplica);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(set.report()[0].health, ReplicaHealth::kServing);
  EXPECT_EQ(set.embargo("nobody", false, out), WithdrawStatus::kDone);  // nothing to withdraw
  EXPECT_TRUE(out.empty());
  // Queued requests (one slot per replica) are not lost silently: they fail with a clear error.
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (int i = 0; i < 4; ++i) streams.push_back(set.submit(request(i, 60), 0).stream);
  EXPECT_EQ(set.embargo("acme", true, out), WithdrawStatus::kDone);
  EXPECT_EQ(out, (std::vector<std::string>{"a", "b"}));
  for (auto& s : streams) {
    const Outcome o = collect(*s);
    if (o.last.reason == FinishReason::kError) {
      EXPECT_NE(o.last.error.find("no other device is serving"), std::string::npos) << o.last.error;
    } else {
      EXPECT_EQ(o.last.reason, FinishReason::kLength);  // finished before the embargo
    }
  }
  const SubmitResult refused = set.submit(request(9, 4), 0);
  EXPECT_EQ(refused.stream, nullptr);
  EXPECT_FALSE(refused.busy);
  EXPECT_NE(refused.refusal.find("no device is serving"), std::string::npos);
  EXPECT_EQ(set.restore("a"), WithdrawStatus::kNotServing);  // its vendor is embargoed
  EXPECT_EQ(set.restore("zzz"), WithdrawStatus::kUnknown);
  // Both stay embargoed, the one that had no device too (it is a policy, not an action).
  EXPECT_EQ(set.embargoed_vendors(), (std::vector<std::string>{"nobody", "acme"}));
}

TEST(ReplicaSetSpecs, DuplicateIdsAndMissingDevicesAreRefused) {
  ReplicaSetOptions o;
  o.engine.model_path = "/nonexistent/model.gguf";
  EXPECT_THROW(ReplicaSet({}, o), Error);
  EXPECT_THROW(ReplicaSet({{"x", "cpu", "v", 0, {}}, {"x", "cpu", "v", 0, {}}}, o), Error);
  try {
    ReplicaSet({{"x", "cpu", "v", 0, {}}}, o);
    FAIL() << "no error for a missing model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("replica 'x'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace luzao::server
