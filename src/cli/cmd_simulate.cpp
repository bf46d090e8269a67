// `luzao simulate`: replays a request trace (or Poisson arrivals) on a pool of simulated devices
// of several vendors with the server's placement and routing code, optionally withdrawing one
// vendor mid-run, and reports cost per million tokens, latency percentiles and requests lost.
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "pool/pool_spec.h"
#include "pool/simulator.h"

namespace luzao::cli {
namespace {

struct SimulateArgs {
  int devices = 1000;
  int vendors = 3;
  std::string pool;
  std::string trace;
  double rps = 0;  // 0: 40% of the pool's capacity within the SLO
  double duration = 60;
  double prompt_tokens = 512;
  double output_tokens = 128;
  int prefix_groups = 64;
  std::string withdraw_vendor;
  double at = -1;  // -1: half the duration
  double spinup = 10;
  double ttft_ms = 2000;
  double tpot_ms = 100;
  int parallel = 0;                  // 0: the vendor class's
  bool survive_vendor_loss = false;  // also set by a pool file's policy
  uint64_t seed = 1;
  bool json = false;
};

nlohmann::json window_json(const pool::SimWindow& w) {
  return {{"requests", w.requests},
          {"completed", w.completed},
          {"lost", w.lost},
          {"moved", w.moved},
          {"generated_tokens", w.generated_tokens},
          {"reprefilled_tokens", w.reprefilled_tokens},
          {"seconds", w.seconds},
          {"cost", w.cost},
          {"cost_per_million_tokens", w.cost_per_million_tokens},
          {"throughput_tps", w.throughput_tps},
          {"ttft_p50_ms", w.ttft_p50_ms},
          {"ttft_p99_ms", w.ttft_p99_ms},
          {"tpot_p50_ms", w.tpot_p50_ms},
          {"tpot_p99_ms", w.tpot_p99_ms},
          {"slo_attainment", w.slo_attainment},
          {"move_delay_p50_ms", w.move_delay_p50_ms},
          {"move_delay_p99_ms", w.move_delay_p99_ms}};
}

std::map<std::string, int> by_vendor(const pool::Placement& p) {
  std::map<std::string, int> out;
  for (const pool::PlannedReplica& r : p.replicas) ++out[r.vendor];
  return out;
}

nlohmann::json placement_json(const pool::Placement& p) {
  return {{"replicas", p.replicas.size()},
          {"by_vendor", by_vendor(p)},
          {"feasible", p.feasible},
          {"reason", p.reason},
          {"offered_rps", p.offered_rps},
          {"capacity_rps", p.capacity_rps},
          {"cost_per_hour", p.cost_per_hour},
          {"planned_cost_per_million_tokens", p.cost_per_million_tokens},
          {"started", p.added.size()},
          {"stopped", p.removed.size()}};
}

std::string vendor_list(const pool::Placement& p) {
  std::string s;
  for (const auto& [v, n] : by_vendor(p)) s += fmt::format("{}{} {}", s.empty() ? "" : ", ", n, v);
  return s.empty() ? "none" : s;
}

void print_window(const char* name, const pool::SimWindow& w) {
  fmt::print(
      "{:<8} {:>8} {:>8} {:>5} {:>6} {:>10.0f} {:>9.4f} {:>8.0f}/{:<7.0f} {:>6.1f}/{:<6.1f} "
      "{:>6.1f}%\n",
      name, w.requests, w.completed, w.lost, w.moved, w.throughput_tps, w.cost_per_million_tokens,
      w.ttft_p50_ms, w.ttft_p99_ms, w.tpot_p50_ms, w.tpot_p99_ms, 100.0 * w.slo_attainment);
}

int run_simulate(const SimulateArgs& a) {
  using Clock = std::chrono::steady_clock;
  pool::SimConfig c;
  c.slo = {a.ttft_ms, a.tpot_ms};
  c.spinup_s = a.spinup;
  if (!a.pool.empty()) {
    const pool::PoolSpec spec = pool::load_pool_spec(a.pool);
    const auto probe_file = pool::probe_path_for(a.pool);
    const pool::ProbeResults probe =
        std::filesystem::exists(probe_file) ? pool::load_probe(probe_file) : pool::ProbeResults{};
    const pool::PlacementProblem p = pool::make_problem(spec, probe, {});
    c.devices = p.devices;
    c.options = p.options;
    if (spec.policy.slo.ttft_ms > 0 || spec.policy.slo.tpot_ms > 0) c.slo = spec.policy.slo;
    for (const pool::PlacementDevice& d : c.devices) {
      auto it = probe.find(d.id);
      const int n = it != probe.end() && it->second.parallel > 0 ? it->second.parallel : 8;
      c.parallel.push_back(a.parallel > 0 ? a.parallel
                                          : (spec.max_parallel > 0 ? spec.max_parallel : n));
    }
    c.excluded_vendors = p.excluded_vendors;
  } else {
    c.devices = pool::make_sim_devices(a.devices, a.vendors, a.seed);
    std::map<std::string, int> parallel;
    for (const pool::VendorClass& k : pool::builtin_vendor_classes())
      parallel[k.vendor] = k.parallel;
    for (const pool::PlacementDevice& d : c.devices) {
      c.parallel.push_back(a.parallel > 0 ? a.parallel : parallel.at(d.vendor));
    }
  }
  double rps = a.rps;
  if (!a.trace.empty()) {
    c.requests = pool::load_trace(a.trace);
    if (c.requests.empty()) fail(ErrorKind::kBadFile, "{}: the trace has no requests", a.trace);
  } else {
    if (rps <= 0) {
      pool::PlacementProblem p;
      p.devices = c.devices;
      p.slo = c.slo;
      p.workload = {1.0, a.prompt_tokens, a.output_tokens};
      double capacity = 0;
      for (const pool::PlacementDevice& d : p.devices)
        capacity += pool::estimate_replica({&d}, p).max_rps;
      rps = 0.4 * capacity;
      if (rps <= 0)
        fail(ErrorKind::kInvalidArgument, "no simulated device can meet the SLO; pass --rps");
    }
    c.requests = pool::poisson_trace(rps, a.duration, a.prompt_tokens, a.output_tokens,
                                     a.prefix_groups, a.seed);
  }
  if (a.survive_vendor_loss) c.options.survive_vendor_loss = true;
  if (!a.withdraw_vendor.empty()) {
    bool known = false;
    for (const pool::PlacementDevice& d : c.devices) known = known || d.vendor == a.withdraw_vendor;
    if (!known)
      fail(ErrorKind::kInvalidArgument,
           "--withdraw-vendor {}: no device of that vendor in the pool", a.withdraw_vendor);
    c.withdraw_vendor = a.withdraw_vendor;
    c.withdraw_at_s = a.at >= 0 ? a.at : (c.requests.empty() ? 0 : c.requests.back().arrival_s / 2);
  }
  double pool_price = 0;  // what running every device would cost
  for (const pool::PlacementDevice& d : c.devices) pool_price += d.price_per_hour;
  const auto t0 = Clock::now();
  const pool::SimReport r = pool::simulate(c);
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  if (a.json) {
    nlohmann::json j = {{"devices", c.devices.size()},
                        {"pool_cost_per_hour", pool_price},
                        {"requests", c.requests.size()},
                        {"slo", {{"ttft_ms", c.slo.ttft_ms}, {"tpot_ms", c.slo.tpot_ms}}},
                        {"survive_vendor_loss", c.options.survive_vendor_loss},
                        {"initial", placement_json(r.initial)},
                        {"all", window_json(r.all)},
                        {"before", window_json(r.before)},
                        {"affinity_hits", r.affinity_hits},
                        {"simulated_seconds", r.end_s},
                        {"wall_seconds", wall}};
    if (c.withdraw_vendor) {
      j["withdrawn_vendor"] = *c.withdraw_vendor;
      j["withdrawn_at_s"] = c.withdraw_at_s;
      j["replanned"] = placement_json(r.replanned);
      j["after"] = window_json(r.after);
    }
    fmt::print("{}\n", j.dump(2));
    return r.all.lost == 0 ? 0 : 1;
  }
  fmt::print(
      "pool: {} devices ({:.2f}/h if all ran); {} requests ({}); SLO: TTFT {} ms, TPOT {} ms\n",
      c.devices.size(), pool_price, c.requests.size(),
      a.trace.empty() ? fmt::format("Poisson {:.1f}/s for {} s", rps, a.duration) : a.trace,
      c.slo.ttft_ms, c.slo.tpot_ms);
  if (c.options.survive_vendor_loss) {
    fmt::print(
        "policy: survive_vendor_loss (placed so that any one vendor's loss leaves enough)\n");
  }
  fmt::print("placement: {} replicas ({}), {:.2f}/h, planned {:.4f} per million tokens{}\n",
             r.initial.replicas.size(), vendor_list(r.initial), r.initial.cost_per_hour,
             r.initial.cost_per_million_tokens,
             r.initial.feasible ? "" : " (infeasible: " + r.initial.reason + ")");
  if (c.withdraw_vendor) {
    fmt::print(
        "withdrawn at {:.1f} s: vendor {}; re-plan: {} replicas ({}), {} started, {} stopped, "
        "{:.2f}/h{}\n",
        c.withdraw_at_s, *c.withdraw_vendor, r.replanned.replicas.size(), vendor_list(r.replanned),
        r.replanned.added.size(), r.replanned.removed.size(), r.replanned.cost_per_hour,
        r.replanned.feasible ? "" : " (infeasible: " + r.replanned.reason + ")");
  }
  fmt::print("\n{:<8} {:>8} {:>8} {:>5} {:>6} {:>10} {:>9} {:>16} {:>13} {:>7}\n", "WINDOW",
             "REQUESTS", "DONE", "LOST", "MOVED", "TOKENS/S", "COST/MTOK", "TTFT p50/p99 ms",
             "TPOT p50/p99", "IN SLO");
  if (c.withdraw_vendor) {
    print_window("before", r.before);
    print_window("after", r.after);
  }
  print_window("all", r.all);
  if (r.all.moved > 0) {
    fmt::print("\nmoved requests: {}, re-prefilled {} tokens, stall p50 {:.0f} ms, p99 {:.0f} ms\n",
               r.all.moved, r.all.reprefilled_tokens, r.before.move_delay_p50_ms,
               r.before.move_delay_p99_ms);
  }
  fmt::print("simulated {:.1f} s in {:.2f} s of wall time\n", r.end_s, wall);
  std::fflush(stdout);
  return r.all.lost == 0 ? 0 : 1;
}

}  // namespace

CommandMain setup_simulate(CLI::App& cmd) {
  auto a = std::make_shared<SimulateArgs>();
  cmd.description(
      "Simulate a pool of devices serving requests with luzao's placement and routing: cost per "
      "million tokens, throughput, TTFT/TPOT percentiles, SLO attainment and requests lost, "
      "before and after a vendor's devices are withdrawn. Exit status 1 when requests were lost.");
  cmd.add_option("--devices", a->devices, "Simulated devices (built-in vendor table)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd.add_option("--vendors", a->vendors,
                 "Vendor classes used, 1-5: nvidia, ascend, cambricon, mthreads, cpu")
      ->check(CLI::Range(1, 5))
      ->capture_default_str();
  cmd.add_option("--pool", a->pool,
                 "Simulate a pool file's devices (speeds from POOL.probe.json) instead")
      ->excludes("--devices");
  cmd.add_option("--trace", a->trace,
                 "CSV trace: arrival_s,prompt_tokens,output_tokens[,prefix_group]");
  cmd.add_option("--rps", a->rps,
                 "Poisson arrival rate (default: 40% of the pool's capacity within the SLO)")
      ->check(CLI::PositiveNumber)
      ->excludes("--trace");
  cmd.add_option("--duration", a->duration, "Seconds of arrivals")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--prompt-tokens", a->prompt_tokens, "Mean prompt length")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--output-tokens", a->output_tokens, "Mean output length")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--prefix-groups", a->prefix_groups, "Shared prompt prefixes (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--withdraw-vendor", a->withdraw_vendor,
                 "Withdraw every device of this vendor mid-run");
  cmd.add_option("--at", a->at, "When to withdraw, seconds (default: half the trace)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--spinup", a->spinup, "Seconds a newly placed replica needs to load the model")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--ttft-ms", a->ttft_ms, "SLO: time to first token (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--tpot-ms", a->tpot_ms, "SLO: time per output token (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--parallel", a->parallel, "Sequences per replica (default: per vendor class)")
      ->check(CLI::Range(0, 4096));
  cmd.add_flag("--survive-vendor-loss", a->survive_vendor_loss,
               "Place (and re-plan) with spare capacity: any one vendor's loss leaves enough for "
               "the load (as the pool policy survive_vendor_loss: true)");
  cmd.add_option("--seed", a->seed, "Random seed (devices and arrivals)")->capture_default_str();
  cmd.add_flag("--json", a->json, "Print the report as JSON");
  return [a] { return run_simulate(*a); };
}

}  // namespace luzao::cli
