// ReplicaSet: engines and schedulers per device, routing, withdrawal (drain, embargo, failure,
// watchdog) and the move of in-flight requests to surviving replicas.
#include "server/replica_set.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace luzao::server {
namespace {

bool same_vendor(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Sums the counters of every scheduler a replica has had; gauges come from the current one.
void accumulate(SchedulerStats& total, const SchedulerStats& s) {
  total.steps += s.steps;
  total.step_tokens += s.step_tokens;
  total.prompt_tokens += s.prompt_tokens;
  total.cached_prompt_tokens += s.cached_prompt_tokens;
  total.generated_tokens += s.generated_tokens;
  total.finished += s.finished;
  total.cancelled += s.cancelled;
  total.errors += s.errors;
  total.resumed += s.resumed;
  total.evacuated += s.evacuated;
  total.busy_seconds += s.busy_seconds;
}

}  // namespace

const char* replica_health_name(ReplicaHealth health) {
  switch (health) {
    case ReplicaHealth::kServing:
      return "serving";
    case ReplicaHealth::kDrained:
      return "drained";
    case ReplicaHealth::kEmbargoed:
      return "embargoed";
    case ReplicaHealth::kFailed:
      return "failed";
  }
  return "failed";
}

struct ReplicaSet::Replica {
  ReplicaSpec spec;
  std::unique_ptr<Engine> engine;
  std::vector<std::unique_ptr<Scheduler>> schedulers;  // the last one is current
  ReplicaHealth health = ReplicaHealth::kServing;
  std::string reason;
  SteadyClock::time_point loaded;
  uint64_t routed = 0;
  bool restoring = false;

  Scheduler& current() { return *schedulers.back(); }
};

ReplicaSet::ReplicaSet(std::vector<ReplicaSpec> specs, const ReplicaSetOptions& options)
    : options_(options) {
  if (specs.empty()) fail(ErrorKind::kInvalidArgument, "the pool has no device to serve on");
  for (size_t i = 0; i < specs.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (specs[i].id == specs[j].id) {
        fail(ErrorKind::kInvalidArgument, "two replicas have the id '{}'", specs[i].id);
      }
    }
  }
  for (ReplicaSpec& spec : specs) {
    auto r = std::make_unique<Replica>();
    EngineOptions eo = options_.engine;
    eo.device = spec.device;
    try {
      r->engine = std::make_unique<Engine>(eo);
    } catch (const Error& e) {
      throw Error(e.kind(),
                  fmt::format("replica '{}' on device '{}': {}", spec.id, spec.device, e.what()));
    }
    r->spec = std::move(spec);
    r->loaded = SteadyClock::now();
    replicas_.push_back(std::move(r));
  }
  for (size_t i = 0; i < replicas_.size(); ++i) {
    replicas_[i]->schedulers.push_back(make_scheduler(i));
  }
  if (options_.watchdog.count() > 0) watchdog_ = std::thread([this] { watch(); });
}

ReplicaSet::~ReplicaSet() {
  stop();
}

std::unique_ptr<Scheduler> ReplicaSet::make_scheduler(size_t index) {
  SchedulerOptions so = options_.scheduler;
  so.on_fault = [this, index](const std::string& error) {
    fail_replica(index, fmt::format("backend error: {}", error));
  };
  so.on_resumed = [this](double seconds) {
    std::lock_guard lock(delays_mutex_);
    resume_delays_.push_back(seconds);
  };
  so.before_decode = replicas_[index]->spec.before_decode;
  return std::make_unique<Scheduler>(*replicas_[index]->engine, so);
}

const Engine& ReplicaSet::engine() const {
  return *replicas_.front()->engine;
}

size_t ReplicaSet::size() const {
  return replicas_.size();
}

size_t ReplicaSet::serving_count_locked() const {
  return static_cast<size_t>(std::count_if(replicas_.begin(), replicas_.end(), [](const auto& r) {
    return r->health == ReplicaHealth::kServing && !r->restoring;
  }));
}

std::vector<pool::ReplicaState> ReplicaSet::route_states_locked() const {
  std::vector<pool::ReplicaState> states;
  states.reserve(replicas_.size());
  for (const auto& r : replicas_) {
    pool::ReplicaState s;
    s.id = r->spec.id;
    s.available = r->health == ReplicaHealth::kServing && !r->restoring && !stopping_;
    if (s.available) {
      const SchedulerStats st = r->current().stats();
      s.prefill_tps = st.prefill_tps;
      s.decode_tps = st.decode_tps;
      s.pending_prompt_tokens = st.pending_prompt_tokens;
      s.pending_output_tokens = st.pending_output_tokens;
    }
    states.push_back(std::move(s));
  }
  // A replica not measured yet is assumed as fast as the fastest measured one, so that it gets
  // work (and a measurement) instead of the router's pessimistic defaults starving it.
  double best_prefill = 0, best_decode = 0;
  for (const pool::ReplicaState& s : states) {
    best_prefill = std::max(best_prefill, s.prefill_tps);
    best_decode = std::max(best_decode, s.decode_tps);
  }
  for (pool::ReplicaState& s : states) {
    if (s.prefill_tps == 0) s.prefill_tps = best_prefill;
    if (s.decode_tps == 0) s.decode_tps = best_decode;
  }
  return states;
}

