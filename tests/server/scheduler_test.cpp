// Continuous batching: concurrent requests give exactly the tokens each gives alone through
// Session (the single-sequence loop), with chunked prefill and prefix reuse; queueing, stop
// strings, cancellation and bad requests.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/engine.h"
#include "runtime/scheduler.h"
#include "served_model.h"
#include "served_requests.h"

namespace luzao {
namespace {

using testing::collect;
using testing::Outcome;

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = new std::filesystem::path(testing::write_served_model("sched"));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove(*path_);
    delete path_;
  }

  std::unique_ptr<Engine> engine(int max_sequences, int batch = 64) {
    EngineOptions o;
    o.model_path = *path_;
    o.device = "cpu";
    o.threads = 2;
    o.ctx_size = 128;
    o.max_sequences = max_sequences;
    o.max_batch_tokens = batch;
    return std::make_unique<Engine>(o);
  }

  static std::vector<int32_t> prompt(int n, int salt) { return testing::salted_prompt(n, salt); }

  // The reference: Session::generate on a fresh engine, greedy.
  std::string alone(const std::vector<int32_t>& p, int max_tokens) {
    auto e = engine(1);
    Session s(*e);
    GenerateOptions g;
    g.max_tokens = max_tokens;
    g.sampling.temperature = 0;
    std::string text;
    s.generate(p, g, [&](int32_t, std::string_view piece) {
      text += piece;
      return true;
    });
    return text;
  }

  static GenerationRequest greedy(std::vector<int32_t> p, int max_tokens) {
    GenerationRequest r;
    r.prompt = std::move(p);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    return r;
  }

  static std::filesystem::path* path_;
};
std::filesystem::path* SchedulerTest::path_ = nullptr;

TEST_F(SchedulerTest, ConcurrentGreedyRequestsMatchSessionRunsAlone) {
  constexpr int kRequests = 6, kTokens = 12;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < kRequests; ++i) prompts.push_back(prompt(5 + 9 * i, i));
  auto e = engine(4);
  SchedulerOptions so;
  so.max_sequences = 4;   // two requests queue and join later
  so.prefill_chunk = 16;  // the longer prompts take several steps
  so.prefix_cache = false;
  Scheduler sched(*e, so);
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (const auto& p : prompts) streams.push_back(sched.submit(greedy(p, kTokens)));
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_NE(streams[i], nullptr);
    const Outcome got = collect(*streams[i]);
    EXPECT_EQ(got.text, alone(prompts[i], kTokens)) << "request " << i;
    EXPECT_EQ(got.last.prompt_tokens, static_cast<int32_t>(prompts[i].size()));
    EXPECT_GT(got.last.completion_tokens, 0);
    EXPECT_LE(got.last.completion_tokens, kTokens);
    if (got.last.completion_tokens < kTokens) {
      EXPECT_EQ(got.last.reason, FinishReason::kStop);  // ended by the end-of-generation token
    } else {
      EXPECT_EQ(got.last.reason, FinishReason::kLength);
    }
  }
  const SchedulerStats st = sched.stats();
  EXPECT_GT(st.steps, 0u);
  // Batching: fewer steps than the requests would take one after another.
  EXPECT_LT(st.steps, static_cast<uint64_t>(kRequests * kTokens));
}

TEST_F(SchedulerTest, SharedPrefixIsReusedAndChangesNothing) {
  const auto p = prompt(50, 3);  // three full pages of 16 tokens, then 2
  const std::string expected = alone(p, 8);
  auto e = engine(2);
  Scheduler sched(
      *e, SchedulerOptions{
              .max_sequences = 2, .max_queue = 8, .prefill_chunk = 64, .prefix_cache = true});
  const Outcome first = collect(*sched.submit(greedy(p, 8)));
  const Outcome second = collect(*sched.submit(greedy(p, 8)));
  EXPECT_EQ(first.text, expected);
  EXPECT_EQ(second.text, expected);
  EXPECT_EQ(first.last.cached_tokens, 0);
  EXPECT_EQ(second.last.cached_tokens, 48);
  auto longer = p;
  longer.push_back(42);
  longer.push_back(43);
  const Outcome third = collect(*sched.submit(greedy(longer, 8)));
  EXPECT_EQ(third.last.cached_tokens, 48);
  EXPECT_EQ(third.text, alone(longer, 8));
  EXPECT_EQ(sched.stats().cached_prompt_tokens, 96u);
}

