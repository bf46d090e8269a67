// `luzao pool`: `plan POOL.yaml` prints the placement the scheduler would choose for a load;
// `status --url URL` prints a running server's or router's GET /v1/pool.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "pool/placement.h"
#include "pool/pool_spec.h"

namespace luzao::cli {
namespace {

struct PoolArgs {
  std::string file;
  double rps = 0, prompt_tokens = 0, output_tokens = 0;  // 0: the pool file's workload
  bool exhaustive = false;
  bool survive_vendor_loss = false;  // also set by the pool file's policy
  bool json = false;
  std::string url;
  double timeout_s = 10;
};

std::string ms(double v) {
  return std::isfinite(v) ? fmt::format("{:.0f}", v) : "inf";
}

int run_plan(const PoolArgs& a) {
  const pool::PoolSpec spec = pool::load_pool_spec(a.file);
  const auto probe_file = pool::probe_path_for(a.file);
  const bool probed = std::filesystem::exists(probe_file);
  const pool::ProbeResults probe = probed ? pool::load_probe(probe_file) : pool::ProbeResults{};
  pool::Workload w = spec.workload.value_or(pool::Workload{});
  if (a.rps > 0) w.rps = a.rps;
  if (a.prompt_tokens > 0) w.prompt_tokens = a.prompt_tokens;
  if (a.output_tokens > 0) w.output_tokens = a.output_tokens;
  pool::PlacementProblem problem = pool::make_problem(spec, probe, w);
  if (a.survive_vendor_loss) problem.options.survive_vendor_loss = true;
  const bool survive = problem.options.survive_vendor_loss;
  std::string exclude;
  for (const std::string& v : spec.policy.exclude_vendors)
    exclude += (exclude.empty() ? "" : ", ") + v;
  const pool::Placement p = a.exhaustive ? pool::place_exhaustive(problem) : pool::place(problem);
  if (a.json) {
    nlohmann::json replicas = nlohmann::json::array();
    for (const pool::PlannedReplica& r : p.replicas) {
      replicas.push_back(
          {{"id", r.id()},
           {"devices", r.device_ids},
           {"ratio", r.ratio},
           {"vendor", r.vendor},
           {"price_per_hour", r.price_per_hour},
           {"prefill_tps", r.prefill_tps},
           {"decode_tps", r.decode_tps},
           {"decode_tps_batched", r.decode_tps_batched},
           {"max_rps", r.max_rps},
           {"load_rps", r.load_rps},
           {"utilization", r.utilization},
           {"ttft_ms", std::isfinite(r.ttft_ms) ? nlohmann::json(r.ttft_ms) : nlohmann::json()},
           {"tpot_ms", std::isfinite(r.tpot_ms) ? nlohmann::json(r.tpot_ms) : nlohmann::json()}});
    }
    const nlohmann::json j = {
        {"feasible", p.feasible},
        {"reason", p.reason},
        {"offered_rps", p.offered_rps},
        {"capacity_rps", p.capacity_rps},
        {"cost_per_hour", p.cost_per_hour},
        {"cost_per_million_tokens", p.cost_per_million_tokens},
        {"probe_file", probed ? probe_file.string() : ""},
        {"policy",
         {{"survive_vendor_loss", survive},
          {"exclude_vendors", spec.policy.exclude_vendors},
          {"slo", {{"ttft_ms", spec.policy.slo.ttft_ms}, {"tpot_ms", spec.policy.slo.tpot_ms}}}}},
        {"replicas", replicas}};
    fmt::print("{}\n", j.dump(2));
    return p.feasible ? 0 : 1;
  }
  fmt::print(
      "load: {:.2f} requests/s, {:.0f} prompt + {:.0f} output tokens; SLO: TTFT {} ms, TPOT {} "
      "ms\n",
      w.rps, w.prompt_tokens, w.output_tokens, spec.policy.slo.ttft_ms, spec.policy.slo.tpot_ms);
  fmt::print("policy: survive_vendor_loss {}{}; excluded vendors: {}\n", survive ? "on" : "off",
             survive ? " (capacity for the load left after losing any one vendor)" : "",
             exclude.empty() ? "none" : exclude);
  fmt::print("speeds: {}\n",
             probed ? probe_file.string() : "not probed (defaults; run luzao devices --probe)");
  fmt::print("{:<24} {:<10} {:>8} {:>10} {:>10} {:>8} {:>8} {:>6} {:>8} {:>8}\n", "REPLICA",
             "VENDOR", "PRICE/H", "PREFILL/S", "DECODE/S", "MAX RPS", "LOAD", "UTIL", "TTFT ms",
             "TPOT ms");
  for (const pool::PlannedReplica& r : p.replicas) {
    fmt::print(
        "{:<24} {:<10} {:>8.3f} {:>10.1f} {:>10.1f} {:>8.3f} {:>8.3f} {:>5.0f}% {:>8} {:>8}\n",
        r.id(), r.vendor, r.price_per_hour, r.prefill_tps, r.decode_tps_batched, r.max_rps,
        r.load_rps, 100 * r.utilization, ms(r.ttft_ms), ms(r.tpot_ms));
  }
  fmt::print(
      "cost: {:.3f}/h, {:.4f} per million generated tokens; capacity {:.3f} requests/s; {}\n",
      p.cost_per_hour, p.cost_per_million_tokens, p.capacity_rps,
      p.feasible ? "meets the SLO" : "INFEASIBLE: " + p.reason);
  if (survive && !p.replicas.empty()) {
    const pool::VendorLoss loss = pool::worst_vendor_loss(p.replicas);
    fmt::print("worst vendor loss: {} leaves {} replicas, {:.3f} requests/s within the SLO\n",
               loss.vendor, loss.surviving_replicas, loss.surviving_rps);
  }
  std::fflush(stdout);
  return p.feasible ? 0 : 1;
}

int run_status(const PoolArgs& a) {
  const std::string url = a.url.back() == '/' ? a.url.substr(0, a.url.size() - 1) : a.url;
  httplib::Client client(url);
  if (!client.is_valid())
    fail(ErrorKind::kInvalidArgument, "--url {}: not an http://HOST:PORT address", a.url);
  const auto t = std::chrono::milliseconds(static_cast<int64_t>(a.timeout_s * 1000));
  client.set_connection_timeout(t);
  client.set_read_timeout(t);
  const auto res = client.Get("/v1/pool");
  if (!res) fail(ErrorKind::kIo, "{}/v1/pool: {}", url, httplib::to_string(res.error()));
  if (res->status != 200)
    fail(ErrorKind::kIo, "{}/v1/pool: HTTP {}: {}", url, res->status, res->body.substr(0, 200));
  const nlohmann::json j = nlohmann::json::parse(res->body, nullptr, false);
  if (j.is_discarded()) fail(ErrorKind::kBadFile, "{}/v1/pool: the answer is not JSON", url);
  if (a.json) {
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  // Scalars first, then each list of objects as a table of its scalar fields.
  for (const auto& [key, value] : j.items()) {
    if (!value.is_structured()) fmt::print("{}: {}\n", key, value.dump());
  }
  for (const auto& [key, value] : j.items()) {
    if (!value.is_array() || value.empty() || !value[0].is_object()) {
      if (value.is_structured()) fmt::print("{}: {}\n", key, value.dump());
      continue;
    }
    std::vector<std::string> columns;
    for (const auto& [k, v] : value[0].items()) {
      if (!v.is_structured()) columns.push_back(k);
    }
    fmt::print("\n{}:\n", key);
    std::string header;
    for (const std::string& c : columns) header += fmt::format("{:<16} ", c);
    fmt::print("  {}\n", header);
    for (const auto& row : value) {
      std::string line;
      for (const std::string& c : columns) {
        std::string cell =
            row.contains(c) ? (row[c].is_string() ? row[c].get<std::string>() : row[c].dump()) : "";
        if (row.contains(c) && row[c].is_number_float())
          cell = fmt::format("{:.3f}", row[c].get<double>());
        line += fmt::format("{:<16} ", cell);
      }
      fmt::print("  {}\n", line);
    }
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

CommandMain setup_pool(CLI::App& cmd) {
  auto a = std::make_shared<PoolArgs>();
  cmd.description("Plan a pool's placement, or show a running pool's state");
  cmd.require_subcommand(1);
  CLI::App* plan = cmd.add_subcommand(
      "plan", "Print the replicas placement chooses for POOL.yaml (speeds from POOL.probe.json)");
  plan->add_option("pool", a->file, "Pool file (YAML or JSON)")->required();
  plan->add_option("--rps", a->rps, "Offered requests/s (default: the pool file's workload)")
      ->check(CLI::NonNegativeNumber);
  plan->add_option("--prompt-tokens", a->prompt_tokens, "Mean prompt tokens")
      ->check(CLI::PositiveNumber);
  plan->add_option("--output-tokens", a->output_tokens, "Mean output tokens")
      ->check(CLI::PositiveNumber);
  plan->add_flag("--exhaustive", a->exhaustive,
                 "Exhaustive search (at most 16 devices) instead of the heuristic");
  plan->add_flag("--survive-vendor-loss", a->survive_vendor_loss,
                 "Keep spare capacity so that losing any one vendor leaves enough (as the pool "
                 "policy survive_vendor_loss: true)");
  plan->add_flag("--json", a->json, "Print JSON");
  CLI::App* status = cmd.add_subcommand("status", "Print GET /v1/pool of a luzao serve or router");
  status->add_option("--url", a->url, "http://HOST:PORT of the server or router")->required();
  status->add_option("--timeout", a->timeout_s, "Seconds to wait")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  status->add_flag("--json", a->json, "Print the JSON as it came");
  return [a, plan] { return plan->parsed() ? run_plan(*a) : run_status(*a); };
}

}  // namespace luzao::cli
