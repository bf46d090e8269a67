// Least-expected-completion-time routing with a bounded LRU of prefix affinities.
#include "pool/routing.h"

#include <algorithm>
#include <limits>

namespace luzao::pool {

Router::Router(double affinity_slack, size_t affinity_entries)
    : slack_(std::max(0.0, affinity_slack)), capacity_(affinity_entries) {}

double Router::expected_completion_s(const ReplicaState& replica, const RouteRequest& request) {
  if (!replica.available) return std::numeric_limits<double>::infinity();
  const double prefill = replica.prefill_tps > 0 ? replica.prefill_tps : kDefaultPrefillTps;
  const double decode = replica.decode_tps > 0 ? replica.decode_tps : kDefaultDecodeTps;
  const int64_t out = request.max_tokens > 0 ? request.max_tokens : kDefaultMaxTokens;
  const double prompt_work =
      static_cast<double>(std::max<int64_t>(0, replica.pending_prompt_tokens) +
                          std::max<int64_t>(0, request.prompt_tokens));
  const double output_work =
      static_cast<double>(std::max<int64_t>(0, replica.pending_output_tokens) + out);
  return prompt_work / prefill + output_work / decode;
}

int Router::pick(std::span<const ReplicaState> replicas, const RouteRequest& request) {
  int best = -1;
  double best_s = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < replicas.size(); ++i) {
    if (!replicas[i].available) continue;
    const double s = expected_completion_s(replicas[i], request);
    if (best < 0 || s < best_s) {
      best = static_cast<int>(i);
      best_s = s;
    }
  }
  std::lock_guard lock(mutex_);
  if (best < 0) {
    ++stats_.unavailable;
    return -1;
  }
  int chosen = best;
  if (request.prefix_key != 0) {
    auto it = index_.find(request.prefix_key);
    if (it != index_.end()) {
      const std::string& remembered = it->second->second;
      for (size_t i = 0; i < replicas.size(); ++i) {
        if (replicas[i].id != remembered || !replicas[i].available) continue;
        const double s = expected_completion_s(replicas[i], request);
        if (s <= best_s * (1.0 + slack_) + 1e-12) {
          chosen = static_cast<int>(i);
          ++stats_.affinity_hits;
        }
        break;
      }
    }
    remember(request.prefix_key, replicas[static_cast<size_t>(chosen)].id);
  }
  ++stats_.picks;
  return chosen;
}

void Router::remember(uint64_t key, const std::string& replica_id) {
  if (capacity_ == 0) return;
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->second = replica_id;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.emplace_front(key, replica_id);
  index_[key] = lru_.begin();
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

void Router::forget(std::string_view replica_id) {
  std::lock_guard lock(mutex_);
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->second == replica_id) {
      index_.erase(it->first);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<std::string> Router::affinity_of(uint64_t key) const {
  std::lock_guard lock(mutex_);
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  return it->second->second;
}

size_t Router::affinity_size() const {
  std::lock_guard lock(mutex_);
  return lru_.size();
}

RouterStats Router::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

uint64_t prefix_key(std::string_view text, size_t chars) {
  if (text.empty() || chars == 0) return 0;
  const size_t n = std::min(chars, text.size());
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a offset basis
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(text[i]);
    h *= 0x100000001b3ULL;  // FNV prime
  }
  return h == 0 ? 1 : h;
}

}  // namespace luzao::pool
