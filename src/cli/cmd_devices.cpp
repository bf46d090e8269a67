// `luzao devices`: every device this build can open here (cpu, reference, OpenCL, CUDA, plugins)
// with its backend, vendor and memory, and whether it passes the quick conformance suite against
// the reference backend. Broken plugins and drivers are listed with the reason. With --probe it
// measures each device's prefill and decode speed on a model and saves them beside the pool file.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "backend/conformance/conformance.h"
#include "backend/registry.h"
#include "cli/commands.h"
#include "core/error.h"
#include "pool/pool_spec.h"
#include "runtime/engine.h"

namespace luzao::cli {
namespace {

struct DevicesOptions {
  bool no_check = false;
  bool verbose = false;
  int threads = 0;
  bool probe = false;
  std::string model;
  std::string pool;
  std::string probe_out;
  int parallel = 4;
};

std::string memory_label(uint64_t bytes) {
  if (bytes == 0) return "?";
  const double gib = static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0);
  return gib >= 1.0 ? fmt::format("{:.1f} GiB", gib)
                    : fmt::format("{:.0f} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

int run_devices(const DevicesOptions& o) {
  std::vector<DeviceListing> rows = list_devices(DeviceOptions{.threads = o.threads});
  bool all_pass = true;
  fmt::print("{:<12} {:<10} {:<20} {:>10}  {:<22} {}\n", "DEVICE", "BACKEND", "VENDOR", "MEMORY",
             "CONFORMANCE", "DESCRIPTION");
  for (DeviceListing& row : rows) {
    if (!row.device) {
      all_pass = false;
      fmt::print("{:<12} error: {}\n", row.spec, row.error);
      continue;
    }
    const DeviceInfo& info = row.device->info();
    std::string verdict = "not checked";
    std::vector<conformance::CaseResult> failed;
    if (info.backend == "reference") {
      verdict = "(the reference)";
    } else if (!o.no_check) {
      const auto start = std::chrono::steady_clock::now();
      const auto cases = conformance::run_all(*row.device, conformance::Depth::kQuick);
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      for (const auto& c : cases) {
        if (!c.passed()) failed.push_back(c);
      }
      verdict = fmt::format("{} {}/{} ({:.1f}s)", failed.empty() ? "pass" : "FAIL",
                            cases.size() - failed.size(), cases.size(), secs);
      all_pass = all_pass && failed.empty();
    }
    std::string vendor = info.vendor.substr(0, 20);
    fmt::print("{:<12} {:<10} {:<20} {:>10}  {:<22} {}\n", info.name, info.backend, vendor,
               memory_label(info.memory_bytes), verdict, info.description);
    const size_t shown = o.verbose ? failed.size() : std::min<size_t>(failed.size(), 3);
    for (size_t i = 0; i < shown; ++i) {
      fmt::print("{:<12}   {}: {}\n", "", failed[i].name(), failed[i].failure);
    }
    if (shown < failed.size()) {
      fmt::print("{:<12}   ... {} more (--verbose)\n", "", failed.size() - shown);
    }
  }
  std::fflush(stdout);
  return all_pass ? 0 : 1;
}

// --probe: prefill of kProbePrompt tokens, a kProbeDecode-token greedy decode of one sequence,
// and the same decode for `parallel` sequences at once (aggregate tokens/s).
constexpr int kProbePrompt = 128;
constexpr int kProbeDecode = 32;

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

pool::DeviceSpeed probe_device(const std::string& device, const DevicesOptions& o) {
  using Clock = std::chrono::steady_clock;
  EngineOptions eo;
  eo.model_path = o.model;
  eo.device = device;
  eo.threads = o.threads;
  eo.max_sequences = std::max(1, o.parallel) + 1;
  eo.ctx_size = 512;
  Engine engine(eo);
  const int32_t n_vocab = engine.hparams().n_vocab;
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, n_vocab - 1);
  std::vector<int32_t> prompt(kProbePrompt);
  for (int32_t& t : prompt) t = pick(rng);
  pool::DeviceSpeed speed;
  speed.device = device;
  speed.model = o.model;
  speed.parallel = std::max(1, o.parallel);
  {
    Session warm(engine);  // first use: page in weights, build kernels
    warm.feed(std::span(prompt).first(16));
  }
  double prefill_s = 1e30;
  double decode_s = 0;
  for (int rep = 0; rep < 2; ++rep) {  // best of two prefills
    Session session(engine);
    const auto t0 = Clock::now();
    std::span<const float> logits = session.feed(prompt);
    prefill_s = std::min(prefill_s, seconds_since(t0));
    if (rep == 1) {
      const auto t1 = Clock::now();
      for (int i = 0; i < kProbeDecode; ++i) {
        const int32_t next = argmax(logits);
        logits = session.feed(std::span(&next, 1));
      }
      decode_s = seconds_since(t1);
    }
  }
  speed.prefill_tps = kProbePrompt / prefill_s;
  speed.decode_tps = kProbeDecode / decode_s;
  // Batched decode: `parallel` sequences with a 16-token prompt each, one token each per step.
  const int n = speed.parallel;
  PagedKvCache& kv = engine.kv_cache();
  std::vector<int32_t> seqs, next(static_cast<size_t>(n));
  std::vector<float> logits(static_cast<size_t>(n) * static_cast<size_t>(n_vocab));
  std::vector<SequenceChunk> chunks(static_cast<size_t>(n));
  try {
    for (int i = 0; i < n; ++i) seqs.push_back(kv.open_sequence());
    for (int i = 0; i < n; ++i) {
      SequenceChunk c{seqs[static_cast<size_t>(i)], 0,
                      std::span(prompt).subspan(static_cast<size_t>(i), 16)};
      engine.decode(std::span(&c, 1), std::span(logits).first(static_cast<size_t>(n_vocab)));
      next[static_cast<size_t>(i)] = argmax(std::span(logits).first(static_cast<size_t>(n_vocab)));
    }
    const auto t0 = Clock::now();
    for (int step = 0; step < kProbeDecode; ++step) {
      for (int i = 0; i < n; ++i) {
        chunks[static_cast<size_t>(i)] = {seqs[static_cast<size_t>(i)], 16 + step,
                                          std::span(&next[static_cast<size_t>(i)], 1)};
      }
      engine.decode(chunks, logits);
      for (int i = 0; i < n; ++i) {
        next[static_cast<size_t>(i)] = argmax(std::span(logits).subspan(
            static_cast<size_t>(i) * static_cast<size_t>(n_vocab), static_cast<size_t>(n_vocab)));
      }
    }
    speed.decode_tps_batched = n * kProbeDecode / seconds_since(t0);
  } catch (...) {
    for (int32_t s : seqs) kv.close_sequence(s);
    throw;
  }
  for (int32_t s : seqs) kv.close_sequence(s);
  speed.measured_at = pool::utc_timestamp();
  return speed;
}

int run_probe(const DevicesOptions& o) {
  if (o.model.empty()) fail(ErrorKind::kInvalidArgument, "--probe needs a model (-m MODEL)");
  // (pool id, device name) pairs: the pool's devices, or every device listed here.
  std::vector<std::pair<std::string, std::string>> targets;
  std::filesystem::path out = o.probe_out;
  pool::ProbeResults results;
  if (!o.pool.empty()) {
    const pool::PoolSpec spec = pool::load_pool_spec(o.pool);
    for (const pool::PoolDevice& d : spec.devices) targets.emplace_back(d.id, d.device);
    if (out.empty()) out = pool::probe_path_for(o.pool);
    if (std::filesystem::exists(out)) results = pool::load_probe(out);  // keep other devices
  } else {
    for (const DeviceListing& row : list_devices(DeviceOptions{.threads = o.threads})) {
      if (row.device && row.device->info().backend != "reference") {
        targets.emplace_back(row.device->info().name, row.device->info().name);
      }
    }
    if (out.empty()) out = "luzao.probe.json";
  }
  fmt::print("{:<16} {:<12} {:>12} {:>12} {:>16}\n", "ID", "DEVICE", "PREFILL t/s", "DECODE t/s",
             fmt::format("DECODE x{} t/s", std::max(1, o.parallel)));
  int failures = 0;
  for (const auto& [id, device] : targets) {
    try {
      const pool::DeviceSpeed s = probe_device(device, o);
      fmt::print("{:<16} {:<12} {:>12.1f} {:>12.1f} {:>16.1f}\n", id, device, s.prefill_tps,
                 s.decode_tps, s.decode_tps_batched);
      results[id] = s;
    } catch (const Error& e) {
      ++failures;
      fmt::print("{:<16} {:<12} error: {}\n", id, device, e.what());
    }
    std::fflush(stdout);
  }
  pool::save_probe(out, results);
  fmt::print("saved {}\n", out.string());
  return failures == 0 ? 0 : 1;
}

}  // namespace

CommandMain setup_devices(CLI::App& command) {
  auto o = std::make_shared<DevicesOptions>();
  command.description(
      "List the devices this build can use here, each checked against the reference backend by "
      "a quick conformance run. Plugins are found on $LUZAO_PLUGIN_PATH and in lib/luzao/plugins. "
      "Exit status 1 when a device fails its check or a plugin cannot be loaded.");
  command.add_flag("--no-check", o->no_check, "List only; skip the conformance check");
  command.add_flag("-v,--verbose", o->verbose, "Show every failing op x dtype");
  command.add_option("-t,--threads", o->threads, "cpu backend worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  command.add_flag("--probe", o->probe,
                   "Measure each device's prefill and decode speed on -m MODEL (128-token prompt, "
                   "32-token greedy decode, alone and --parallel at once) and save them");
  command.add_option("-m,--model", o->model, "Model for --probe");
  command.add_option("--pool", o->pool,
                     "Pool file: probe its devices and save POOL.probe.json beside it");
  command.add_option(
      "--probe-out", o->probe_out,
      "Where --probe saves its results (default: beside --pool, else luzao.probe.json)");
  command.add_option("--parallel", o->parallel, "Sequences decoded at once for the batched speed")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  return [o] { return o->probe ? run_probe(*o) : run_devices(*o); };
}

}  // namespace luzao::cli
