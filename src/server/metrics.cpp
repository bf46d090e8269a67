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

std::string Metrics::render(const SchedulerStats& s) const {
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
  return out;
}

}  // namespace luzao::server
