// Startup placement and re-plans for `luzao serve --pool` with a workload (see pool_placement.h
// and docs/scheduling.md, "Placement in the server").
#include "server/pool_placement.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace luzao::server {

bool same_vendor(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::vector<const pool::PoolDevice*> eligible_devices(const pool::PoolSpec& spec) {
  std::vector<const pool::PoolDevice*> out;
  for (const pool::PoolDevice& d : spec.devices) {
    const std::string vendor = d.vendor();
    const bool excluded =
        std::any_of(spec.policy.exclude_vendors.begin(), spec.policy.exclude_vendors.end(),
                    [&](const std::string& v) { return same_vendor(v, vendor); });
    if (!excluded) out.push_back(&d);
  }
  return out;
}

std::vector<std::string> replica_ids(const pool::Placement& placement) {
  std::vector<std::string> out;
  for (const pool::PlannedReplica& r : placement.replicas) out.push_back(r.id());
  return out;
}

std::vector<std::string> device_ids(const pool::Placement& placement) {
  std::vector<std::string> out;
  for (const pool::PlannedReplica& r : placement.replicas) {
    for (const std::string& id : r.device_ids) {
      if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
    }
  }
  return out;
}

ReplicaPlanning plan_startup(const pool::PoolSpec& spec, const pool::ProbeResults& probe) {
  LUZAO_CHECK(spec.workload.has_value());
  const std::vector<const pool::PoolDevice*> eligible = eligible_devices(spec);
  if (eligible.empty()) {
    fail(ErrorKind::kInvalidArgument,
         "{}: no device left to serve on (policy.exclude_vendors excludes every one)",
         spec.source.string());
  }
  ReplicaPlanning out;
  out.problem = pool::make_problem(spec, probe, *spec.workload);
  // The policy's vendors as the devices spell them: placement compares them exactly.
  for (const pool::PoolDevice& d : spec.devices) {
    if (std::find(eligible.begin(), eligible.end(), &d) == eligible.end()) {
      out.problem.excluded_vendors.insert(d.vendor());
    }
  }
  out.placement = pool::place(out.problem);
  out.start = device_ids(out.placement);
  if (out.start.empty()) {
    out.fallback = true;
    for (const pool::PoolDevice* d : eligible) out.start.push_back(d->id);
  }
  return out;
}

std::string describe_startup(const ReplicaPlanning& planning, size_t devices) {
  const pool::Placement& p = planning.placement;
  const pool::Workload& w = planning.problem.workload;
  std::vector<std::string> standby;
  for (const pool::PlacementDevice& d : planning.problem.devices) {
    if (std::find(planning.start.begin(), planning.start.end(), d.id) == planning.start.end())
      standby.push_back(d.id);
  }
  std::string line = fmt::format(
      "placement for {:g} requests/s ({:g} prompt + {:g} output tokens): {} replica(s) [{}] of {} "
      "device(s), {:.2f}/h, {:.4f} per million tokens, ",
      w.rps, w.prompt_tokens, w.output_tokens, p.replicas.size(), fmt::join(replica_ids(p), ", "),
      devices, p.cost_per_hour, p.cost_per_million_tokens);
  line += p.feasible ? "feasible" : fmt::format("infeasible ({})", p.reason);
  for (const pool::PlannedReplica& r : p.replicas) {
    if (r.device_ids.size() > 1) {
      line += fmt::format("; layer split {} started as {} separate replicas", r.id(),
                          r.device_ids.size());
    }
  }
  if (planning.fallback) {
    line +=
        fmt::format("; nothing placed: starting every eligible device ({})", planning.start.size());
  } else if (!p.feasible) {
    line += "; serving with the placement's replicas anyway";
  }
  line += standby.empty() ? "; no standby device"
                          : fmt::format("; standby: {}", fmt::join(standby, ", "));
  return line;
}

pool::Placement replan_serving(const pool::PlacementProblem& base, const pool::Placement& previous,
                               const std::vector<std::string>& in_service,
                               const std::set<std::string>& withdrawn,
                               const std::vector<std::string>& embargoed_vendors) {
  pool::PlacementProblem problem = base;
  problem.excluded_ids.insert(withdrawn.begin(), withdrawn.end());
  for (const pool::PlacementDevice& d : problem.devices) {
    for (const std::string& v : embargoed_vendors) {
      if (same_vendor(v, d.vendor)) problem.excluded_vendors.insert(d.vendor);
    }
  }
  // The previous placement as it stands: the last plan's devices plus whatever else serves now
  // (a restored device, every device of an infeasible start), one replica per device.
  std::vector<std::string> ids = device_ids(previous);
  for (const std::string& id : in_service) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  std::vector<pool::PlannedReplica> before;
  for (const std::string& id : ids) {
    auto it = std::find_if(problem.devices.begin(), problem.devices.end(),
                           [&](const pool::PlacementDevice& d) { return d.id == id; });
    if (it != problem.devices.end()) before.push_back(pool::estimate_replica({&*it}, problem));
  }
  pool::Placement prev;
  prev.replicas = std::move(before);
  return pool::replan(problem, prev);
}

}  // namespace luzao::server
