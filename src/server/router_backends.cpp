// Backend health, load accounting and measured speed for `luzao router`; its Prometheus metrics.
#include "server/router_backends.h"

#include "server/metrics.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"

namespace luzao::server {
namespace {

// Weight of a new throughput sample in the moving average.
constexpr double kSmoothing = 0.3;
// Shortest interval a throughput sample may cover (shorter ones are merged into the next).
constexpr double kMinSampleSeconds = 0.5;

}  // namespace

BackendSet::Ticket::Ticket(Ticket&& other) noexcept {
  *this = std::move(other);
}

BackendSet::Ticket& BackendSet::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    release();
    set_ = std::exchange(other.set_, nullptr);
    backend_ = other.backend_;
    prompt_left_ = other.prompt_left_;
    output_left_ = other.output_left_;
    counted_ = other.counted_;
    ttft_ = other.ttft_;
  }
  return *this;
}

BackendSet::Ticket::~Ticket() {
  release();
}

void BackendSet::Ticket::release() {
  if (set_ == nullptr) return;
  std::lock_guard lock(set_->mutex_);
  Backend& b = set_->backends_[backend_];
  b.outstanding -= 1;
  b.pending_prompt -= prompt_left_;
  b.pending_output -= output_left_;
  set_ = nullptr;
}

void BackendSet::Ticket::first_token(double seconds) {
  if (set_ == nullptr || ttft_) return;
  ttft_ = seconds;
  std::lock_guard lock(set_->mutex_);
  set_->backends_[backend_].pending_prompt -= prompt_left_;
  prompt_left_ = 0;
}

void BackendSet::Ticket::generated(int64_t n) {
  if (set_ == nullptr || n <= 0) return;
  counted_ += n;
  const int64_t done = std::min(n, output_left_);
  std::lock_guard lock(set_->mutex_);
  Backend& b = set_->backends_[backend_];
  b.generated += static_cast<uint64_t>(n);
  b.busy_since_sample = true;
  b.pending_output -= done;
  output_left_ -= done;
}

void BackendSet::Ticket::finish(const StreamUsage& usage) {
  if (set_ == nullptr) return;
  if (usage.completion_tokens > counted_) generated(usage.completion_tokens - counted_);
  const int64_t prefilled = usage.prompt_tokens - usage.cached_tokens;
  if (ttft_ && *ttft_ > 0 && prefilled > 0) {
    const double tps = static_cast<double>(prefilled) / *ttft_;
    std::lock_guard lock(set_->mutex_);
    Backend& b = set_->backends_[backend_];
    b.prefill_tps = b.prefill_tps > 0 ? (1 - kSmoothing) * b.prefill_tps + kSmoothing * tps : tps;
  }
}

void BackendSet::Ticket::failed() {
  if (set_ == nullptr) return;
  std::lock_guard lock(set_->mutex_);
  set_->backends_[backend_].failures += 1;
}

BackendSet::BackendSet(std::vector<std::string> urls, double affinity_slack)
    : router_(affinity_slack) {
  backends_.resize(urls.size());
  for (size_t i = 0; i < urls.size(); ++i) backends_[i].url = std::move(urls[i]);
}

bool BackendSet::any_up() const {
  std::lock_guard lock(mutex_);
  return std::any_of(backends_.begin(), backends_.end(), [](const Backend& b) { return b.up; });
}

bool BackendSet::up(size_t i) const {
  std::lock_guard lock(mutex_);
  return backends_.at(i).up;
}

pool::ReplicaState BackendSet::state_of(const Backend& b) const {
  pool::ReplicaState s;
  s.id = b.url;
  s.available = b.up;
  s.prefill_tps = b.prefill_tps;
  s.decode_tps = b.decode_tps;
  s.pending_prompt_tokens = std::max<int64_t>(0, b.pending_prompt);
  s.pending_output_tokens = std::max<int64_t>(0, b.pending_output);
  return s;
}

std::vector<pool::ReplicaState> BackendSet::replica_states() const {
  std::lock_guard lock(mutex_);
  std::vector<pool::ReplicaState> states;
  for (const Backend& b : backends_) states.push_back(state_of(b));
  return states;
}