SubmitResult ReplicaSet::submit(GenerationRequest request, uint64_t prefix_key) {
  pool::RouteRequest route;
  route.prefix_key = prefix_key;
  route.prompt_tokens = static_cast<int64_t>(request.prompt.size());
  route.max_tokens = request.max_tokens;
  std::lock_guard lock(mutex_);
  std::vector<pool::ReplicaState> states = route_states_locked();
  bool any = false;
  while (true) {
    const int pick = router_.pick(states, route);
    if (pick < 0) break;
    any = true;
    Replica& r = *replicas_[static_cast<size_t>(pick)];
    auto stream = r.current().submit(request);  // throws for an invalid request
    if (stream) {
      ++r.routed;
      return {std::move(stream), false, {}};
    }
    states[static_cast<size_t>(pick)].available = false;  // its queue is full: try another
  }
  if (any) return {nullptr, true, "the server is busy: every request queue is full, retry later"};
  return {nullptr, false,
          "no device is serving this model: every replica is drained, embargoed or failed"};
}

std::vector<Migrant> ReplicaSet::withdraw_locked(size_t index, ReplicaHealth why,
                                                 const std::string& reason) {
  Replica& r = *replicas_[index];
  r.health = why;
  r.reason = reason;
  router_.forget(r.spec.id);
  std::vector<Migrant> out = r.current().evacuate();
  options_.logger.info("replica '{}' ({}) withdrawn: {} ({}); moving {} request(s)", r.spec.id,
                       r.spec.device, replica_health_name(why), reason, out.size());
  return out;
}

void ReplicaSet::rehome(std::vector<Migrant> migrants, const std::string& reason) {
  if (migrants.empty()) return;
  std::lock_guard lock(mutex_);
  std::vector<pool::ReplicaState> states = route_states_locked();
  for (Migrant& m : migrants) {
    pool::RouteRequest route;
    route.prompt_tokens =
        static_cast<int64_t>(m.tokens.empty() ? m.request.prompt.size() : m.tokens.size());
    route.max_tokens = m.request.max_tokens - m.generated;
    std::vector<pool::ReplicaState> left = states;
    bool placed = false;
    while (!placed) {
      const int pick = router_.pick(left, route);
      if (pick < 0) break;
      placed = replicas_[static_cast<size_t>(pick)]->current().resume(m);
      if (!placed) left[static_cast<size_t>(pick)].available = false;
    }
    if (placed) {
      ++migrations_;
      continue;
    }
    ++lost_;
    fail_migrant(m, fmt::format("the request lost its device ({}) and no other device is "
                                "serving this model",
                                reason));
  }
}

bool ReplicaSet::fail_replica(size_t index, const std::string& reason) {
  std::vector<Migrant> migrants;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || index >= replicas_.size()) return false;
    Replica& r = *replicas_[index];
    if (r.health != ReplicaHealth::kServing || r.restoring) return false;
    options_.logger.warn("replica '{}' ({}) failed: {}", r.spec.id, r.spec.device, reason);
    migrants = withdraw_locked(index, ReplicaHealth::kFailed, reason);
  }
  rehome(std::move(migrants), fmt::format("'{}' failed", replicas_[index]->spec.id));
  return true;
}

WithdrawStatus ReplicaSet::drain(const std::string& id, bool force) {
  std::vector<Migrant> migrants;
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(replicas_.begin(), replicas_.end(),
                           [&](const auto& r) { return r->spec.id == id; });
    if (it == replicas_.end()) return WithdrawStatus::kUnknown;
    Replica& r = **it;
    if (r.health != ReplicaHealth::kServing || r.restoring) return WithdrawStatus::kNotServing;
    if (serving_count_locked() == 1 && !force) return WithdrawStatus::kLastReplica;
    migrants = withdraw_locked(static_cast<size_t>(it - replicas_.begin()), ReplicaHealth::kDrained,
                               "drained by an administrator");
  }
  rehome(std::move(migrants), fmt::format("'{}' was drained", id));
  return WithdrawStatus::kDone;
}

WithdrawStatus ReplicaSet::embargo(const std::string& vendor, bool force,
                                   std::vector<std::string>& withdrawn) {
  std::vector<Migrant> migrants;
  {
    std::lock_guard lock(mutex_);
    std::vector<size_t> targets;
    for (size_t i = 0; i < replicas_.size(); ++i) {
      const Replica& r = *replicas_[i];
      if (r.health == ReplicaHealth::kServing && !r.restoring && same_vendor(r.spec.vendor, vendor))
        targets.push_back(i);
    }
    if (!targets.empty() && targets.size() == serving_count_locked() && !force) {
      return WithdrawStatus::kLastReplica;
    }
    if (std::none_of(embargoed_.begin(), embargoed_.end(),
                     [&](const std::string& v) { return same_vendor(v, vendor); })) {
      embargoed_.push_back(vendor);
    }
    for (size_t i : targets) {
      std::vector<Migrant> out = withdraw_locked(i, ReplicaHealth::kEmbargoed,
                                                 fmt::format("vendor '{}' is embargoed", vendor));
      withdrawn.push_back(replicas_[i]->spec.id);
      for (Migrant& m : out) migrants.push_back(std::move(m));
    }
  }
  rehome(std::move(migrants), fmt::format("vendor '{}' was embargoed", vendor));
  return WithdrawStatus::kDone;
}

