// Metrics: counters, histograms and their Prometheus text rendering.
#include "server/metrics.h"

#include <fmt/format.h>

namespace luzao::server {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count_, name,
                     sum_, name, count_);
}

Metrics::Metrics()
    : ttft_({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      tpot_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}),
      duration_({0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}) {}

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
}

void Metrics::observe_time_to_first_token(double seconds) {
  std::lock_guard lock(mutex_);
  ttft_.observe(seconds);
}

void Metrics::observe_time_per_output_token(double seconds) {
  std::lock_guard lock(mutex_);
  tpot_.observe(seconds);
}

void Metrics::observe_request_duration(double seconds) {
  std::lock_guard lock(mutex_);
  duration_.observe(seconds);
}

std::string prometheus_label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

namespace {

void render_pool(std::string& out, const PoolMetrics& pool) {
  const auto family = [&out](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  family("luzao_replica_up", "gauge",
         "1 while a replica serves; 0 on standby, loading, drained, embargoed or failed.");
  for (const ReplicaReport& r : pool.replicas) {
    out += fmt::format(
        "luzao_replica_up{{replica=\"{}\",device=\"{}\",vendor=\"{}\",state=\"{}\"}} {}\n",
        prometheus_label(r.id), prometheus_label(r.device), prometheus_label(r.vendor),
        replica_health_name(r.health), r.health == ReplicaHealth::kServing ? 1 : 0);
  }
  const auto per_replica = [&](const char* name, const char* type, const char* help,
                               auto value_of) {
    family(name, type, help);
    for (const ReplicaReport& r : pool.replicas) {
      out += fmt::format("{}{{replica=\"{}\"}} {}\n", name, prometheus_label(r.id), value_of(r));
    }
  };
  per_replica("luzao_replica_requests_routed_total", "counter", "New requests routed to a replica.",
              [](const ReplicaReport& r) { return r.routed; });
  per_replica("luzao_replica_requests_finished_total", "counter",
              "Requests a replica completed (stop or length).",
              [](const ReplicaReport& r) { return r.stats.finished; });
  per_replica("luzao_replica_requests_resumed_total", "counter",
              "Requests moved onto a replica from a withdrawn one.",
              [](const ReplicaReport& r) { return r.stats.resumed; });
  per_replica("luzao_replica_requests_evacuated_total", "counter",
              "Requests moved off a replica when it was withdrawn.",
              [](const ReplicaReport& r) { return r.stats.evacuated; });
  per_replica("luzao_replica_generated_tokens_total", "counter", "Tokens a replica generated.",
              [](const ReplicaReport& r) { return r.stats.generated_tokens; });
  per_replica("luzao_replica_prompt_tokens_total", "counter",
              "Prompt tokens a replica admitted (a moved request's history included).",
              [](const ReplicaReport& r) { return r.stats.prompt_tokens; });
  per_replica("luzao_replica_busy_seconds_total", "counter",
              "Time a replica spent in decode steps.",
              [](const ReplicaReport& r) { return r.stats.busy_seconds; });
  per_replica("luzao_replica_requests_running", "gauge", "Requests a replica is generating.",
              [](const ReplicaReport& r) { return r.stats.running; });
  family("luzao_migrations_total", "counter",
         "In-flight or queued requests moved from a withdrawn replica to another.");
  out += fmt::format("luzao_migrations_total {}\n", pool.migrations);
  family(
      "luzao_migrations_failed_total", "counter",
      "Requests of a withdrawn replica that no other replica could take (they end in an error).");
  out += fmt::format("luzao_migrations_failed_total {}\n", pool.lost);
  Histogram delays({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
  for (double d : pool.resume_delays) delays.observe(d);
  delays.render(out, "luzao_migration_resume_seconds",
                "Time from a request leaving its replica to its next token on another.");
}

}  // namespace

SchedulerStats total_stats(const std::vector<ReplicaReport>& replicas) {
  SchedulerStats t;
  for (const ReplicaReport& r : replicas) {
    const SchedulerStats& s = r.stats;
    t.queued += s.queued;
    t.running += s.running;
    t.kv_pages_total += s.kv_pages_total;
    t.kv_pages_used += s.kv_pages_used;
    t.kv_pages_cached += s.kv_pages_cached;
    t.steps += s.steps;
    t.step_tokens += s.step_tokens;
    t.prompt_tokens += s.prompt_tokens;
    t.cached_prompt_tokens += s.cached_prompt_tokens;
    t.generated_tokens += s.generated_tokens;
    t.finished += s.finished;
    t.cancelled += s.cancelled;
    t.errors += s.errors;
    t.resumed += s.resumed;
    t.evacuated += s.evacuated;
    t.busy_seconds += s.busy_seconds;
  }
  return t;
}

std::string Metrics::render(const SchedulerStats& s, const PoolMetrics* pool) const {
  std::string out;
  auto scalar = [&out](const char* name, const char* type, const char* help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
  };
  {
    std::lock_guard lock(mutex_);
    out +=
        "# HELP luzao_requests_total HTTP requests answered, by endpoint and status.\n"
        "# TYPE luzao_requests_total counter\n";
    for (const auto& [key, count] : requests_) {
      out += fmt::format("luzao_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first,
                         key.second, count);
    }
    ttft_.render(out, "luzao_time_to_first_token_seconds",
                 "Time from request arrival to its first token.");
    tpot_.render(out, "luzao_time_per_output_token_seconds",
                 "Mean time between output tokens of a request.");
    duration_.render(out, "luzao_request_duration_seconds", "Time from arrival to the last token.");
  }
  scalar("luzao_prompt_tokens_total", "counter", "Prompt tokens admitted.", s.prompt_tokens);
  scalar("luzao_prompt_tokens_cached_total", "counter",
         "Prompt tokens served from the shared prefix cache.", s.cached_prompt_tokens);
  scalar("luzao_generated_tokens_total", "counter", "Tokens generated.", s.generated_tokens);
  scalar("luzao_requests_cancelled_total", "counter",
         "Requests cancelled (client gone, or the server stopping).", s.cancelled);
  scalar("luzao_decode_steps_total", "counter", "Batched forward steps.", s.steps);
  scalar("luzao_step_tokens_total", "counter", "Tokens fed over all steps.", s.step_tokens);
  scalar("luzao_requests_queued", "gauge", "Requests waiting for a sequence slot.", s.queued);
  scalar("luzao_requests_running", "gauge", "Requests being generated.", s.running);
  scalar("luzao_kv_cache_pages_total", "gauge", "KV-cache pages.", s.kv_pages_total);
  scalar("luzao_kv_cache_pages_used", "gauge", "KV-cache pages held by sequences.",
         s.kv_pages_used);
  scalar("luzao_kv_cache_pages_cached", "gauge", "KV-cache pages kept for prefix reuse.",
         s.kv_pages_cached);
  const double usage =
      s.kv_pages_total > 0 ? static_cast<double>(s.kv_pages_used) / s.kv_pages_total : 0.0;
  scalar("luzao_kv_cache_usage_ratio", "gauge", "Share of KV-cache pages held by sequences.",
         usage);
  if (pool != nullptr) render_pool(out, *pool);
  return out;
}

}  // namespace luzao::server
