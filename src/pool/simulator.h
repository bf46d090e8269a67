// A discrete-event simulation of a device pool serving a request trace, driven by the same
// placement (pool/placement.h) and routing (pool/routing.h) code as the server: continuous
// batching per replica, a vendor withdrawn mid-run with its in-flight requests moved and
// re-prefilled.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "pool/placement.h"

namespace luzao::pool {

// Speed and price of one class of simulated device. The built-in table's figures are
// illustrative (orders of magnitude for a 7-8B model), not measurements.
struct VendorClass {
  std::string vendor;
  double price_per_hour = 0;
  double prefill_tps = 0;
  double decode_tps = 0;          // one sequence
  double decode_tps_batched = 0;  // aggregate at `parallel` sequences
  int parallel = 1;               // sequences decoded at once
};
const std::vector<VendorClass>& builtin_vendor_classes();

// `count` devices spread round-robin over the first `vendors` classes, speeds jittered by up to
// ±10% and prices by ±5% (deterministic in `seed`). Ids are "<vendor>-<n>".
std::vector<PlacementDevice> make_sim_devices(int count, int vendors, uint64_t seed);

struct SimRequest {
  double arrival_s = 0;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 1;
  uint64_t prefix_key = 0;  // requests sharing a prompt prefix (0: none)
};

// Poisson arrivals at `rps` for `duration_s`; prompt and output lengths uniform in
// [0.25, 1.75] x their means; prefixes drawn from `prefix_groups` shared system prompts.
std::vector<SimRequest> poisson_trace(double rps, double duration_s, double mean_prompt,
                                      double mean_output, int prefix_groups, uint64_t seed);
// CSV lines "arrival_s,prompt_tokens,output_tokens[,prefix_group]" (a header line and '#'
// comments are skipped), sorted by arrival. Throws Error(kBadFile) naming the file and line.
std::vector<SimRequest> load_trace(const std::filesystem::path& path);

struct SimConfig {
  std::vector<PlacementDevice> devices;
  std::vector<int> parallel;  // per device: sequences decoded at once (empty: 8 each)
  std::vector<SimRequest> requests;
  Slo slo;
  PlacementOptions options;
  std::set<std::string> excluded_vendors;  // never placed (the pool policy's exclude_vendors)
  std::optional<Workload> plan_for;        // the workload placed for (default: the trace's mean)
  std::optional<std::string> withdraw_vendor;
  double withdraw_at_s = 0;
  double spinup_s = 0;  // seconds a newly placed replica needs before it serves (model load)
  double affinity_slack = 0.25;
};

struct SimWindow {
  int64_t requests = 0, completed = 0, lost = 0, moved = 0;
  int64_t generated_tokens = 0;    // tokens produced in the window
  int64_t reprefilled_tokens = 0;  // history prefilled again after moves
  double seconds = 0;              // length of the window
  double cost = 0;                 // currency spent on running replicas in the window
  double cost_per_million_tokens = 0;
  double throughput_tps = 0;  // generated tokens per second
  double ttft_p50_ms = 0, ttft_p99_ms = 0, tpot_p50_ms = 0, tpot_p99_ms = 0;
  double slo_attainment = 0;  // fraction of completed requests within both SLO limits
  double move_delay_p50_ms = 0, move_delay_p99_ms = 0;  // stall of moved requests
};

struct SimReport {
  SimWindow all, before, after;  // before/after: requests arriving before/after the withdrawal
  Placement initial, replanned;  // replanned: empty when nothing was withdrawn
  int64_t affinity_hits = 0;
  double end_s = 0;  // when the last request completed
};

// Runs the simulation. Deterministic for a given config.
SimReport simulate(const SimConfig& config);

}  // namespace luzao::pool