BackendSet::Ticket BackendSet::acquire(const pool::RouteRequest& request,
                                       std::span<const size_t> exclude) {
  std::lock_guard lock(mutex_);
  std::vector<pool::ReplicaState> states;
  states.reserve(backends_.size());
  for (size_t i = 0; i < backends_.size(); ++i) {
    states.push_back(state_of(backends_[i]));
    if (std::find(exclude.begin(), exclude.end(), i) != exclude.end())
      states.back().available = false;
  }
  const int chosen = router_.pick(states, request);
  Ticket t;
  if (chosen < 0) return t;
  Backend& b = backends_[static_cast<size_t>(chosen)];
  t.set_ = this;
  t.backend_ = static_cast<size_t>(chosen);
  t.prompt_left_ = std::max<int64_t>(0, request.prompt_tokens);
  t.output_left_ = request.max_tokens > 0 ? request.max_tokens : pool::kDefaultMaxTokens;
  b.outstanding += 1;
  b.requests += 1;
  b.pending_prompt += t.prompt_left_;
  b.pending_output += t.output_left_;
  b.busy_since_sample = true;
  return t;
}

int BackendSet::first_up(std::span<const size_t> exclude) const {
  std::lock_guard lock(mutex_);
  for (size_t i = 0; i < backends_.size(); ++i) {
    if (backends_[i].up && std::find(exclude.begin(), exclude.end(), i) == exclude.end())
      return static_cast<int>(i);
  }
  return -1;
}

int BackendSet::report_health(size_t i, bool ok, const std::string& error) {
  std::lock_guard lock(mutex_);
  Backend& b = backends_.at(i);
  if (ok) {
    b.up = true;
    b.consecutive_failures = 0;
    return 0;
  }
  if (b.up) router_.forget(b.url);
  b.up = false;
  b.consecutive_failures += 1;
  b.last_error = error;
  return b.consecutive_failures;
}

void BackendSet::report_down(size_t i, const std::string& error) {
  std::lock_guard lock(mutex_);
  Backend& b = backends_.at(i);
  if (b.up) router_.forget(b.url);
  b.up = false;
  b.last_error = error;
}

void BackendSet::sample_throughput(size_t i, double now_s) {
  std::lock_guard lock(mutex_);
  Backend& b = backends_.at(i);
  if (b.sampled_at < 0 || !b.busy_since_sample) {
    // First call, or an idle interval: start a new one.
    b.sampled_at = now_s;
    b.sampled_generated = b.generated;
    b.busy_since_sample = b.outstanding > 0;
    return;
  }
  const double dt = now_s - b.sampled_at;
  if (dt < kMinSampleSeconds) return;
  const uint64_t tokens = b.generated - b.sampled_generated;
  if (tokens > 0) {
    const double tps = static_cast<double>(tokens) / dt;
    b.decode_tps = b.decode_tps > 0 ? (1 - kSmoothing) * b.decode_tps + kSmoothing * tps : tps;
  }
  b.sampled_at = now_s;
  b.sampled_generated = b.generated;
  b.busy_since_sample = b.outstanding > 0;
}

bool BackendSet::needs_seed(size_t i) const {
  std::lock_guard lock(mutex_);
  return !backends_.at(i).seed_done;
}

bool BackendSet::seed(size_t i, const std::optional<ReportedSpeed>& reported) {
  std::lock_guard lock(mutex_);
  Backend& b = backends_.at(i);
  b.seed_done = true;
  if (!reported) return false;
  bool any = false;
  if (reported->prefill_tps > 0 && b.prefill_tps == 0) {
    b.prefill_tps = b.seeded_prefill = reported->prefill_tps;
    any = true;
  }
  if (reported->decode_tps > 0 && b.decode_tps == 0) {
    b.decode_tps = b.seeded_decode = reported->decode_tps;
    any = true;
  }
  return any;
}

