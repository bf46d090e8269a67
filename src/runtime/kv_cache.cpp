// PagedKvCache: page allocation and block tables.
#include "runtime/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace luzao {

PagedKvCache::PagedKvCache(Device& device, const KvCacheConfig& config) : config_(config) {
  LUZAO_CHECK(config.n_layer > 0 && config.kv_dim > 0 && config.page_size > 0 &&
              config.n_pages > 0);
  LUZAO_CHECK(config.dtype == DType::kF32 || config.dtype == DType::kF16);
  max_blocks_ = (config.max_seq_len + config.page_size - 1) / config.page_size;
  const size_t row = *row_bytes(config.dtype, static_cast<uint64_t>(config.kv_dim));
  const size_t rows = static_cast<size_t>(config.n_pages) * static_cast<size_t>(config.page_size);
  for (int32_t l = 0; l < config.n_layer; ++l) {
    KvLayerView layer;
    for (TensorView* pool : {&layer.k, &layer.v}) {
      buffers_.push_back(device.alloc(rows * row));
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
  LUZAO_CHECK(seq >= 0 && static_cast<size_t>(seq) < seq_open_.size() && seq_open_[seq]);
  truncate(seq, 0);
  seq_open_[seq] = false;
}

void PagedKvCache::reserve(int32_t seq, int32_t length) {
  LUZAO_CHECK(seq >= 0 && static_cast<size_t>(seq) < seq_open_.size() && seq_open_[seq]);
  if (length > config_.max_seq_len) {
    fail(ErrorKind::kOutOfMemory, "sequence of {} tokens exceeds the context size of {} tokens",
         length, config_.max_seq_len);
  }
  auto& pages = pages_[seq];
  const size_t needed = static_cast<size_t>((length + config_.page_size - 1) / config_.page_size);
  if (needed <= pages.size()) return;
  if (needed - pages.size() > free_pages_.size()) {
    fail(ErrorKind::kOutOfMemory, "KV cache is full: {} more pages needed, {} free of {}",
         needed - pages.size(), free_pages_.size(), config_.n_pages);
  }
  while (pages.size() < needed) {
    const int32_t page = free_pages_.back();
    free_pages_.pop_back();
    block_table_[static_cast<size_t>(seq) * max_blocks_ + pages.size()] = page;
    pages.push_back(page);
  }
}

void PagedKvCache::truncate(int32_t seq, int32_t length) {
  LUZAO_CHECK(seq >= 0 && static_cast<size_t>(seq) < seq_open_.size() && length >= 0);
  auto& pages = pages_[seq];
  const size_t keep = static_cast<size_t>((length + config_.page_size - 1) / config_.page_size);
  while (pages.size() > keep) {
    free_pages_.push_back(pages.back());
    block_table_[static_cast<size_t>(seq) * max_blocks_ + pages.size() - 1] = -1;
    pages.pop_back();
  }
}

int32_t PagedKvCache::slot(int32_t seq, int32_t pos) const {
  const auto& pages = pages_[seq];
  const size_t block = static_cast<size_t>(pos / config_.page_size);
  LUZAO_DCHECK(block < pages.size());
  return pages[block] * config_.page_size + pos % config_.page_size;
}

}  // namespace luzao
