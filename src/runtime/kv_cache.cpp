// PagedKvCache: page allocation, block tables and the reference-counted prefix index.
#include "runtime/kv_cache.h"

#include <algorithm>
#include <optional>

#include "core/error.h"

namespace luzao {

PagedKvCache::PagedKvCache(Device& device, const KvCacheConfig& config)
    : PagedKvCache(std::vector<Device*>(static_cast<size_t>(std::max(config.n_layer, 0)), &device),
                   config) {}

PagedKvCache::PagedKvCache(std::span<Device* const> layer_devices, const KvCacheConfig& config)
    : config_(config) {
  LUZAO_CHECK(layer_devices.size() == static_cast<size_t>(std::max(config.n_layer, 0)));
  LUZAO_CHECK(config.n_layer > 0 && config.kv_dim > 0 && config.page_size > 0 &&
              config.n_pages > 0);
  if (config.dtype != DType::kF32 && config.dtype != DType::kF16 && config.dtype != DType::kQ8_0) {
    fail(ErrorKind::kUnsupported, "KV cache type {} is not supported (f32, f16 or q8_0)",
         dtype_name(config.dtype));
  }
  const std::optional<uint64_t> row_size =
      row_bytes(config.dtype, static_cast<uint64_t>(config.kv_dim));
  if (!row_size) {
    fail(ErrorKind::kUnsupported,
         "a {} KV cache needs a KV width that is a multiple of {} (this "
         "model's is {})",
         dtype_name(config.dtype), dtype_info(config.dtype).block_size, config.kv_dim);
  }
  // Every device holding a layer must attend over (and write) this cache type itself: refuse
  // here rather than compute wrong results later.
  for (Device* d : layer_devices) {
    if (!d->supports(OpKind::kAttention, config.dtype) ||
        !d->supports(OpKind::kSetRows, config.dtype)) {
      fail(ErrorKind::kUnsupported, "device {} does not support a {} KV cache", d->info().name,
           dtype_name(config.dtype));
    }
  }
  max_blocks_ = (config.max_seq_len + config.page_size - 1) / config.page_size;
  const size_t row = static_cast<size_t>(*row_size);
  const size_t rows = static_cast<size_t>(config.n_pages) * static_cast<size_t>(config.page_size);
  for (int32_t l = 0; l < config.n_layer; ++l) {
    KvLayerView layer;
    for (TensorView* pool : {&layer.k, &layer.v}) {
      buffers_.push_back(layer_devices[static_cast<size_t>(l)]->alloc(rows * row));
      pool->buffer = buffers_.back().get();
      pool->dtype = config.dtype;
      pool->rows = static_cast<int64_t>(rows);
      pool->cols = config.kv_dim;
      pool->row_stride = row;
    }
    layer_views_.push_back(layer);
  }
  // Hand out low page ids first (pop from the back).
  for (int32_t p = config.n_pages - 1; p >= 0; --p) free_pages_.push_back(p);
  info_.resize(static_cast<size_t>(config.n_pages));
  tokens_.resize(rows, -1);
}

void PagedKvCache::check_seq(int32_t seq) const {
  LUZAO_CHECK(seq >= 0 && static_cast<size_t>(seq) < seq_open_.size() && seq_open_[seq]);
}

int32_t PagedKvCache::open_sequence() {
  for (size_t i = 0; i < seq_open_.size(); ++i) {
    if (!seq_open_[i]) {
      seq_open_[i] = true;
      return static_cast<int32_t>(i);
    }
  }
  seq_open_.push_back(true);
  pages_.emplace_back();
  block_table_.resize(block_table_.size() + static_cast<size_t>(max_blocks_), -1);
  return static_cast<int32_t>(seq_open_.size() - 1);
}

void PagedKvCache::close_sequence(int32_t seq) {
  check_seq(seq);
  truncate(seq, 0);
  seq_open_[seq] = false;
}

int32_t PagedKvCache::take_page() {
  int32_t page = -1;
  if (!free_pages_.empty()) {
    page = free_pages_.back();
    free_pages_.pop_back();
  } else {
    LUZAO_CHECK(!lru_.empty());
    page = lru_.front();
    lru_.pop_front();
    unpublish(page);
  }
  PageInfo& info = info_[static_cast<size_t>(page)];
  LUZAO_CHECK(info.refs == 0 && info.node == 0);
  info.refs = 1;
  return page;
}

void PagedKvCache::release_page(int32_t page) {
  PageInfo& info = info_[static_cast<size_t>(page)];
  LUZAO_CHECK(info.refs > 0);
  if (--info.refs > 0) return;
  if (info.node != 0) {
    info.lru = lru_.insert(lru_.end(), page);
  } else {
    free_pages_.push_back(page);
  }
}

void PagedKvCache::unpublish(int32_t page) {
  PageInfo& info = info_[static_cast<size_t>(page)];
  auto [begin, end] = index_.equal_range(info.key);
  for (auto it = begin; it != end; ++it) {
    if (it->second == page) {
      index_.erase(it);
      break;
    }
  }
  info.node = 0;
  info.parent = 0;
  info.key = 0;
}

void PagedKvCache::reserve(int32_t seq, int32_t length) {
  check_seq(seq);
  if (length > config_.max_seq_len) {
    fail(ErrorKind::kOutOfMemory, "sequence of {} tokens exceeds the context size of {} tokens",
         length, config_.max_seq_len);
  }
  auto& pages = pages_[seq];
  const size_t needed = static_cast<size_t>((length + config_.page_size - 1) / config_.page_size);
  if (needed <= pages.size()) return;
  if (needed - pages.size() > static_cast<size_t>(free_pages())) {
    fail(ErrorKind::kOutOfMemory, "KV cache is full: {} more pages needed, {} free of {}",
         needed - pages.size(), free_pages(), config_.n_pages);
  }
  while (pages.size() < needed) {
    const int32_t page = take_page();
    block_table_[static_cast<size_t>(seq) * max_blocks_ + pages.size()] = page;
    pages.push_back(page);
  }
}

void PagedKvCache::truncate(int32_t seq, int32_t length) {
  LUZAO_CHECK(seq >= 0 && static_cast<size_t>(seq) < seq_open_.size() && length >= 0);
  auto& pages = pages_[seq];
  const size_t keep = static_cast<size_t>((length + config_.page_size - 1) / config_.page_size);
  while (pages.size() > keep) {
    release_page(pages.back());
    block_table_[static_cast<size_t>(seq) * max_blocks_ + pages.size() - 1] = -1;
    pages.pop_back();
  }
  if (length % config_.page_size != 0 && !pages.empty()) {
    // The partly kept page is written again next: it must be private and no longer published.
    PageInfo& last = info_[static_cast<size_t>(pages.back())];
    LUZAO_CHECK(last.refs == 1);
    if (last.node != 0) unpublish(pages.back());
  }
}

int32_t PagedKvCache::slot(int32_t seq, int32_t pos) const {
  const auto& pages = pages_[seq];
  const size_t block = static_cast<size_t>(pos / config_.page_size);
  LUZAO_DCHECK(block < pages.size());
  return pages[block] * config_.page_size + pos % config_.page_size;
}

uint64_t PagedKvCache::hash_page(uint64_t parent, std::span<const int32_t> tokens) {
  // FNV-1a over the parent node and the token ids; collisions are resolved by comparing.
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 0x100000001b3ull;
    }
  };
  mix(parent);
  for (int32_t t : tokens) mix(static_cast<uint32_t>(t));
  return h;
}

