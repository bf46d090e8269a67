// Placement: which devices (or layer-split device pairs) run replicas of the model so that the
// offered load is served within the latency SLO at the least cost per generated token. The
// queueing model and its equations are in docs/scheduling.md ("Placement model").
#pragma once

#include <set>
#include <string>
#include <vector>

#include "pool/pool_spec.h"

namespace luzao::pool {

// One device as placement sees it: its price and measured (or assumed) speed.
struct PlacementDevice {
  std::string id;
  std::string vendor;
  double price_per_hour = 0;
  double prefill_tps = 0;         // 0: unknown, kDefaultPrefillTps
  double decode_tps = 0;          // one sequence; 0: unknown, kDefaultDecodeTps
  double decode_tps_batched = 0;  // aggregate at max_parallel sequences; 0: decode_tps
  double memory_gb = 0;           // 0: unknown (assumed to hold the model)
};

struct PlacementOptions {
  double target_utilization = 0.8;  // a replica is loaded to at most this fraction of its capacity
  int min_replicas = 1;             // at least this many replicas (when enough devices remain)
  bool allow_splits = false;        // also consider a layer split over a pair of devices
  double model_memory_gb = 0;       // model size; a device with less memory needs a split partner
  // Spare capacity across vendors (the pool policy's survive_vendor_loss): feasible only when, for
  // every vendor with replicas in the placement, the replicas with no device of that vendor carry
  // the whole offered load within the SLO and the target utilization (at least one of them).
  bool survive_vendor_loss = false;
};

struct PlacementProblem {
  std::vector<PlacementDevice> devices;
  Workload workload;
  Slo slo;
  PlacementOptions options;
  std::set<std::string> excluded_ids;      // withdrawn, drained, failed devices
  std::set<std::string> excluded_vendors;  // the policy's exclude_vendors plus embargoes
};

// A replica: one device, or a layer split over two with the ratio of layers on each.
struct PlannedReplica {
  std::vector<std::string> device_ids;
  std::vector<double> ratio;         // fraction of layers per device (sums to 1)
  std::string vendor;                // the vendor of the first device
  std::vector<std::string> vendors;  // every vendor among its devices (sorted, distinct)
  double price_per_hour = 0;
  double prefill_tps = 0, decode_tps = 0, decode_tps_batched = 0;  // combined speeds
  double service_s = 0;    // busy seconds per mean request: prompt/prefill + output/batched decode
  double max_rps = 0;      // the most load it takes within the SLO and target utilization
  double load_rps = 0;     // its share of the offered load
  double utilization = 0;  // load_rps * service_s
  double ttft_ms = 0;      // estimated mean time to first token at that load
  double tpot_ms = 0;      // estimated mean time per output token at that load
  std::string id() const;  // device ids joined by '+'
};

struct Placement {
  std::vector<PlannedReplica> replicas;
  bool feasible = false;  // capacity >= offered load and every replica meets the SLO
  std::string reason;     // why not feasible (empty when feasible)
  double offered_rps = 0;
  double capacity_rps = 0;   // sum of max_rps
  double cost_per_hour = 0;  // sum of replica prices
  // cost_per_hour / generated tokens per hour * 1e6 at the offered load (0 when no load).
  double cost_per_million_tokens = 0;
  size_t evaluated = 0;                     // candidate sets examined (for the docs and the tests)
  std::vector<std::string> added, removed;  // replan(): replica ids started and stopped
};

// The estimate for one candidate replica (single device or split) under `problem`'s workload and
// SLO: service time, capacity (max_rps = 0 when it cannot meet the SLO even when idle).
PlannedReplica estimate_replica(const std::vector<const PlacementDevice*>& devices,
                                const PlacementProblem& problem);

// Builds a problem from a pool file and its probe results (devices without a probe get the
// defaults), the workload (the pool file's, or `workload`), and the policy's excluded vendors.
PlacementProblem make_problem(const PoolSpec& spec, const ProbeResults& probe,
                              const Workload& workload);

// Heuristic: greedy by price per unit of capacity from several orderings, then local improvement
// (drop a replica, swap one for another, swap two for one) until nothing lowers the cost.
// O(candidates^2) per improvement round; fine for thousands of devices. With survive_vendor_loss
// and no placement that survives every vendor's loss, place() and replan() return the placement
// for the load alone (when there is one), still feasible = false with the policy's reason.
Placement place(const PlacementProblem& problem);
// The optimum by exhaustive search over every set of replicas; throws Error(kInvalidArgument)
// for more than 16 eligible devices.
Placement place_exhaustive(const PlacementProblem& problem);
// Re-plans after devices were withdrawn or the load changed: keeps the surviving replicas of
// `previous` where that stays feasible and costs at most 10% more than a fresh plan, adding the
// cheapest capacity needed; otherwise takes the fresh plan. Fills `added` and `removed`.
Placement replan(const PlacementProblem& problem, const Placement& previous);

// For survive_vendor_loss: the vendor whose withdrawal leaves the least capacity among
// `replicas` (those with none of its devices), and that capacity. Empty vendor when `replicas`
// is empty. A replica's vendors are `vendors`, or `vendor` when that list is empty.
struct VendorLoss {
  std::string vendor;
  double surviving_rps = 0;  // sum of max_rps of the replicas left
  int surviving_replicas = 0;
};
VendorLoss worst_vendor_loss(const std::vector<PlannedReplica>& replicas);

// Assigns the offered load to `replicas` in proportion to their max_rps and fills load_rps,
// utilization, ttft_ms, tpot_ms and the placement totals; feasibility includes the
// survive_vendor_loss condition when the problem sets it. Used by all three functions above.
Placement finish_placement(std::vector<PlannedReplica> replicas, const PlacementProblem& problem);

}  // namespace luzao::pool
