// Placement for `luzao serve --pool` with a workload: which pool devices start a replica at
// startup (pool::place on the probed speeds) and what a re-plan after a withdrawal starts
// (pool::replan without the withdrawn devices and embargoed vendors). No engines here: the
// ReplicaSet acts on these decisions.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "pool/placement.h"
#include "pool/pool_spec.h"

namespace luzao::server {

// What the server plans with: the problem (device ids are the pool's, which are the replica ids)
// and the placement at startup.
struct ReplicaPlanning {
  pool::PlacementProblem problem;
  pool::Placement placement;
  // Device ids loaded at startup: the placement's devices (a layer split's devices each become a
  // replica of their own), or, when the placement has no replica, every eligible device.
  std::vector<std::string> start;
  bool fallback = false;  // `start` is every eligible device, not the placement
};

// Case-insensitive vendor comparison (embargoes and the policy's exclude_vendors).
bool same_vendor(std::string_view a, std::string_view b);

// The devices of `spec` whose vendor the policy does not exclude, in file order.
std::vector<const pool::PoolDevice*> eligible_devices(const pool::PoolSpec& spec);

// Plans the startup placement for `spec` (which must have a workload) with the measured speeds in
// `probe` (devices without one get the placement defaults). Never throws for an infeasible
// placement: the result says so. Throws Error(kInvalidArgument) when no device is eligible.
ReplicaPlanning plan_startup(const pool::PoolSpec& spec, const pool::ProbeResults& probe);

// One log line for the startup placement: replicas, cost per hour and per million tokens,
// feasibility or the reason, the standby devices, and what starts when infeasible.
std::string describe_startup(const ReplicaPlanning& planning, size_t devices);

// The replica ids of a placement ("a", "a+b" for a split), and the device ids they use.
std::vector<std::string> replica_ids(const pool::Placement& placement);
std::vector<std::string> device_ids(const pool::Placement& placement);

// Re-plan after a withdrawal. `in_service`: devices serving or loading now; `previous`: the last
// plan (its withdrawn replicas end up in `removed`); `withdrawn`: drained, embargoed and failed
// devices; `embargoed_vendors`: matched case-insensitively against the devices' vendors.
// `added` lists the replicas to start (a split's devices to be started separately).
pool::Placement replan_serving(const pool::PlacementProblem& base, const pool::Placement& previous,
                               const std::vector<std::string>& in_service,
                               const std::set<std::string>& withdrawn,
                               const std::vector<std::string>& embargoed_vendors);

}  // namespace luzao::server
