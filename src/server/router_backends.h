// The backends of `luzao router` (each a `luzao serve` process): health, load and measured speed,
// routing through luzao::pool::Router, and the router's metrics. No sockets here; thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pool/routing.h"
#include "server/router_sse.h"

namespace luzao::server {

// One backend as /v1/pool shows it.
struct BackendView {
  std::string url;
  bool up = false;
  int consecutive_failures = 0;
  std::string last_error;
  int64_t outstanding = 0;  // attempts in flight
  int64_t pending_prompt_tokens = 0;
  int64_t pending_output_tokens = 0;
  double prefill_tps = 0;  // measured; 0 unknown
  double decode_tps = 0;
  double seeded_prefill_tps = 0;  // what the backend reported at its first health check (0: none)
  double seeded_decode_tps = 0;
  uint64_t requests = 0;  // attempts sent
  uint64_t failures = 0;  // attempts that failed on the backend's side
  uint64_t generated_tokens = 0;
};

// Speeds a backend reports about itself, to seed the router's estimate before any traffic.
struct ReportedSpeed {
  double prefill_tps = 0;  // prompt tokens/s (0: not reported)
  double decode_tps = 0;   // aggregate generated tokens/s (0: not reported)
};
// Parses a backend's GET /v1/pool: a `luzao serve` ("devices": [{"state", "measured":
// {"prefill_tps", "decode_tps"}}], summed over the devices that are serving, since they run side
// by side) or another `luzao router` ("backends": [{"healthy", "prefill_tokens_per_second",
// "decode_tokens_per_second"}], summed likewise). nullopt when the body is not such JSON or
// reports no speed at all; a speed that is not a positive number counts as not reported.
std::optional<ReportedSpeed> parse_reported_speed(std::string_view pool_json);

class BackendSet {
 public:
  // Load of one attempt on one backend, released when destroyed. Move-only.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept;
    Ticket& operator=(Ticket&& other) noexcept;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket();

    size_t backend() const { return backend_; }
    bool valid() const { return set_ != nullptr; }
    // The first generated text arrived after `seconds` (the prompt was prefilled).
    void first_token(double seconds);
    // `n` more tokens were generated.
    void generated(int64_t n);
    // The attempt completed with this usage (corrects the token count, measures prefill speed).
    void finish(const StreamUsage& usage);
    // The attempt failed on the backend's side.
    void failed();

   private:
    friend class BackendSet;
    void release();
    BackendSet* set_ = nullptr;
    size_t backend_ = 0;
    int64_t prompt_left_ = 0;  // this attempt's share of pending_prompt_tokens
    int64_t output_left_ = 0;  // and of pending_output_tokens
    int64_t counted_ = 0;      // tokens counted through generated()
    std::optional<double> ttft_;
  };

  // `urls` as given on the command line; all start down until their first health check.
  explicit BackendSet(std::vector<std::string> urls, double affinity_slack = 0.25);
  BackendSet(const BackendSet&) = delete;
  BackendSet& operator=(const BackendSet&) = delete;

  size_t size() const { return backends_.size(); }
  const std::string& url(size_t i) const { return backends_[i].url; }
  bool any_up() const;
  bool up(size_t i) const;

  // Picks a backend that is up and not in `exclude` for `request` (least expected completion time
  // with prefix affinity) and charges the request to it; an invalid ticket when none is up.
  Ticket acquire(const pool::RouteRequest& request, std::span<const size_t> exclude = {});
  // The first backend that is up (for GET /v1/models), skipping `exclude`; -1 when none.
  int first_up(std::span<const size_t> exclude = {}) const;

  // A health check's result. Returns the number of consecutive failures after it.
  int report_health(size_t i, bool ok, const std::string& error);
  // A request could not reach backend i, or its connection broke: down until a check passes.
  void report_down(size_t i, const std::string& error);
  // Updates backend i's measured decode speed from the tokens generated since the last call
  // (`now_s`: any monotonic clock in seconds). Intervals in which the backend had no work are
  // skipped; samples are smoothed (exponential moving average).
  void sample_throughput(size_t i, double now_s);
  // Seeding from what backend i reports (GET /v1/pool after its first passing health check):
  // true until seed() was called for it. seed() sets each speed the router has not measured yet
  // (traffic learning then blends into it as usual) and returns whether it set any.
  bool needs_seed(size_t i) const;
  bool seed(size_t i, const std::optional<ReportedSpeed>& reported);

  // Abort hooks of in-flight attempts (closing their connection), so that a hung backend's
  // requests can move elsewhere. add_abort returns an id for remove_abort.
  uint64_t add_abort(size_t i, std::function<void()> abort);
  void remove_abort(size_t i, uint64_t id);
  // Runs (and forgets) every abort hook of backend i; returns how many.
  size_t abort_all(size_t i);

  BackendView view(size_t i) const;
  pool::RouterStats routing_stats() const { return router_.stats(); }
  // The states given to the routing policy (for tests and /v1/pool).
  std::vector<pool::ReplicaState> replica_states() const;

 private:
  struct Backend {
    std::string url;
    bool up = false;
    int consecutive_failures = 0;
    std::string last_error;
    int64_t outstanding = 0;
    int64_t pending_prompt = 0, pending_output = 0;
    double prefill_tps = 0, decode_tps = 0;
    uint64_t requests = 0, failures = 0;
    uint64_t generated = 0;  // tokens, all time
    uint64_t sampled_generated = 0;
    double sampled_at = -1;
    bool busy_since_sample = false;
    bool seed_done = false;
    double seeded_prefill = 0, seeded_decode = 0;
    std::map<uint64_t, std::function<void()>> aborts;
  };
  pool::ReplicaState state_of(const Backend& b) const;

  mutable std::mutex mutex_;
  std::vector<Backend> backends_;
  pool::Router router_;
  uint64_t next_abort_ = 1;
};

// Router-wide counters for GET /metrics. Thread-safe.
class RouterMetrics {
 public:
  RouterMetrics();
  void count_request(const std::string& endpoint, int status);
  void count_retry() { add(retries_); }
  void count_failover() { add(failovers_); }
  void count_stream_resume() { add(resumes_); }
  void count_divergence() { add(divergences_); }
  void count_unserved() { add(unserved_); }
  void observe_moved_request(double seconds);  // duration of a request that changed backend
  // Prometheus text: these counters, then each backend's state.
  std::string render(const BackendSet& backends) const;

 private:
  void add(uint64_t& counter);
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t retries_ = 0, failovers_ = 0, resumes_ = 0, divergences_ = 0, unserved_ = 0;
  std::vector<double> bounds_;
  std::vector<uint64_t> moved_counts_;  // per bound, last is +Inf
  double moved_sum_ = 0;
  uint64_t moved_count_ = 0;
};

// GET /v1/pool: every backend with health, load and measured speed.
nlohmann::json pool_json(const BackendSet& backends);

}  // namespace luzao::server
