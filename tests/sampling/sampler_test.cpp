// Tests of the sampler chain: greedy, determinism, top-k/top-p/min-p cuts, temperature, penalty.
#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"

namespace luzao {
namespace {

// Params with every filter off: a plain softmax draw at temperature 1.
SamplingParams plain(uint64_t seed = 1) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_penalty = 1.0f;
  p.seed = seed;
  return p;
}

std::vector<float> log_probs(const std::vector<double>& probs) {
  std::vector<float> logits;
  logits.reserve(probs.size());
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

std::vector<int> histogram(Sampler& sampler, const std::vector<float>& logits, int draws) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    const int32_t id = sampler.sample(logits);
    EXPECT_GE(id, 0);
    EXPECT_LT(id, static_cast<int32_t>(logits.size()));
    if (id >= 0 && id < static_cast<int32_t>(logits.size())) ++counts[static_cast<size_t>(id)];
  }
  return counts;
}

// Pearson chi-square of observed counts against expected probabilities. Tokens with expected
// probability 0 must never be drawn at all.
void expect_distribution(const std::vector<int>& counts, const std::vector<double>& expected,
                         int draws) {
  ASSERT_EQ(counts.size(), expected.size());
  double chi2 = 0.0;
  int df = -1;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (expected[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " should have been cut";
      continue;
    }
    const double e = expected[i] * draws;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++df;
  }
  // For df <= 4 the 99.9999th percentile of chi-square is below 34: a correct sampler fails this
  // about once in a million seeds, a wrong renormalisation by a few percent fails it always.
  ASSERT_LE(df, 4);
  EXPECT_LT(chi2, 34.0) << "chi-square " << chi2 << " with " << df << " degrees of freedom";
}

TEST(Sampler, GreedyPicksArgmax) {
  SamplingParams p = plain();
  p.temperature = 0.0f;
  Sampler sampler(p);
  EXPECT_EQ(sampler.sample(std::vector<float>{0.1f, 2.0f, -3.0f, 1.9f}), 1);
  EXPECT_EQ(sampler.sample(std::vector<float>{-5.0f, -4.0f, -6.0f}), 1);
  EXPECT_EQ(sampler.sample(std::vector<float>{7.0f}), 0);
}

TEST(Sampler, GreedyTieGoesToLowestId) {
  SamplingParams p = plain();
  p.temperature = -1.0f;
  Sampler sampler(p);
  EXPECT_EQ(sampler.sample(std::vector<float>{1.0f, 3.0f, 0.0f, 3.0f, 3.0f}), 1);
}

TEST(Sampler, NanLogitsNeverWin) {
  SamplingParams p = plain();
  p.temperature = 0.0f;
  Sampler greedy(p);
  EXPECT_EQ(greedy.sample(std::vector<float>{NAN, 0.5f, NAN}), 1);
  Sampler random(plain(3));
  const auto counts = histogram(random, {NAN, 0.0f, NAN, 0.0f}, 200);
  EXPECT_EQ(counts[0] + counts[2], 0);
}

TEST(Sampler, GreedyMatchesAFirstMaximumScanOnRandomLogits) {
  SamplingParams p = plain();
  p.temperature = 0.0f;
  Sampler greedy(p);
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> level(-4, 4);  // few values: many ties
  for (int trial = 0; trial < 520; ++trial) {
    // Short vocabularies, then a few of a real model's size.
    std::vector<float> logits(trial < 500 ? 1 + trial % 97 : 49152 + trial % 17);
    for (float& v : logits) v = level(rng) == 4 ? NAN : static_cast<float>(level(rng));
    int32_t want = 0;
    float best = -INFINITY;
    for (size_t i = 0; i < logits.size(); ++i) {
      if (!std::isnan(logits[i]) && logits[i] > best) {
        best = logits[i];
        want = static_cast<int32_t>(i);
      }
    }
    ASSERT_EQ(greedy.sample(logits), want) << "trial " << trial;
  }
  EXPECT_EQ(greedy.sample(std::vector<float>{NAN, -INFINITY, NAN}), 0);  // nothing to prefer
}

// The chain written out plainly over a fully sorted vocabulary, with the sampler's RNG
// conversion: the sampler, which sorts only the part of a large vocabulary it reads, must draw
// the very same tokens. Sums and walks over the whole vocabulary go in id order, over a cut best
// first.
std::vector<int32_t> best_first(const std::vector<float>& logits) {
  std::vector<int32_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  return order;
}

