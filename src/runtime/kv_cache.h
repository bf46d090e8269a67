// Paged KV memory owned by the runtime: per layer, one K pool and one V pool of fixed-size pages;
// each sequence holds a block table of page ids, so many sequences of any length share the pools.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "model/model.h"

namespace luzao {

struct KvCacheConfig {
  int32_t n_layer = 0;
  int32_t kv_dim = 0;         // n_head_kv * head_dim
  int32_t page_size = 16;     // tokens per page
  int32_t n_pages = 0;        // pages per layer pool
  int32_t max_seq_len = 0;    // longest sequence (sets the block-table width)
  DType dtype = DType::kF32;  // F32 or F16
};

// Not thread-safe; the runtime serialises access.
class PagedKvCache {
 public:
  PagedKvCache(Device& device, const KvCacheConfig& config);

  // Returns a free sequence handle (a row of the block table).
  int32_t open_sequence();
  // Frees every page of the sequence; the handle may be reused.
  void close_sequence(int32_t seq);
  // Ensures the sequence has pages for `length` tokens. Throws Error(kOutOfMemory) when the pool
  // or the per-sequence limit is exhausted; on failure nothing changes.
  void reserve(int32_t seq, int32_t length);
  // Releases pages beyond the first `length` tokens (the KV of those tokens stays valid).
  void truncate(int32_t seq, int32_t length);
  // Pool row holding token `pos` of `seq` (its pages must be reserved).
  int32_t slot(int32_t seq, int32_t pos) const;

  KvView view() const { return {layer_views_, config_.page_size}; }
  std::span<const int32_t> block_table() const { return block_table_; }
  int32_t max_blocks() const { return max_blocks_; }
  int32_t free_pages() const { return static_cast<int32_t>(free_pages_.size()); }
  int32_t total_pages() const { return config_.n_pages; }
  const KvCacheConfig& config() const { return config_; }

 private:
  KvCacheConfig config_;
  int32_t max_blocks_ = 0;
  std::vector<std::unique_ptr<Buffer>> buffers_;
  std::vector<KvLayerView> layer_views_;
  std::vector<int32_t> free_pages_;
  std::vector<int32_t> block_table_;         // [max_seqs, max_blocks], -1 where unused
  std::vector<std::vector<int32_t>> pages_;  // per sequence, its pages in order
  std::vector<bool> seq_open_;
};

}  // namespace luzao