std::span<const int32_t> PagedKvCache::page_tokens(int32_t page) const {
  return std::span(tokens_).subspan(static_cast<size_t>(page) * config_.page_size,
                                    static_cast<size_t>(config_.page_size));
}

void PagedKvCache::publish(int32_t seq, std::span<const int32_t> tokens) {
  check_seq(seq);
  const auto& pages = pages_[seq];
  const size_t ps = static_cast<size_t>(config_.page_size);
  const size_t n_full = std::min(tokens.size() / ps, pages.size());
  uint64_t parent = 0;
  for (size_t i = 0; i < n_full; ++i) {
    const int32_t page = pages[i];
    PageInfo& info = info_[static_cast<size_t>(page)];
    if (info.node != 0) {  // published before (by this sequence or the one it attached from)
      parent = info.node;
      continue;
    }
    const auto chunk = tokens.subspan(i * ps, ps);
    const uint64_t key = hash_page(parent, chunk);
    bool duplicate = false;
    auto [begin, end] = index_.equal_range(key);
    for (auto it = begin; it != end && !duplicate; ++it) {
      const PageInfo& other = info_[static_cast<size_t>(it->second)];
      const auto theirs = page_tokens(it->second);
      duplicate = other.parent == parent && std::equal(theirs.begin(), theirs.end(), chunk.begin());
    }
    if (duplicate) return;  // another sequence published the same prefix: keep theirs
    info.node = next_node_++;
    info.parent = parent;
    info.key = key;
    std::copy(chunk.begin(), chunk.end(), tokens_.begin() + static_cast<ptrdiff_t>(page * ps));
    index_.emplace(key, page);
    parent = info.node;
  }
}

int32_t PagedKvCache::attach_prefix(int32_t seq, std::span<const int32_t> tokens,
                                    int32_t max_tokens) {
  check_seq(seq);
  auto& pages = pages_[seq];
  LUZAO_CHECK(pages.empty());
  const size_t ps = static_cast<size_t>(config_.page_size);
  const size_t limit = std::min(tokens.size(), static_cast<size_t>(std::max(max_tokens, 0)));
  const size_t n_pages = std::min(limit / ps, static_cast<size_t>(max_blocks_));
  uint64_t parent = 0;
  for (size_t i = 0; i < n_pages; ++i) {
    const auto chunk = tokens.subspan(i * ps, ps);
    int32_t found = -1;
    auto [begin, end] = index_.equal_range(hash_page(parent, chunk));
    for (auto it = begin; it != end && found < 0; ++it) {
      const auto theirs = page_tokens(it->second);
      if (info_[static_cast<size_t>(it->second)].parent == parent &&
          std::equal(theirs.begin(), theirs.end(), chunk.begin())) {
        found = it->second;
      }
    }
    if (found < 0) break;
    PageInfo& info = info_[static_cast<size_t>(found)];
    if (info.refs++ == 0) lru_.erase(info.lru);
    block_table_[static_cast<size_t>(seq) * max_blocks_ + pages.size()] = found;
    pages.push_back(found);
    parent = info.node;
  }
  return static_cast<int32_t>(pages.size() * ps);
}

}  // namespace luzao