std::optional<ReportedSpeed> parse_reported_speed(std::string_view pool_json) {
  const nlohmann::json j = nlohmann::json::parse(pool_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  const auto positive = [](const nlohmann::json& o, const char* key) {
    if (!o.is_object() || !o.contains(key) || !o[key].is_number()) return 0.0;
    const double v = o[key].get<double>();
    return std::isfinite(v) && v > 0 ? v : 0.0;
  };
  ReportedSpeed out;
  if (j.contains("devices") && j["devices"].is_array()) {  // luzao serve
    for (const nlohmann::json& d : j["devices"]) {
      if (!d.is_object()) continue;
      if (d.contains("state") && d["state"] != "serving") continue;
      if (!d.contains("measured")) continue;
      out.prefill_tps += positive(d["measured"], "prefill_tps");
      out.decode_tps += positive(d["measured"], "decode_tps");
    }
  } else if (j.contains("backends") && j["backends"].is_array()) {  // luzao router
    for (const nlohmann::json& b : j["backends"]) {
      if (!b.is_object() || (b.contains("healthy") && b["healthy"] != true)) continue;
      out.prefill_tps += positive(b, "prefill_tokens_per_second");
      out.decode_tps += positive(b, "decode_tokens_per_second");
    }
  }
  if (out.prefill_tps <= 0 && out.decode_tps <= 0) return std::nullopt;
  return out;
}

uint64_t BackendSet::add_abort(size_t i, std::function<void()> abort) {
  std::lock_guard lock(mutex_);
  const uint64_t id = next_abort_++;
  backends_.at(i).aborts.emplace(id, std::move(abort));
  return id;
}

void BackendSet::remove_abort(size_t i, uint64_t id) {
  std::lock_guard lock(mutex_);
  backends_.at(i).aborts.erase(id);
}

size_t BackendSet::abort_all(size_t i) {
  std::lock_guard lock(mutex_);
  auto& aborts = backends_.at(i).aborts;
  const size_t n = aborts.size();
  // Called under the lock so that no hook runs after its owner removed it (and was destroyed).
  for (auto& [id, abort] : aborts) abort();
  aborts.clear();
  return n;
}

BackendView BackendSet::view(size_t i) const {
  std::lock_guard lock(mutex_);
  const Backend& b = backends_.at(i);
  BackendView v;
  v.url = b.url;
  v.up = b.up;
  v.consecutive_failures = b.consecutive_failures;
  v.last_error = b.last_error;
  v.outstanding = b.outstanding;
  v.pending_prompt_tokens = std::max<int64_t>(0, b.pending_prompt);
  v.pending_output_tokens = std::max<int64_t>(0, b.pending_output);
  v.prefill_tps = b.prefill_tps;
  v.decode_tps = b.decode_tps;
  v.seeded_prefill_tps = b.seeded_prefill;
  v.seeded_decode_tps = b.seeded_decode;
  v.requests = b.requests;
  v.failures = b.failures;
  v.generated_tokens = b.generated;
  return v;
}

RouterMetrics::RouterMetrics()
    : bounds_{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
      moved_counts_(bounds_.size() + 1, 0) {}

void RouterMetrics::add(uint64_t& counter) {
  std::lock_guard lock(mutex_);
  counter += 1;
}

void RouterMetrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  requests_[{endpoint, status}] += 1;
}

void RouterMetrics::observe_moved_request(double seconds) {
  std::lock_guard lock(mutex_);
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin();
  moved_counts_[bucket] += 1;
  moved_sum_ += seconds;
  moved_count_ += 1;
}

std::string RouterMetrics::render(const BackendSet& backends) const {
  std::string out;
  const auto counter = [&out](const char* name, const char* help, uint64_t value) {
    out += fmt::format("# HELP {0} {1}\n# TYPE {0} counter\n{0} {2}\n", name, help, value);
  };
  {
    std::lock_guard lock(mutex_);
    out +=
        "# HELP luzao_router_requests_total Requests answered by the router, by endpoint and "
        "status.\n# TYPE luzao_router_requests_total counter\n";
    for (const auto& [key, n] : requests_) {
      out += fmt::format("luzao_router_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n",
                         prometheus_label(key.first), key.second, n);
    }
    counter("luzao_router_retries_total", "Requests re-sent to another backend (any reason).",
            retries_);
    counter("luzao_router_failovers_total",
            "Requests moved because their backend failed (connection refused or broken, error "
            "event).",
            failovers_);
    counter("luzao_router_stream_resumes_total",
            "Streams continued on another backend after text had been delivered.", resumes_);
    counter("luzao_router_stream_divergences_total",
            "Resumed streams whose regenerated text differed (ended with an error event).",
            divergences_);
    counter("luzao_router_unserved_total",
            "Requests no backend could complete (503, 502 or an error event).", unserved_);
    const char* moved = "luzao_router_moved_request_duration_seconds";
    out += fmt::format(
        "# HELP {0} Duration of requests that changed backend.\n# TYPE {0} histogram\n", moved);
    uint64_t cumulative = 0;
    for (size_t b = 0; b < bounds_.size(); ++b) {
      cumulative += moved_counts_[b];
      out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", moved, bounds_[b], cumulative);
    }
    cumulative += moved_counts_.back();
    out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", moved, cumulative,
                       moved, moved_sum_, moved, moved_count_);
  }
  struct Series {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const BackendView&);
  };
  static constexpr Series kSeries[] = {
      {"luzao_router_backend_up", "gauge", "1 when the backend passed its last health check.",
       [](const BackendView& v) { return v.up ? 1.0 : 0.0; }},
      {"luzao_router_backend_outstanding", "gauge", "Requests in flight on the backend.",
       [](const BackendView& v) { return static_cast<double>(v.outstanding); }},
      {"luzao_router_backend_requests_total", "counter", "Attempts sent to the backend.",
       [](const BackendView& v) { return static_cast<double>(v.requests); }},
      {"luzao_router_backend_failures_total", "counter",
       "Attempts that failed on the backend's side.",
       [](const BackendView& v) { return static_cast<double>(v.failures); }},
      {"luzao_router_backend_generated_tokens_total", "counter",
       "Tokens the backend generated for the router.",
       [](const BackendView& v) { return static_cast<double>(v.generated_tokens); }},
      {"luzao_router_backend_decode_tokens_per_second", "gauge",
       "Measured aggregate decode speed (0: not measured yet).",
       [](const BackendView& v) { return v.decode_tps; }},
      {"luzao_router_backend_prefill_tokens_per_second", "gauge",
       "Measured prefill speed (0: not measured yet).",
       [](const BackendView& v) { return v.prefill_tps; }},
      {"luzao_router_backend_seeded_decode_tokens_per_second", "gauge",
       "Decode speed the backend reported at its first health check (0: none).",
       [](const BackendView& v) { return v.seeded_decode_tps; }},
      {"luzao_router_backend_seeded_prefill_tokens_per_second", "gauge",
       "Prefill speed the backend reported at its first health check (0: none).",
       [](const BackendView& v) { return v.seeded_prefill_tps; }},
  };
  std::vector<BackendView> views;
  for (size_t i = 0; i < backends.size(); ++i) views.push_back(backends.view(i));
  for (const Series& s : kSeries) {
    out += fmt::format("# HELP {0} {1}\n# TYPE {0} {2}\n", s.name, s.help, s.type);
    for (const BackendView& v : views)
      out += fmt::format("{}{{backend=\"{}\"}} {}\n", s.name, prometheus_label(v.url), s.value(v));
  }
  return out;
}

