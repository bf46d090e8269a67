// The serving side of a device pool: one replica (Engine + Scheduler) per device, requests routed
// among them (pool::Router: least expected completion time, prefix affinity), and devices
// withdrawn at run time (drain, vendor embargo, backend failure, watchdog) with their in-flight
// requests moved to surviving replicas without the client noticing. With a placement (a pool file
// with a workload) only the placed devices load the model; the others wait on standby, and a
// withdrawal re-plans and starts the standby devices the new plan adds, in the background.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "pool/routing.h"
#include "runtime/engine.h"
#include "runtime/scheduler.h"
#include "server/pool_placement.h"

namespace luzao::server {

struct ReplicaSpec {
  std::string id;      // unique ("cpu", "gpu-a0"); the pool file's device id
  std::string device;  // luzao device name for EngineOptions.device
  std::string vendor;  // what POST /admin/embargo matches
  double price_per_hour = 0;
  std::function<void()> before_decode;  // testing hook (SchedulerOptions::before_decode)
};

struct ReplicaSetOptions {
  EngineOptions engine;  // `device` is replaced by each replica's
  SchedulerOptions scheduler;
  // A replica whose decode step runs longer than this has failed (0: no watchdog).
  std::chrono::milliseconds watchdog{60000};
  std::chrono::milliseconds watchdog_period{100};
  Logger logger;
  // Placement-driven serving: only the specs named in planning->start load at startup, the others
  // are standby; a withdrawal re-plans (replan_serving) and loads the standby devices it adds.
  // Absent: every spec loads and nothing is re-planned.
  std::optional<ReplicaPlanning> planning;
};

// kStandby: in the pool, not loaded (the placement did not choose it); kLoading: a re-plan chose
// it and its model is being loaded.
enum class ReplicaHealth { kServing, kDrained, kEmbargoed, kFailed, kStandby, kLoading };
const char* replica_health_name(ReplicaHealth health);  // "serving", "drained", "standby", ...

// One replica as /v1/pool and /metrics show it.
struct ReplicaReport {
  std::string id, device, vendor;
  ReplicaHealth health = ReplicaHealth::kServing;
  std::string reason;  // why it is not serving
  double price_per_hour = 0;
  double uptime_seconds = 0;  // since it was loaded
  SchedulerStats stats;       // summed over every scheduler it has had
  uint64_t routed = 0;        // new requests the router sent here
};

struct SubmitResult {
  std::shared_ptr<GenerationStream> stream;  // null: refused, see `busy` and `refusal`
  bool busy = false;                         // every serving replica's queue is full
  std::string refusal;
};

// One re-plan after a withdrawal, as /v1/pool shows it.
struct ReplanRecord {
  std::string time;     // ISO-8601 UTC
  std::string trigger;  // "'gpu-a0' was drained", "vendor 'acme' was embargoed", ...
  std::vector<std::string> replicas, added, removed;  // replica ids (pool::Placement's)
  bool feasible = false;
  std::string reason;
  double cost_per_hour = 0, cost_per_million_tokens = 0;
};

// The current plan (the startup placement, or the last re-plan) and every re-plan so far.
struct PlacementReport {
  std::vector<std::string> replicas;
  double cost_per_hour = 0, cost_per_million_tokens = 0;  // planned, at the stated workload
  bool feasible = false;
  std::string reason;
  bool fallback = false;  // nothing was placed: every eligible device was started
  std::vector<ReplanRecord> replans;
};

enum class WithdrawStatus { kDone, kUnknown, kLastReplica, kNotServing };

class ReplicaSet {
 public:
  // Loads the model on every spec's device (in order; with options.planning only those it starts)
  // and starts its scheduler, the watchdog and (with planning) the loader thread. Throws Error
  // naming the replica when a device cannot load the model, kInvalidArgument for no specs,
  // duplicate ids or no spec to start.
  ReplicaSet(std::vector<ReplicaSpec> specs, const ReplicaSetOptions& options);
  ~ReplicaSet();  // stop()
  ReplicaSet(const ReplicaSet&) = delete;
  ReplicaSet& operator=(const ReplicaSet&) = delete;

