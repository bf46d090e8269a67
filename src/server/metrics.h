// Server metrics in Prometheus' text exposition format: requests by endpoint and status, token
// counters, queue depth, KV-cache use, latency histograms, and per-replica counters and
// migrations of a device pool. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/scheduler.h"
#include "server/replica_set.h"

namespace luzao::server {

// A Prometheus label value: backslash, quote and newline escaped.
std::string prometheus_label(std::string_view v);

// Cumulative histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Appends the _bucket, _sum and _count lines of metric `name`.
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bound, not cumulative; last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// What a replica set adds to the exposition.
struct PoolMetrics {
  std::vector<ReplicaReport> replicas;
  uint64_t migrations = 0;            // requests moved to another replica
  uint64_t lost = 0;                  // requests that had nowhere to go
  std::vector<double> resume_delays;  // seconds from leaving a replica to the next token
};

// The counters of every replica summed; gauges (queue, running, KV pages) summed over replicas.
SchedulerStats total_stats(const std::vector<ReplicaReport>& replicas);

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& endpoint, int status);
  void observe_time_to_first_token(double seconds);
  void observe_time_per_output_token(double seconds);
  void observe_request_duration(double seconds);
  // The whole exposition, with the scheduler's counters and gauges and, when given, the
  // per-replica lines (luzao_replica_up{replica=...}, ...) and luzao_migrations_total.
  std::string render(const SchedulerStats& stats, const PoolMetrics* pool = nullptr) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  Histogram ttft_, tpot_, duration_;
};

}  // namespace luzao::server