WithdrawStatus ReplicaSet::restore(const std::string& id) {
  size_t index = 0;
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(replicas_.begin(), replicas_.end(),
                           [&](const auto& r) { return r->spec.id == id; });
    if (it == replicas_.end()) return WithdrawStatus::kUnknown;
    Replica& r = **it;
    if (r.health == ReplicaHealth::kServing) return WithdrawStatus::kDone;
    if (r.health != ReplicaHealth::kDrained || r.restoring || stopping_)
      return WithdrawStatus::kNotServing;
    for (const std::string& v : embargoed_) {
      if (same_vendor(v, r.spec.vendor)) return WithdrawStatus::kNotServing;
    }
    r.restoring = true;
    index = static_cast<size_t>(it - replicas_.begin());
  }
  Replica& r = *replicas_[index];
  // The old scheduler was evacuated: its engine thread ends at once (after any step in flight).
  r.current().stop();
  auto fresh = make_scheduler(index);
  std::lock_guard lock(mutex_);
  r.schedulers.push_back(std::move(fresh));
  r.health = ReplicaHealth::kServing;
  r.reason.clear();
  r.restoring = false;
  options_.logger.info("replica '{}' ({}) restored", r.spec.id, r.spec.device);
  return WithdrawStatus::kDone;
}

std::vector<ReplicaReport> ReplicaSet::report() const {
  std::lock_guard lock(mutex_);
  std::vector<ReplicaReport> out;
  const auto now = SteadyClock::now();
  for (const auto& r : replicas_) {
    ReplicaReport rep;
    rep.id = r->spec.id;
    rep.device = r->spec.device;
    rep.vendor = r->spec.vendor;
    rep.health = r->health;
    rep.reason = r->reason;
    rep.price_per_hour = r->spec.price_per_hour;
    rep.uptime_seconds = std::chrono::duration<double>(now - r->loaded).count();
    rep.routed = r->routed;
    rep.stats = r->schedulers.back()->stats();
    SchedulerStats total = rep.stats;
    total.steps = total.step_tokens = total.prompt_tokens = total.cached_prompt_tokens = 0;
    total.generated_tokens = total.finished = total.cancelled = total.errors = 0;
    total.resumed = total.evacuated = 0;
    total.busy_seconds = 0;
    for (const auto& s : r->schedulers) accumulate(total, s->stats());
    rep.stats = total;
    out.push_back(std::move(rep));
  }
  return out;
}

std::vector<double> ReplicaSet::resume_delays() const {
  std::lock_guard lock(delays_mutex_);
  return resume_delays_;
}

std::vector<std::string> ReplicaSet::embargoed_vendors() const {
  std::lock_guard lock(mutex_);
  return embargoed_;
}

void ReplicaSet::watch() {
  std::unique_lock wlock(watch_mutex_);
  while (!watch_cv_.wait_for(wlock, options_.watchdog_period, [this] { return stopping_; })) {
    std::vector<size_t> stuck;
    double stalled = 0;
    {
      std::lock_guard lock(mutex_);
      const auto now = SteadyClock::now();
      for (size_t i = 0; i < replicas_.size(); ++i) {
        const Replica& r = *replicas_[i];
        if (r.health != ReplicaHealth::kServing || r.restoring) continue;
        const SchedulerStats st = r.schedulers.back()->stats();
        if (st.decode_started && now - *st.decode_started > options_.watchdog) {
          stuck.push_back(i);
          stalled = std::chrono::duration<double>(now - *st.decode_started).count();
        }
      }
    }
    wlock.unlock();
    for (size_t i : stuck) {
      fail_replica(
          i, fmt::format("no progress: a decode step has run for {:.1f} s (watchdog limit {} ms)",
                         stalled, options_.watchdog.count()));
    }
    wlock.lock();
  }
}

void ReplicaSet::stop() {
  {
    std::lock_guard lock(mutex_);
    std::lock_guard wlock(watch_mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  watch_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  for (auto& r : replicas_) {
    bool ended = true;
    for (auto& s : r->schedulers) {
      if (!s->stop_within(std::chrono::seconds(5))) ended = false;
    }
    if (!ended) {
      // A hung device still runs a decode step on this engine: leak both rather than free memory
      // under a running thread.
      options_.logger.warn("replica '{}' ({}) is stuck in its device; abandoning it", r->spec.id,
                           r->spec.device);
      for (auto& s : r->schedulers) static_cast<void>(s.release());
      static_cast<void>(r->engine.release());
    }
  }
}

}  // namespace luzao::server
