// Prefix sharing in the paged KV cache: published pages are attached by reference, counted, kept
// while unheld and evicted least recently used first.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "backend/registry.h"
#include "core/error.h"
#include "runtime/kv_cache.h"

namespace luzao {
namespace {

KvCacheConfig config(int32_t n_pages) {
  KvCacheConfig c;
  c.n_layer = 1;
  c.kv_dim = 4;
  c.page_size = 4;
  c.n_pages = n_pages;
  c.max_seq_len = 32;
  return c;
}

std::vector<int32_t> iota(int32_t n, int32_t first) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

TEST(KvPrefix, AttachesPublishedFullPagesBySharing) {
  auto device = open_device("reference");
  PagedKvCache kv(*device, config(8));
  const auto tokens = iota(10, 100);
  const int32_t a = kv.open_sequence();
  kv.reserve(a, 10);
  kv.publish(a, tokens);  // two full pages; the third holds 2 tokens and stays private
  const int32_t b = kv.open_sequence();
  EXPECT_EQ(kv.attach_prefix(b, tokens, 10), 8);
  EXPECT_EQ(kv.slot(b, 0), kv.slot(a, 0));
  EXPECT_EQ(kv.slot(b, 7), kv.slot(a, 7));
  EXPECT_EQ(kv.free_pages(), 5);  // shared pages are counted once
  kv.reserve(b, 10);
  EXPECT_NE(kv.slot(b, 8), kv.slot(a, 8));  // past the prefix each sequence has its own page
  EXPECT_EQ(kv.free_pages(), 4);
}

TEST(KvPrefix, MatchStopsAtTheFirstDifferentPageAndAtTheLimit) {
  auto device = open_device("reference");
  PagedKvCache kv(*device, config(8));
  const auto tokens = iota(12, 0);
  const int32_t a = kv.open_sequence();
  kv.reserve(a, 12);
  kv.publish(a, tokens);
  auto other = tokens;
  other[5] = 99;  // second page differs
  const int32_t b = kv.open_sequence();
  EXPECT_EQ(kv.attach_prefix(b, other, 12), 4);
  const int32_t c = kv.open_sequence();
  EXPECT_EQ(kv.attach_prefix(c, tokens, 11), 8);  // a page must fit within max_tokens
  const int32_t d = kv.open_sequence();
  EXPECT_EQ(kv.attach_prefix(d, std::vector<int32_t>{0, 1, 2}, 3), 0);
  // The same tokens at a later page position are a different prefix.
  const int32_t e = kv.open_sequence();
  const std::vector<int32_t> shifted = {9, 9, 9, 9, 4, 5, 6, 7};
  EXPECT_EQ(kv.attach_prefix(e, shifted, 8), 0);
}

TEST(KvPrefix, UnheldPagesStayCachedUntilTheirMemoryIsNeeded) {
  auto device = open_device("reference");
  PagedKvCache kv(*device, config(4));
  const auto tokens = iota(8, 7);
  const int32_t a = kv.open_sequence();
  kv.reserve(a, 8);
  kv.publish(a, tokens);
  kv.close_sequence(a);
  EXPECT_EQ(kv.free_pages(), 4);
  EXPECT_EQ(kv.cached_pages(), 2);
  const int32_t b = kv.open_sequence();
  EXPECT_EQ(kv.attach_prefix(b, tokens, 8), 8);  // reused after its owner closed
  EXPECT_EQ(kv.cached_pages(), 0);
  kv.close_sequence(b);
  // Taking every page evicts the cached ones; afterwards the prefix is gone.
  const int32_t c = kv.open_sequence();
  kv.reserve(c, 16);
  EXPECT_EQ(kv.free_pages(), 0);
  EXPECT_EQ(kv.cached_pages(), 0);
  kv.close_sequence(c);
  const int32_t d = kv.open_sequence();
  EXPECT_EQ(kv.attach_prefix(d, tokens, 8), 0);
}

TEST(KvPrefix, EvictionTakesTheLeastRecentlyReleasedPageFirst) {
  auto device = open_device("reference");
  PagedKvCache kv(*device, config(4));
  const auto first = iota(4, 0), second = iota(4, 50);
  for (const auto* t : {&first, &second}) {
    const int32_t s = kv.open_sequence();
    kv.reserve(s, 4);
    kv.publish(s, *t);
    kv.close_sequence(s);
  }
  const int32_t s = kv.open_sequence();
  kv.reserve(s, 12);  // two never-used pages, then one eviction: `first` (released earlier)
  const int32_t probe = kv.open_sequence();
  EXPECT_EQ(kv.attach_prefix(probe, first, 4), 0);
  EXPECT_EQ(kv.attach_prefix(probe, second, 4), 4);
}

TEST(KvPrefix, TruncatingIntoAPrivatePublishedPageUnpublishesIt) {
  auto device = open_device("reference");
  PagedKvCache kv(*device, config(8));
  const auto tokens = iota(8, 1);
  const int32_t a = kv.open_sequence();
  kv.reserve(a, 8);
  kv.publish(a, tokens);
  kv.truncate(a, 6);  // page 1 will be rewritten: it must not be found any more
  const int32_t b = kv.open_sequence();
  EXPECT_EQ(kv.attach_prefix(b, tokens, 8), 4);
}

TEST(KvPrefix, ReserveCountsCachedPagesAsFree) {
  auto device = open_device("reference");
  PagedKvCache kv(*device, config(2));
  const int32_t a = kv.open_sequence();
  kv.reserve(a, 8);
  kv.publish(a, iota(8, 0));
  kv.close_sequence(a);
  const int32_t b = kv.open_sequence();
  EXPECT_NO_THROW(kv.reserve(b, 8));
  EXPECT_THROW(kv.reserve(b, 9), Error);
}

}  // namespace
}  // namespace luzao