TEST_F(SchedulerTest, StopStringEndsTheTextBeforeIt) {
  const auto p = prompt(9, 5);
  const std::string full = alone(p, 16);
  ASSERT_GE(full.size(), 6u);
  const std::string stop = full.substr(3, 2);
  auto e = engine(1);
  Scheduler sched(*e, SchedulerOptions{.max_sequences = 1});
  auto r = greedy(p, 16);
  r.stop = {"never-there", stop};
  const Outcome got = collect(*sched.submit(r));
  EXPECT_EQ(got.text, full.substr(0, full.find(stop)));
  EXPECT_EQ(got.last.reason, FinishReason::kStop);
}

TEST_F(SchedulerTest, SeededSamplingRepeats) {
  const auto p = prompt(7, 1);
  auto e = engine(2);
  Scheduler sched(*e, SchedulerOptions{.max_sequences = 2});
  GenerationRequest r;
  r.prompt = p;
  r.max_tokens = 10;
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 1234;
  auto a = sched.submit(r);
  auto b = sched.submit(r);
  r.sampling.seed = 99;
  const std::string other = collect(*sched.submit(r)).text;
  const std::string ta = collect(*a).text, tb = collect(*b).text;
  EXPECT_EQ(ta, tb);
  EXPECT_FALSE(ta.empty());
  (void)other;  // may coincide by chance; the repeat is what is asserted
}

TEST_F(SchedulerTest, QueueLimitRefusesAndCancelFrees) {
  auto e = engine(1);
  Scheduler sched(*e, SchedulerOptions{.max_sequences = 1, .max_queue = 1});
  const auto p = prompt(6, 2);
  std::vector<std::shared_ptr<GenerationStream>> got;
  int refused = 0;
  for (int i = 0; i < 3; ++i) {
    auto s = sched.submit(greedy(p, 1000));  // runs until the context is full unless cancelled
    if (s)
      got.push_back(s);
    else
      ++refused;
  }
  EXPECT_GE(refused, 1);
  EXPECT_LE(got.size(), 2u);
  for (auto& s : got) s->cancel();
  for (auto& s : got) {
    const Outcome o = collect(*s);
    EXPECT_TRUE(o.last.reason == FinishReason::kCancelled || o.last.reason == FinishReason::kStop ||
                o.last.reason == FinishReason::kLength);
  }
  // Capacity is back: a new request runs to the end.
  const Outcome after = collect(*sched.submit(greedy(p, 3)));
  EXPECT_TRUE(after.last.reason == FinishReason::kLength ||
              after.last.reason == FinishReason::kStop);
  EXPECT_EQ(e->kv_cache().free_pages(), e->kv_cache().total_pages());
}

TEST_F(SchedulerTest, LongGenerationStopsAtTheContext) {
  auto e = engine(1);
  Scheduler sched(*e, SchedulerOptions{.max_sequences = 1});
  const Outcome o = collect(*sched.submit(greedy(prompt(120, 4), 1000)));
  EXPECT_LE(o.last.prompt_tokens + o.last.completion_tokens, 128);
}

TEST_F(SchedulerTest, BadRequestsAreRefusedWithReasons) {
  auto e = engine(1);
  Scheduler sched(*e, SchedulerOptions{.max_sequences = 1});
  EXPECT_THROW(sched.submit(greedy({}, 4)), Error);
  EXPECT_THROW(sched.submit(greedy({1, 5000}, 4)), Error);
  EXPECT_THROW(sched.submit(greedy(prompt(129, 0), 4)), Error);
  auto bad = greedy({1, 5}, 4);
  bad.sampling.top_p = -1.0f;
  EXPECT_THROW(sched.submit(bad), Error);
  const Outcome zero = collect(*sched.submit(greedy({1, 5}, 0)));
  EXPECT_EQ(zero.last.completion_tokens, 0);
  EXPECT_EQ(zero.last.reason, FinishReason::kLength);
}

}  // namespace
}  // namespace luzao
