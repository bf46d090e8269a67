// split_layer_counts: how a --split divides a model's layers between devices.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"
#include "model/model.h"

namespace luzao {
namespace {

std::vector<int32_t> counts(int32_t n_layer, std::vector<double> weights) {
  return split_layer_counts(n_layer, weights);
}

TEST(SplitLayerCounts, EqualWeightsGiveEqualShares) {
  EXPECT_EQ(counts(30, {1, 1}), (std::vector<int32_t>{15, 15}));
  EXPECT_EQ(counts(30, {1, 1, 1}), (std::vector<int32_t>{10, 10, 10}));
  EXPECT_EQ(counts(2, {1, 1}), (std::vector<int32_t>{1, 1}));
  // 5 / 3: boundaries at round(5/3) = 2 and round(10/3) = 3.
  EXPECT_EQ(counts(5, {1, 1, 1}), (std::vector<int32_t>{2, 1, 2}));
  EXPECT_EQ(counts(7, {1}), (std::vector<int32_t>{7}));
}

TEST(SplitLayerCounts, RatiosSetTheBoundaries) {
  EXPECT_EQ(counts(30, {3, 1}), (std::vector<int32_t>{23, 7}));  // 22.5 rounds up
  EXPECT_EQ(counts(30, {1, 2}), (std::vector<int32_t>{10, 20}));
  EXPECT_EQ(counts(24, {0.5, 0.25, 0.25}), (std::vector<int32_t>{12, 6, 6}));
}

TEST(SplitLayerCounts, EveryPartGetsAtLeastOneLayer) {
  EXPECT_EQ(counts(2, {100, 1}), (std::vector<int32_t>{1, 1}));
  EXPECT_EQ(counts(2, {1, 100}), (std::vector<int32_t>{1, 1}));
  EXPECT_EQ(counts(4, {1, 1000, 1, 1}), (std::vector<int32_t>{1, 1, 1, 1}));
  EXPECT_EQ(counts(10, {1000, 1, 1}), (std::vector<int32_t>{8, 1, 1}));
}

TEST(SplitLayerCounts, RandomWeightsCoverEveryLayerOnce) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> w(0.01, 10);
  for (int trial = 0; trial < 200; ++trial) {
    const int32_t n_layer = 1 + static_cast<int32_t>(rng() % 64);
    const size_t parts = 1 + rng() % static_cast<size_t>(std::min(n_layer, 8));
    std::vector<double> weights(parts);
    for (double& x : weights) x = w(rng);
    const std::vector<int32_t> c = counts(n_layer, weights);
    ASSERT_EQ(c.size(), parts);
    EXPECT_EQ(std::accumulate(c.begin(), c.end(), 0), n_layer);
    for (int32_t k : c) EXPECT_GE(k, 1);
  }
}

TEST(SplitLayerCounts, BadSplitsAreErrors) {
  auto kind_of = [](int32_t n_layer, std::vector<double> weights) {
    try {
      split_layer_counts(n_layer, weights);
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::kInternal;
  };
  EXPECT_EQ(kind_of(2, {1, 1, 1}), ErrorKind::kInvalidArgument);
  EXPECT_EQ(kind_of(4, {}), ErrorKind::kInvalidArgument);
  EXPECT_EQ(kind_of(4, {1, 0}), ErrorKind::kInvalidArgument);
  EXPECT_EQ(kind_of(4, {1, -1}), ErrorKind::kInvalidArgument);
  EXPECT_EQ(kind_of(4, {1, std::nan("")}), ErrorKind::kInvalidArgument);
}

}  // namespace
}  // namespace luzao