  // The first loaded replica's engine: tokenizer, chat template and limits, shared by all (same
  // model). Valid for the set's lifetime.
  const Engine& engine() const;
  size_t size() const;

  // Thread-safe. Routes a validated request to a serving replica. Throws Error(kInvalidArgument)
  // for a request the schedulers reject (see Scheduler::submit).
  SubmitResult submit(GenerationRequest request, uint64_t prefix_key);

  // Thread-safe. Withdraws replica `id` (drain) and moves its requests. kLastReplica: it is the
  // last serving one and `force` is false (nothing changes); with `force`, its requests fail with
  // a clear error. kNotServing: already withdrawn, standby or loading. With planning, every
  // withdrawal (drain, embargo, failure) re-plans once its requests have moved.
  WithdrawStatus drain(const std::string& id, bool force);
  // Thread-safe. Withdraws every serving replica of `vendor` (case-insensitive) and keeps the
  // vendor embargoed (restore() refuses its replicas). Same kLastReplica rule over the set.
  // `withdrawn` receives the ids taken out.
  WithdrawStatus embargo(const std::string& vendor, bool force,
                         std::vector<std::string>& withdrawn);
  // Thread-safe. Puts a drained replica back in service (a fresh scheduler on its engine).
  // kNotServing: it is failed or its vendor is embargoed (unchanged); kDone when it already serves.
  WithdrawStatus restore(const std::string& id);
  // Thread-safe. Marks a replica failed (as a backend error or the watchdog would) and moves its
  // requests; used by the watchdog and the fault callback. Returns false when it was not serving.
  bool fail_replica(size_t index, const std::string& reason);

  std::vector<ReplicaReport> report() const;
  uint64_t migrations() const { return migrations_.load(); }  // requests moved
  uint64_t lost_requests() const { return lost_.load(); }     // moved with nowhere to go
  // Seconds from leaving a replica to the first token on the next, per moved request (copy).
  std::vector<double> resume_delays() const;
  std::vector<std::string> embargoed_vendors() const;
  // The placement and its re-plans; empty without options.planning.
  std::optional<PlacementReport> placement() const;

  // Stops the loader (waiting for a load in progress), every scheduler (requests finish with
  // kCancelled) and the watchdog. A replica stuck in
  // a hung device is abandoned after a grace period (its engine is leaked, never freed under a
  // running thread). Idempotent.
  void stop();

 private:
  struct Replica;
  std::unique_ptr<Scheduler> make_scheduler(size_t index);
  // Withdraws the replicas (mutex_ held) and returns their requests; then rehome() them unlocked.
  std::vector<Migrant> withdraw_locked(size_t index, ReplicaHealth why, const std::string& reason);
  void rehome(std::vector<Migrant> migrants, const std::string& reason);
  size_t serving_count_locked() const;
  std::vector<pool::ReplicaState> route_states_locked() const;
  void watch();
  // Re-plans after a withdrawal (mutex_ held) and queues the standby devices it adds for loading.
  void replan_locked(const std::string& trigger);
  void load_standby();  // the loader thread

  ReplicaSetOptions options_;
  pool::Router router_;
  mutable std::mutex mutex_;  // replicas' health and schedulers; taken before a scheduler's
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::vector<std::string> embargoed_;
  std::atomic<uint64_t> migrations_{0};
  std::atomic<uint64_t> lost_{0};
  mutable std::mutex delays_mutex_;
  std::vector<double> resume_delays_;
  std::mutex watch_mutex_;
  std::condition_variable watch_cv_;
  bool stopping_ = false;
  std::thread watchdog_;
  const Engine* primary_ = nullptr;  // engine(): the first engine loaded
  // Planning (options_.planning set): the current plan, its history and the loads to do.
  pool::Placement plan_;
  std::vector<ReplanRecord> replans_;
  std::vector<size_t> load_queue_;   // indices of kLoading replicas not yet picked up
  std::condition_variable load_cv_;  // with mutex_
  std::thread loader_;
};

}  // namespace luzao::server
