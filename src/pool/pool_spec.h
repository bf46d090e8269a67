// The pool file (YAML or JSON): devices with prices and labels, the policy (excluded vendors, a
// latency SLO) and optional replica limits; and the probe file of measured speeds kept beside it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace luzao::pool {

struct PoolDevice {
  std::string id;                     // unique in the pool ("gpu-a0")
  std::string device;                 // luzao device name: "cpu", "opencl:0", "cuda:0", "faulty:0"
  double price_per_hour = 0;          // currency per hour, >= 0
  std::optional<double> power_watts;  // > 0 when given
  std::optional<double> memory_gb;    // memory available for a model (> 0), for layer splits
  std::map<std::string, std::string> labels;  // "vendor", "region", anything else
  // labels["vendor"], or the device name's backend ("cuda" for "cuda:0") when there is none.
  std::string vendor() const;
};

struct Slo {
  double ttft_ms = 0;  // time to first token (0: no limit)
  double tpot_ms = 0;  // time per output token after the first (0: no limit)
};

struct PoolPolicy {
  std::vector<std::string> exclude_vendors;
  Slo slo;
  // Spare capacity across vendors: place so that, whichever one vendor is withdrawn, the replicas
  // of the other vendors alone carry the offered load within the SLO (at a higher price).
  bool survive_vendor_loss = false;
};

// The offered load a placement is planned for (optional section `workload` of the pool file).
struct Workload {
  double rps = 1;              // requests per second
  double prompt_tokens = 256;  // mean prompt length
  double output_tokens = 128;  // mean generated tokens per request
};

struct PoolSpec {
  std::vector<PoolDevice> devices;
  PoolPolicy policy;
  int replicas = 0;      // minimum number of replicas (0: as many as the load needs, at least 1)
  int max_parallel = 0;  // concurrent sequences per replica (0: the engine's default)
  std::optional<Workload> workload;
  std::filesystem::path source;  // the file it came from (empty when parsed from text)

  const PoolDevice* find(std::string_view id) const;
};

// Reads a pool file. Throws Error(kIo) when it cannot be read, Error(kBadFile) with a one-line
// message naming the file, the key path ("devices[2].price_per_hour") and the problem: YAML syntax,
// unknown key, duplicate key, wrong type, negative price, duplicate device id, missing field.
PoolSpec load_pool_spec(const std::filesystem::path& path);
// The same from text; `origin` names it in error messages.
PoolSpec parse_pool_spec(std::string_view text, std::string_view origin);

// Measured speed of one device (or replica) on one model.
struct DeviceSpeed {
  double prefill_tps = 0;  // prompt tokens/s (one sequence, a 128-token prompt)
  double decode_tps = 0;   // generated tokens/s for one sequence
  double decode_tps_batched =
      0;                    // aggregate generated tokens/s with `parallel` sequences (0: unknown)
  int parallel = 0;         // the N of decode_tps_batched
  std::string measured_at;  // ISO-8601 UTC
  std::string model;        // the model file or name measured
  std::string device;       // the luzao device name measured
};

using ProbeResults = std::map<std::string, DeviceSpeed>;  // keyed by pool device id

// POOL.yaml -> POOL.probe.json (any extension is replaced).
std::filesystem::path probe_path_for(const std::filesystem::path& pool_file);
// The current UTC time as ISO-8601 ("2026-11-28T18:00:00Z"): probe and re-plan timestamps.
std::string utc_timestamp();
// Throws Error(kIo) when unreadable and Error(kBadFile) naming the file and field when malformed.
ProbeResults load_probe(const std::filesystem::path& path);
// Writes JSON: {"devices": {"<id>": {"device", "prefill_tps", "decode_tps", ...}}}.
void save_probe(const std::filesystem::path& path, const ProbeResults& results);
std::string probe_to_json(const ProbeResults& results);
ProbeResults parse_probe(std::string_view text, std::string_view origin);

}  // namespace luzao::pool
