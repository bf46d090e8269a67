// Paged KV cache: page accounting, block tables, limits.
#include <gtest/gtest.h>

#include <set>

#include "backend/registry.h"
#include "core/error.h"
#include "runtime/kv_cache.h"

namespace luzao {
namespace {

KvCacheConfig small_config() {
  KvCacheConfig c;
  c.n_layer = 2;
  c.kv_dim = 8;
  c.page_size = 4;
  c.n_pages = 6;
  c.max_seq_len = 16;
  return c;
}

TEST(PagedKvCache, ReservesWholePagesAndMapsSlots) {
  auto device = open_device("reference");
  PagedKvCache kv(*device, small_config());
  const int32_t s = kv.open_sequence();
  kv.reserve(s, 5);
  EXPECT_EQ(kv.free_pages(), 4);
  std::set<int32_t> slots;
  for (int32_t p = 0; p < 5; ++p) slots.insert(kv.slot(s, p));
  EXPECT_EQ(slots.size(), 5u);
  // Positions within one page are consecutive rows.
  EXPECT_EQ(kv.slot(s, 1), kv.slot(s, 0) + 1);
  EXPECT_EQ(kv.slot(s, 4) % 4, 0);
  EXPECT_EQ(kv.view().layers.size(), 2u);
  EXPECT_EQ(kv.view().layers[0].k.rows, 6 * 4);
}

TEST(PagedKvCache, TruncateAndCloseReturnPages) {
  auto device = open_device("reference");
  PagedKvCache kv(*device, small_config());
  const int32_t a = kv.open_sequence();
  kv.reserve(a, 12);
  EXPECT_EQ(kv.free_pages(), 3);
  kv.truncate(a, 5);
  EXPECT_EQ(kv.free_pages(), 4);
  EXPECT_EQ(kv.block_table()[static_cast<size_t>(a) * kv.max_blocks() + 2], -1);
  kv.close_sequence(a);
  EXPECT_EQ(kv.free_pages(), 6);
  EXPECT_EQ(kv.open_sequence(), a);  // handles are reused
}

TEST(PagedKvCache, FullPoolFailsWithoutChangingState) {
  auto device = open_device("reference");
  PagedKvCache kv(*device, small_config());
  const int32_t a = kv.open_sequence(), b = kv.open_sequence();
  kv.reserve(a, 16);
  try {
    kv.reserve(b, 12);
    FAIL() << "expected out of memory";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kOutOfMemory);
  }
  EXPECT_EQ(kv.free_pages(), 2);
  kv.reserve(b, 8);
  EXPECT_EQ(kv.free_pages(), 0);
}

TEST(PagedKvCache, SequenceLongerThanContextIsRejected) {
  auto device = open_device("reference");
  PagedKvCache kv(*device, small_config());
  const int32_t a = kv.open_sequence();
  EXPECT_THROW(kv.reserve(a, 17), Error);
}

}  // namespace
}  // namespace luzao
