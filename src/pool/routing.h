// Request routing among replicas (engines on devices or device groups): least expected completion
// time with prefix affinity. Shared by the server's pool, `luzao router` and `luzao simulate`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

namespace luzao::pool {

// What the router knows about one replica (an engine on a device or device group) right now.
struct ReplicaState {
  std::string id;
  bool available = true;              // false: drained, embargoed, failed or unhealthy
  double prefill_tps = 0;             // measured tokens/s (0: unknown, treated as 1000)
  double decode_tps = 0;              // measured aggregate tokens/s (0: unknown, treated as 50)
  int64_t pending_prompt_tokens = 0;  // prompt tokens admitted but not yet prefilled
  int64_t pending_output_tokens = 0;  // tokens still to generate for its admitted requests
};

struct RouteRequest {
  uint64_t prefix_key = 0;  // hash of the request's first prompt tokens/characters (0: none)
  int64_t prompt_tokens = 0;
  int64_t max_tokens = 0;  // <= 0: unknown, counted as kDefaultMaxTokens
};

// Speeds assumed for a replica that has not been measured, and the output length assumed for a
// request without max_tokens.
inline constexpr double kDefaultPrefillTps = 1000.0;
inline constexpr double kDefaultDecodeTps = 50.0;
inline constexpr int64_t kDefaultMaxTokens = 256;

struct RouterStats {
  uint64_t picks = 0;          // successful picks
  uint64_t affinity_hits = 0;  // picks that went to the replica remembered for the prefix
  uint64_t unavailable = 0;    // pick() calls that found no available replica
};

// Least expected completion time with prefix affinity: a replica that recently served the same
// prefix_key wins while its expected completion time is within `affinity_slack` (relative) of the
// best one. Ties go to the lowest index. Affinities are kept for the `affinity_entries` most
// recently used prefix keys. Thread-safe: every member may be called from several threads.
class Router {
 public:
  explicit Router(double affinity_slack = 0.25, size_t affinity_entries = 4096);

  // Index into `replicas` of the chosen one, or -1 when none is available. Records the affinity.
  int pick(std::span<const ReplicaState> replicas, const RouteRequest& request);

  // Expected seconds until `request` would complete on `replica`: the replica drains its queued
  // prompt tokens plus this prompt at prefill_tps, then its queued output tokens plus this
  // request's at its aggregate decode_tps (a work-conserving server: the request completes when
  // the work ahead of and including it is done). +infinity when the replica is unavailable.
  static double expected_completion_s(const ReplicaState& replica, const RouteRequest& request);

  void forget(std::string_view replica_id);  // drop affinities of a withdrawn replica

  // The replica id remembered for `prefix_key`, if any (does not refresh its recency).
  std::optional<std::string> affinity_of(uint64_t prefix_key) const;
  size_t affinity_size() const;
  RouterStats stats() const;
  double affinity_slack() const { return slack_; }

 private:
  using Entry = std::pair<uint64_t, std::string>;  // prefix key -> replica id, most recent first
  void remember(uint64_t key, const std::string& replica_id);

  double slack_;
  size_t capacity_;
  mutable std::mutex mutex_;
  std::list<Entry> lru_;
  std::unordered_map<uint64_t, std::list<Entry>::iterator> index_;
  RouterStats stats_;
};

// FNV-1a (64-bit) of the first `chars` bytes of `text`; 0 for empty text, never 0 otherwise.
uint64_t prefix_key(std::string_view text, size_t chars = 256);

}  // namespace luzao::pool