nlohmann::json pool_json(const BackendSet& backends) {
  nlohmann::json list = nlohmann::json::array();
  for (size_t i = 0; i < backends.size(); ++i) {
    const BackendView v = backends.view(i);
    list.push_back(
        {{"id", v.url},
         {"url", v.url},
         {"healthy", v.up},
         {"consecutive_failures", v.consecutive_failures},
         {"last_error", v.last_error.empty() ? nlohmann::json() : nlohmann::json(v.last_error)},
         {"outstanding", v.outstanding},
         {"pending_prompt_tokens", v.pending_prompt_tokens},
         {"pending_output_tokens", v.pending_output_tokens},
         {"prefill_tokens_per_second", v.prefill_tps},
         {"decode_tokens_per_second", v.decode_tps},
         {"seeded_prefill_tokens_per_second", v.seeded_prefill_tps},
         {"seeded_decode_tokens_per_second", v.seeded_decode_tps},
         {"requests", v.requests},
         {"failures", v.failures},
         {"generated_tokens", v.generated_tokens}});
  }
  const pool::RouterStats stats = backends.routing_stats();
  return {{"object", "pool"},
          {"policy", "least expected completion time, prefix affinity"},
          {"backends", list},
          {"routing",
           {{"picks", stats.picks},
            {"affinity_hits", stats.affinity_hits},
            {"unavailable", stats.unavailable}}}};
}

}  // namespace luzao::server
