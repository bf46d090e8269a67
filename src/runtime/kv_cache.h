// Paged KV memory owned by the runtime: per layer, one K pool and one V pool of fixed-size pages;
// each sequence holds a block table of page ids, so many sequences of any length share the pools.
// Full pages can be published as a shared prompt prefix: later sequences starting with the same
// tokens attach those pages (reference counted) instead of recomputing them.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>
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
  DType dtype = DType::kF32;  // F32, F16 or Q8_0 (kv_dim a multiple of 32)
};

// Not thread-safe; the runtime serialises access.
class PagedKvCache {
 public:
  // Throws Error(kUnsupported) when a device cannot attend over / write `config.dtype` pools
  // ("device opencl:0 does not support a q8_0 KV cache") or kv_dim does not fit its blocks.
  PagedKvCache(Device& device, const KvCacheConfig& config);
  // Each layer's pools on that layer's device (layer_devices.size() == n_layer, not owned): a
  // model split over several devices keeps every layer's KV memory next to the layer.
  PagedKvCache(std::span<Device* const> layer_devices, const KvCacheConfig& config);

  // Returns a free sequence handle (a row of the block table).
  int32_t open_sequence();
  // Releases every page of the sequence; the handle may be reused.
  void close_sequence(int32_t seq);
  // Ensures the sequence has pages for `length` tokens. Throws Error(kOutOfMemory) when the pool
  // or the per-sequence limit is exhausted; on failure nothing changes.
  void reserve(int32_t seq, int32_t length);
  // Releases pages beyond the first `length` tokens (the KV of those tokens stays valid). The
  // page that will be written next must not be shared with another sequence.
  void truncate(int32_t seq, int32_t length);
  // Pool row holding token `pos` of `seq` (its pages must be reserved).
  int32_t slot(int32_t seq, int32_t pos) const;

  // Prefix sharing. `publish` registers the full pages of `seq` that hold `tokens` (the
  // sequence's tokens from position 0 whose K/V are already written) so other sequences can
  // reuse them. `attach_prefix`, on an empty sequence, attaches the published pages matching the
  // longest page-aligned prefix of `tokens`, at most `max_tokens` tokens, and returns how many
  // tokens they cover (the caller starts feeding there). Pages nobody holds stay cached until
  // their memory is needed (least recently used first).
  void publish(int32_t seq, std::span<const int32_t> tokens);
  int32_t attach_prefix(int32_t seq, std::span<const int32_t> tokens, int32_t max_tokens);

  KvView view() const { return {layer_views_, config_.page_size}; }
  std::span<const int32_t> block_table() const { return block_table_; }
  int32_t max_blocks() const { return max_blocks_; }
  // Pages that a reserve may take: never used or cached without a holder.
  int32_t free_pages() const { return static_cast<int32_t>(free_pages_.size() + lru_.size()); }
  // Published pages that no sequence holds (a subset of free_pages()).
  int32_t cached_pages() const { return static_cast<int32_t>(lru_.size()); }
  int32_t total_pages() const { return config_.n_pages; }
  const KvCacheConfig& config() const { return config_; }

 private:
  struct PageInfo {
    int32_t refs = 0;
    uint64_t node = 0;    // 0: not published; else a unique id for (parent node, tokens)
    uint64_t parent = 0;  // node of the previous page of the prefix (0 for the first)
    uint64_t key = 0;     // hash of (parent, tokens) in index_
    std::list<int32_t>::iterator lru;  // valid while refs == 0 and published
  };
  static uint64_t hash_page(uint64_t parent, std::span<const int32_t> tokens);
  int32_t take_page();              // a free page, evicting the oldest cached one if needed
  void release_page(int32_t page);  // drops one reference
  void unpublish(int32_t page);
  void check_seq(int32_t seq) const;
  std::span<const int32_t> page_tokens(int32_t page) const;

  KvCacheConfig config_;
  int32_t max_blocks_ = 0;
  std::vector<std::unique_ptr<Buffer>> buffers_;
  std::vector<KvLayerView> layer_views_;
  std::vector<int32_t> free_pages_;
  std::vector<int32_t> block_table_;         // [max_seqs, max_blocks], -1 where unused
  std::vector<std::vector<int32_t>> pages_;  // per sequence, its pages in order
  std::vector<bool> seq_open_;
  std::vector<PageInfo> info_;                        // per page
  std::vector<int32_t> tokens_;                       // [n_pages, page_size]: published tokens
  std::unordered_multimap<uint64_t, int32_t> index_;  // hash(parent, tokens) -> page
  std::list<int32_t> lru_;  // published pages without holders, oldest first
  uint64_t next_node_ = 1;
};

}  // namespace luzao