int32_t reference_draw(const std::vector<float>& logits, const std::vector<int32_t>& order,
                       const SamplingParams& p, std::mt19937_64& rng) {
  const double max = logits[order[0]];
  size_t keep = order.size();
  if (p.top_p < 1.0f) {
    double total = 0;
    for (float l : logits) total += std::exp(l - max);
    double cumulative = 0;
    size_t n = 0;
    while (n < keep) {
      cumulative += std::exp(logits[order[n++]] - max);
      if (cumulative >= p.top_p * total) break;
    }
    keep = n;
  }
  if (p.min_p > 0.0f) {
    size_t n = 1;
    while (n < keep && std::exp(logits[order[n]] - max) >= p.min_p) ++n;
    keep = n;
  }
  const auto w = [&](float l) { return std::exp((l - max) / p.temperature); };
  double total = 0;
  if (keep == order.size()) {
    for (float l : logits) total += w(l);
  } else {
    for (size_t i = 0; i < keep; ++i) total += w(logits[order[i]]);
  }
  const double target = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
  double cumulative = 0;
  for (size_t i = 0; i < keep; ++i) {
    // Nothing cut: the walk goes through the vocabulary in id order; after a cut, best first.
    const int32_t id = keep == order.size() ? static_cast<int32_t>(i) : order[i];
    cumulative += w(logits[id]);
    if (target < cumulative) return id;
  }
  return order[keep - 1];
}

