// ReplicaSet: engines and schedulers per device, routing, withdrawal (drain, embargo, failure,
// watchdog), the move of in-flight requests to surviving replicas, and (with a placement) standby
// devices started by re-plans in a loader thread.
#include "server/replica_set.h"

#include <algorithm>
#include <set>

#include <fmt/ranges.h>

#include "core/error.h"

namespace luzao::server {
namespace {

// The first line of an error message (a load failure is shown in one line).
std::string first_line(std::string_view text) {
  return std::string(text.substr(0, text.find('\n')));
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
    case ReplicaHealth::kStandby:
      return "standby";
    case ReplicaHealth::kLoading:
      return "loading";
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
  // The probe's speeds (planning only; 0: none): the router's estimate until traffic measures it.
  double probed_prefill_tps = 0, probed_decode_tps = 0;

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
  const auto starts = [this](const std::string& id) {
    if (!options_.planning) return true;
    const std::vector<std::string>& start = options_.planning->start;
    return std::find(start.begin(), start.end(), id) != start.end();
  };
  if (std::none_of(specs.begin(), specs.end(), [&](const ReplicaSpec& s) { return starts(s.id); }))
    fail(ErrorKind::kInvalidArgument, "the placement starts none of the pool's devices");
  for (ReplicaSpec& spec : specs) {
    auto r = std::make_unique<Replica>();
    if (!starts(spec.id)) {
      r->health = ReplicaHealth::kStandby;
      r->reason = "standby: not in the placement";
      r->spec = std::move(spec);
      replicas_.push_back(std::move(r));
      continue;
    }
    EngineOptions eo = options_.engine;
    eo.device = spec.device;
    try {
      r->engine = std::make_unique<Engine>(eo);
    } catch (const Error& e) {
      throw Error(e.kind(),
                  fmt::format("replica '{}' on device '{}': {}", spec.id, spec.device, e.what()));
    }
    if (primary_ == nullptr) primary_ = r->engine.get();
    r->spec = std::move(spec);
    r->loaded = SteadyClock::now();
    replicas_.push_back(std::move(r));
  }
  for (size_t i = 0; i < replicas_.size(); ++i) {
    if (replicas_[i]->engine) replicas_[i]->schedulers.push_back(make_scheduler(i));
    if (!options_.planning) continue;
    for (const pool::PlacementDevice& d : options_.planning->problem.devices) {
      if (d.id != replicas_[i]->spec.id) continue;
      replicas_[i]->probed_prefill_tps = d.prefill_tps;
      replicas_[i]->probed_decode_tps =
          d.decode_tps_batched > 0 ? d.decode_tps_batched : d.decode_tps;
    }
  }
  if (options_.watchdog.count() > 0) watchdog_ = std::thread([this] { watch(); });
  if (options_.planning) {
    plan_ = options_.planning->placement;
    loader_ = std::thread([this] { load_standby(); });
  }
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
  return *primary_;
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
  // A replica not measured yet is taken at its probed speed (a pool file with a workload and a
  // probe), else assumed as fast as the fastest measured one, so that it gets work (and a
  // measurement) instead of the router's pessimistic defaults starving it.
  for (size_t i = 0; i < states.size(); ++i) {
    if (!states[i].available) continue;
    if (states[i].prefill_tps == 0) states[i].prefill_tps = replicas_[i]->probed_prefill_tps;
    if (states[i].decode_tps == 0) states[i].decode_tps = replicas_[i]->probed_decode_tps;
  }
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
  const std::string trigger = fmt::format("'{}' failed", replicas_[index]->spec.id);
  rehome(std::move(migrants), trigger);
  std::lock_guard lock(mutex_);
  replan_locked(trigger);
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
  const std::string trigger = fmt::format("'{}' was drained", id);
  rehome(std::move(migrants), trigger);
  std::lock_guard lock(mutex_);
  replan_locked(trigger);
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
    // Standby and loading devices of the vendor will not be started (a load in progress is
    // discarded when it ends); they are not listed as withdrawn, having served nothing.
    for (auto& r : replicas_) {
      if ((r->health == ReplicaHealth::kStandby || r->health == ReplicaHealth::kLoading) &&
          same_vendor(r->spec.vendor, vendor)) {
        r->health = ReplicaHealth::kEmbargoed;
        r->reason = fmt::format("vendor '{}' is embargoed", vendor);
      }
    }
  }
  const std::string trigger = fmt::format("vendor '{}' was embargoed", vendor);
  rehome(std::move(migrants), trigger);
  std::lock_guard lock(mutex_);
  replan_locked(trigger);
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
    if (r->schedulers.empty()) {  // standby, loading, or failed to load: nothing ran here
      rep.uptime_seconds = 0;
      out.push_back(std::move(rep));
      continue;
    }
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

std::optional<PlacementReport> ReplicaSet::placement() const {
  if (!options_.planning) return std::nullopt;
  std::lock_guard lock(mutex_);
  PlacementReport out;
  out.replicas = replica_ids(plan_);
  out.cost_per_hour = plan_.cost_per_hour;
  out.cost_per_million_tokens = plan_.cost_per_million_tokens;
  out.feasible = plan_.feasible;
  out.reason = plan_.reason;
  out.fallback = options_.planning->fallback;
  out.replans = replans_;
  return out;
}

void ReplicaSet::replan_locked(const std::string& trigger) {
  if (!options_.planning || stopping_) return;
  std::set<std::string> withdrawn;
  std::vector<std::string> in_service;
  for (const auto& r : replicas_) {
    switch (r->health) {
      case ReplicaHealth::kDrained:
      case ReplicaHealth::kEmbargoed:
      case ReplicaHealth::kFailed:
        withdrawn.insert(r->spec.id);
        break;
      case ReplicaHealth::kServing:
      case ReplicaHealth::kLoading:
        in_service.push_back(r->spec.id);
        break;
      case ReplicaHealth::kStandby:
        break;
    }
  }
  pool::Placement next =
      replan_serving(options_.planning->problem, plan_, in_service, withdrawn, embargoed_);
  ReplanRecord rec;
  rec.time = pool::utc_timestamp();
  rec.trigger = trigger;
  rec.replicas = replica_ids(next);
  rec.added = next.added;
  rec.removed = next.removed;
  rec.feasible = next.feasible;
  rec.reason = next.reason;
  rec.cost_per_hour = next.cost_per_hour;
  rec.cost_per_million_tokens = next.cost_per_million_tokens;
  std::vector<std::string> starting, kept;
  for (const std::string& replica : next.added) {
    // A layer split's devices start as separate replicas (the server runs no splits).
    for (const pool::PlannedReplica& pr : next.replicas) {
      if (pr.id() != replica) continue;
      for (const std::string& device : pr.device_ids) {
        for (size_t i = 0; i < replicas_.size(); ++i) {
          Replica& r = *replicas_[i];
          if (r.spec.id != device || r.health != ReplicaHealth::kStandby) continue;
          r.health = ReplicaHealth::kLoading;
          r.reason = fmt::format("loading: started by the re-plan after {}", trigger);
          load_queue_.push_back(i);
          starting.push_back(device);
        }
      }
    }
  }
  for (const std::string& replica : next.removed) {
    if (withdrawn.contains(replica)) continue;
    kept.push_back(replica);  // surplus by the plan, but a serving replica is never stopped here
  }
  options_.logger.info(
      "re-plan after {}: {} replica(s) [{}], {:.2f}/h, {:.4f} per million tokens, {}; added [{}], "
      "removed [{}]; starting [{}]{}",
      trigger, next.replicas.size(), fmt::join(rec.replicas, ", "), next.cost_per_hour,
      next.cost_per_million_tokens,
      next.feasible ? std::string("feasible") : fmt::format("infeasible ({})", next.reason),
      fmt::join(next.added, ", "), fmt::join(next.removed, ", "), fmt::join(starting, ", "),
      kept.empty() ? std::string()
                   : fmt::format("; kept serving though surplus: {}", fmt::join(kept, ", ")));
  plan_ = std::move(next);
  replans_.push_back(std::move(rec));
  if (!starting.empty()) load_cv_.notify_all();
}

void ReplicaSet::load_standby() {
  std::unique_lock lock(mutex_);
  while (true) {
    load_cv_.wait(lock, [this] { return stopping_ || !load_queue_.empty(); });
    if (stopping_) return;
    const size_t index = load_queue_.front();
    load_queue_.erase(load_queue_.begin());
    EngineOptions eo = options_.engine;
    eo.device = replicas_[index]->spec.device;
    const std::string id = replicas_[index]->spec.id;
    lock.unlock();
    // Loading takes time: requests keep flowing to the serving replicas meanwhile.
    const auto t0 = SteadyClock::now();
    std::unique_ptr<Engine> engine;
    std::string error;
    try {
      engine = std::make_unique<Engine>(eo);
    } catch (const std::exception& e) {
      error = first_line(e.what());
    }
    lock.lock();
    Replica& r = *replicas_[index];
    if (stopping_) {
      r.engine = std::move(engine);  // freed with the set
      return;
    }
    if (!engine) {
      if (r.health == ReplicaHealth::kLoading) {
        r.health = ReplicaHealth::kFailed;
        r.reason = fmt::format("cannot load the model: {}", error);
        options_.logger.warn("replica '{}' ({}) failed to load: {}", id, eo.device, error);
        replan_locked(fmt::format("'{}' failed to load", id));
      }
      continue;
    }
    r.engine = std::move(engine);
    if (r.health != ReplicaHealth::kLoading) continue;  // embargoed while loading: stays out
    r.loaded = SteadyClock::now();
    r.schedulers.push_back(make_scheduler(index));
    r.health = ReplicaHealth::kServing;
    r.reason.clear();
    options_.logger.info("replica '{}' ({}) started by the re-plan: loaded in {:.1f} s, serving",
                         id, eo.device,
                         std::chrono::duration<double>(SteadyClock::now() - t0).count());
  }
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
  load_cv_.notify_all();
  if (loader_.joinable()) loader_.join();
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
