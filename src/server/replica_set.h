// The serving side of a device pool: one replica (Engine + Scheduler) per device, requests routed
// among them (pool::Router: least expected completion time, prefix affinity), and devices
// withdrawn at run time (drain, vendor embargo, backend failure, watchdog) with their in-flight
// requests moved to surviving replicas without the client noticing.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "pool/routing.h"
#include "runtime/engine.h"
#include "runtime/scheduler.h"

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
};

enum class ReplicaHealth { kServing, kDrained, kEmbargoed, kFailed };
const char* replica_health_name(ReplicaHealth health);  // "serving", "drained", ...

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

enum class WithdrawStatus { kDone, kUnknown, kLastReplica, kNotServing };

class ReplicaSet {
 public:
  // Loads the model on every spec's device (in order) and starts its scheduler and the watchdog.
  // Throws Error naming the replica when a device cannot load the model, kInvalidArgument for
  // no specs or duplicate ids.
  ReplicaSet(std::vector<ReplicaSpec> specs, const ReplicaSetOptions& options);
  ~ReplicaSet();  // stop()
  ReplicaSet(const ReplicaSet&) = delete;
  ReplicaSet& operator=(const ReplicaSet&) = delete;

  // The first replica's engine: tokenizer, chat template and limits, shared by all (same model).
  const Engine& engine() const;
  size_t size() const;

  // Thread-safe. Routes a validated request to a serving replica. Throws Error(kInvalidArgument)
  // for a request the schedulers reject (see Scheduler::submit).
  SubmitResult submit(GenerationRequest request, uint64_t prefix_key);

  // Thread-safe. Withdraws replica `id` (drain) and moves its requests. kLastReplica: it is the
  // last serving one and `force` is false (nothing changes); with `force`, its requests fail with
  // a clear error. kNotServing: already withdrawn.
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

  // Stops every scheduler (requests finish with kCancelled) and the watchdog. A replica stuck in
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
};

}  // namespace luzao::server