TEST(Sampler, LargeVocabularyWithoutTopKDrawsAsAFullSortWould) {
  std::mt19937 gen(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(20000);
  for (float& l : logits) l = std::round(normal(gen) * 8) / 8;  // coarse: many exact ties
  struct Case {
    float temperature, top_p, min_p;
  };
  for (const Case c : {Case{0.7f, 0.9f, 0.0f}, Case{1.0f, 1.0f, 0.0f}, Case{1.5f, 1.0f, 0.0f},
                       Case{1.0f, 1.0f, 0.001f}, Case{0.8f, 0.5f, 0.05f}}) {
    SamplingParams p = plain(99);
    p.temperature = c.temperature;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    Sampler sampler(p);
    std::mt19937_64 rng(p.seed);
    const std::vector<int32_t> order = best_first(logits);
    for (int i = 0; i < 150; ++i) {
      ASSERT_EQ(sampler.sample(logits), reference_draw(logits, order, p, rng))
          << "draw " << i << " at T=" << c.temperature << " top_p=" << c.top_p
          << " min_p=" << c.min_p;
    }
  }
}

TEST(Sampler, SameSeedSameSequence) {
  const std::vector<float> logits = log_probs({0.2, 0.2, 0.2, 0.2, 0.2});
  Sampler a(plain(42)), b(plain(42));
  std::vector<int32_t> seq_a, seq_b;
  for (int i = 0; i < 100; ++i) {
    seq_a.push_back(a.sample(logits));
    seq_b.push_back(b.sample(logits));
  }
  EXPECT_EQ(seq_a, seq_b);
  // reset() re-seeds: the sequence starts over.
  a.reset();
  std::vector<int32_t> again;
  again.reserve(100);
  for (int i = 0; i < 100; ++i) again.push_back(a.sample(logits));
  EXPECT_EQ(again, seq_a);
}

TEST(Sampler, DifferentSeedsDiffer) {
  const std::vector<float> logits = log_probs({0.2, 0.2, 0.2, 0.2, 0.2});
  Sampler a(plain(1)), b(plain(2));
  int differences = 0;
  for (int i = 0; i < 100; ++i) differences += a.sample(logits) != b.sample(logits);
  // Independent uniform draws over 5 tokens differ 80% of the time.
  EXPECT_GT(differences, 50);
}

TEST(Sampler, TopKOneEqualsGreedy) {
  SamplingParams p = plain(7);
  p.top_k = 1;
  p.temperature = 5.0f;
  Sampler top1(p);
  SamplingParams g = plain();
  g.temperature = 0.0f;
  Sampler greedy(g);
  const std::vector<std::vector<float>> cases = {
      {0.0f, 0.1f, 0.05f}, {3.0f, -1.0f, 2.99f, 0.0f}, {1.0f, 1.0f, 0.5f}, {-2.0f, -1.0f}};
  for (const auto& logits : cases) {
    for (int i = 0; i < 20; ++i) EXPECT_EQ(top1.sample(logits), greedy.sample(logits));
  }
}

TEST(Sampler, UnfilteredDrawFollowsSoftmax) {
  const std::vector<double> probs = {0.5, 0.3, 0.15, 0.05};
  Sampler sampler(plain(11));
  const int draws = 20000;
  expect_distribution(histogram(sampler, log_probs(probs), draws), probs, draws);
}

TEST(Sampler, TopKKeepsTheBestK) {
  SamplingParams p = plain(5);
  p.top_k = 2;
  Sampler sampler(p);
  const int draws = 20000;
  // probabilities 0.1, 0.4, 0.2, 0.3 -> keep ids 1 and 3, renormalised 4/7, 3/7.
  const auto counts = histogram(sampler, log_probs({0.1, 0.4, 0.2, 0.3}), draws);
  expect_distribution(counts, {0.0, 4.0 / 7.0, 0.0, 3.0 / 7.0}, draws);
}

TEST(Sampler, TopPKeepsTheNucleus) {
  SamplingParams p = plain(9);
  p.top_p = 0.7f;
  Sampler sampler(p);
  const int draws = 20000;
  // Sorted masses 0.5, 0.25, 0.15, 0.1: 0.5 < 0.7 <= 0.75, so ids 0 and 1 survive: 2/3, 1/3.
  const auto counts = histogram(sampler, log_probs({0.5, 0.25, 0.15, 0.1}), draws);
  expect_distribution(counts, {2.0 / 3.0, 1.0 / 3.0, 0.0, 0.0}, draws);
}

TEST(Sampler, TopPKeepsAtLeastOne) {
  SamplingParams p = plain(9);
  p.top_p = 0.0f;
  Sampler sampler(p);
  const auto counts = histogram(sampler, log_probs({0.2, 0.5, 0.3}), 500);
  EXPECT_EQ(counts[1], 500);
}

TEST(Sampler, MinPCutsRelativeToTheBest) {
  SamplingParams p = plain(13);
  p.min_p = 0.2f;
  Sampler sampler(p);
  const int draws = 20000;
  // Threshold 0.2 * 0.4 = 0.08: ids 3 (0.06) and 4 (0.04) go; 0.4, 0.3, 0.2 renormalise to 4/9...
  const auto counts = histogram(sampler, log_probs({0.4, 0.3, 0.2, 0.06, 0.04}), draws);
  expect_distribution(counts, {4.0 / 9.0, 3.0 / 9.0, 2.0 / 9.0, 0.0, 0.0}, draws);
}

TEST(Sampler, TemperatureSharpensAndFlattens) {
  const std::vector<double> probs = {0.5, 0.3, 0.2};
  const int draws = 20000;
  for (const float temperature : {0.5f, 2.0f}) {
    SamplingParams p = plain(17);
    p.temperature = temperature;
    Sampler sampler(p);
    std::vector<double> expected;
    expected.reserve(probs.size());
    double total = 0.0;
    for (double q : probs) total += std::pow(q, 1.0 / temperature);
    for (double q : probs) expected.push_back(std::pow(q, 1.0 / temperature) / total);
    expect_distribution(histogram(sampler, log_probs(probs), draws), expected, draws);
  }
}

TEST(Sampler, TinyTemperatureActsGreedy) {
  SamplingParams p = plain(19);
  p.temperature = 1e-30f;
  Sampler sampler(p);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(sampler.sample(std::vector<float>{1e30f, 3e30f, 2e30f}), 1);
}

TEST(Sampler, RepetitionPenaltyChangesTheRanking) {
  SamplingParams p = plain();
  p.temperature = 0.0f;
  p.repeat_penalty = 1.5f;
  p.repeat_last_n = 2;
  Sampler sampler(p);
  const std::vector<float> logits = {3.0f, 2.5f, -1.0f, -0.5f};
  EXPECT_EQ(sampler.sample(logits), 0);
  // Token 0: 3.0 / 1.5 = 2.0 < 2.5, so token 1 now wins.
  sampler.accept(0);
  sampler.accept(0);  // repeats count once (checked by the distribution test below)
  EXPECT_EQ(sampler.sample(logits), 1);
  // Window of 2: accepting 1 and 3 pushes 0 out. 1: 2.5/1.5 = 1.667 < 3.0; 3: -0.75.
  sampler.accept(1);
  sampler.accept(3);
  EXPECT_EQ(sampler.sample(logits), 0);
  // Negative logits are multiplied: token 3 drops from -0.5 (best) to -0.75, below token 1 (-0.6).
  sampler.reset();
  sampler.accept(3);
  EXPECT_EQ(sampler.sample(std::vector<float>{-0.8f, -0.6f, -5.0f, -0.5f}), 1);  // -0.75 < -0.6
}

TEST(Sampler, PenalisedDistributionMatchesHandComputedLogits) {
  SamplingParams p = plain(23);
  p.repeat_penalty = 2.0f;
  Sampler sampler(p);
  sampler.accept(0);
  sampler.accept(2);
  sampler.accept(0);
  // 0: 1.0 / 2 = 0.5 (once, not 0.25); 2: -0.5 * 2 = -1.0; 1 unchanged at 0.0.
  const std::vector<double> penalised = {0.5, 0.0, -1.0};
  double total = 0.0;
  for (double l : penalised) total += std::exp(l);
  std::vector<double> expected;
  expected.reserve(penalised.size());
  for (double l : penalised) expected.push_back(std::exp(l) / total);
  const int draws = 20000;
  expect_distribution(histogram(sampler, {1.0f, 0.0f, -0.5f}, draws), expected, draws);
}

TEST(Sampler, OutOfRangeAcceptedTokensAreIgnored) {
  SamplingParams p = plain();
  p.temperature = 0.0f;
  p.repeat_penalty = 10.0f;
  Sampler sampler(p);
  sampler.accept(-1);
  sampler.accept(1000);
  EXPECT_EQ(sampler.sample(std::vector<float>{0.0f, 1.0f}), 1);
}

TEST(Sampler, RejectsBadParamsAndInput) {
  SamplingParams p = plain();
  p.repeat_penalty = 0.0f;
  EXPECT_THROW(Sampler{p}, Error);
  p = plain();
  p.top_p = NAN;
  EXPECT_THROW(Sampler{p}, Error);
  p = plain();
  p.temperature = NAN;
  EXPECT_THROW(Sampler{p}, Error);
  Sampler sampler(plain());
  EXPECT_THROW(sampler.sample(std::span<const float>{}), Error);
}

}  // namespace
}  // namespace luzao
