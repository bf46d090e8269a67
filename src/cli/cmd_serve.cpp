// `luzao serve`: loads a model (on one device, or on a pool file's devices: every one, or with a
// `workload` the ones the placement chooses, the others on standby) and serves the
// OpenAI-compatible API, metrics and the web chat page until SIGINT/SIGTERM.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "core/error.h"
#include "pool/pool_spec.h"
#include "runtime/engine.h"
#include "runtime/scheduler.h"
#include "server/pool_placement.h"
#include "server/replica_set.h"
#include "server/server.h"

namespace luzao::cli {
namespace {

// One replica per pool device, leaving out the vendors the policy excludes.
std::vector<server::ReplicaSpec> replicas_from_pool(const pool::PoolSpec& spec,
                                                    const std::string& file) {
  std::vector<server::ReplicaSpec> out;
  for (const pool::PoolDevice* d : server::eligible_devices(spec)) {
    out.push_back({d->id, d->device, d->vendor(), d->price_per_hour, {}});
  }
  if (out.empty()) {
    fail(ErrorKind::kInvalidArgument,
         "{}: no device left to serve on (policy.exclude_vendors "
         "excludes every one)",
         file);
  }
  return out;
}

// With a workload: the placement on the probed speeds (POOL.probe.json beside the pool file,
// when there is one) decides which devices start; logged in one line.
server::ReplicaPlanning plan_pool(const pool::PoolSpec& spec, const std::string& file,
                                  const std::string& model, const Logger& logger) {
  const std::filesystem::path probe_file = pool::probe_path_for(file);
  pool::ProbeResults probe;
  if (std::filesystem::exists(probe_file)) probe = pool::load_probe(probe_file);
  std::vector<std::string> unprobed, other_model;
  const std::string model_name = std::filesystem::path(model).filename().string();
  for (const pool::PoolDevice& d : spec.devices) {
    auto it = probe.find(d.id);
    if (it == probe.end()) {
      unprobed.push_back(d.id);
    } else if (!it->second.model.empty() &&
               std::filesystem::path(it->second.model).filename().string() != model_name) {
      other_model.push_back(d.id);
    }
  }
  if (!unprobed.empty()) {
    logger.info(
        "{}: no probe for {} (placement assumes default speeds; `luzao devices --probe -m "
        "MODEL --pool {}` measures them)",
        probe_file.string(), fmt::join(unprobed, ", "), file);
  }
  if (!other_model.empty()) {
    logger.warn("{}: {} probed on another model than {}", probe_file.string(),
                fmt::join(other_model, ", "), model_name);
  }
  server::ReplicaPlanning planning = server::plan_startup(spec, probe);
  logger.info("{}", server::describe_startup(planning, spec.devices.size()));
  return planning;
}

}  // namespace

CommandMain setup_serve(CLI::App& cmd) {
  struct Args {
    std::string model;
    std::string host = "127.0.0.1";
    int port = 8080;
    int parallel = 4;
    int ctx_size = 0;
    int threads = 0;
    int batch = 512;
    int prefill_chunk = 256;
    int queue_limit = 64;
    size_t max_body = 4u << 20;
    std::string api_key;
    std::string device = "cpu";
    std::string cache_type = "f16";
    std::string split;
    std::string chat_template_file;
    std::string alias;
    bool no_prefix_cache = false;
    std::string pool_file;
    int watchdog_ms = 60000;
    bool verbose = false;
  };
  auto a = std::make_shared<Args>();
  cmd.add_option("-m,--model", a->model, "GGUF model file")->required();
  cmd.add_option("--host", a->host, "Address to listen on")->capture_default_str();
  cmd.add_option("--port", a->port, "Port to listen on (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd.add_option("-P,--parallel", a->parallel, "Sequences generated together (continuous batching)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd.add_option("-c,--ctx-size", a->ctx_size,
                 "Context size per sequence in tokens (0: model's, at most 4096)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("-t,--threads", a->threads, "Worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("-b,--batch-size", a->batch, "Tokens per forward pass")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--prefill-chunk", a->prefill_chunk,
                 "Prompt tokens fed per step (chunked prefill)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--queue-limit", a->queue_limit, "Requests waiting for a slot before 503")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--max-body", a->max_body, "Largest request body in bytes (413 beyond)")
      ->capture_default_str();
  cmd.add_option("--api-key", a->api_key, "Require 'Authorization: Bearer KEY' on /v1/*")
      ->envname("LUZAO_API_KEY");
  CLI::Option* split = add_device_options(cmd, a->device, a->split);
  cmd.add_option("--pool", a->pool_file,
                 "Pool file (YAML/JSON): replicas routed, with failover (replaces --device); "
                 "every device serves, or with a `workload` the placed ones (others standby)")
      ->check(CLI::ExistingFile)
      ->excludes(split);
  cmd.add_option("--watchdog-ms", a->watchdog_ms,
                 "A device whose decode step runs longer than this has failed (0: off)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--cache-type", a->cache_type, "KV cache type: f16, f32 or q8_0")
      ->check(CLI::IsMember({"f16", "f32", "q8_0"}))
      ->capture_default_str();
  cmd.add_option("--chat-template", a->chat_template_file,
                 "Jinja chat template file to use instead of the model's")
      ->check(CLI::ExistingFile);
  cmd.add_option("--alias", a->alias,
                 "Model id to serve under (default: the file name without .gguf)");
  cmd.add_flag("--no-prefix-cache", a->no_prefix_cache,
               "Do not reuse the KV pages of shared prompt prefixes");
  cmd.add_flag("-v,--verbose", a->verbose, "Log loading details and every request to stderr");
  return [a]() -> int {
    const Logger logger([](LogLevel, std::string_view line) { fmt::print(stderr, "{}\n", line); },
                        a->verbose ? LogLevel::kDebug : LogLevel::kInfo);
    EngineOptions options;
    options.model_path = a->model;
    options.device = a->device;
    options.threads = a->threads;
    options.ctx_size = a->ctx_size;
    options.max_batch_tokens = std::max(a->batch, a->parallel);
    options.max_sequences = a->parallel;
    options.kv_dtype = *dtype_from_name(a->cache_type);
    options.split = a->split;
    options.logger = logger;
    if (!a->chat_template_file.empty()) {
      std::ifstream in(a->chat_template_file, std::ios::binary);
      options.chat_template.assign(std::istreambuf_iterator<char>(in), {});
      if (!in && !in.eof()) fail(ErrorKind::kIo, "{}: cannot read", a->chat_template_file);
    }
    const sigset_t signals = block_stop_signals();

    std::vector<server::ReplicaSpec> specs;
    std::optional<server::ReplicaPlanning> planning;
    if (!a->pool_file.empty()) {
      const pool::PoolSpec pool = pool::load_pool_spec(a->pool_file);
      specs = replicas_from_pool(pool, a->pool_file);
      if (pool.workload) planning = plan_pool(pool, a->pool_file, a->model, logger);
      if (pool.max_parallel > 0) {
        options.max_sequences = pool.max_parallel;
        options.max_batch_tokens = std::max(a->batch, pool.max_parallel);
        a->parallel = pool.max_parallel;
      }
    } else {
      const std::string vendor = a->device.substr(0, a->device.find(':'));
      specs.push_back({a->device, a->device, vendor, 0.0, {}});
    }
    server::ReplicaSetOptions ro;
    ro.engine = options;
    ro.scheduler.max_sequences = a->parallel;
    ro.scheduler.max_queue = a->queue_limit;
    ro.scheduler.prefill_chunk = a->prefill_chunk;
    ro.scheduler.prefix_cache = !a->no_prefix_cache;
    ro.watchdog = std::chrono::milliseconds(a->watchdog_ms);
    ro.logger = logger;
    ro.planning = std::move(planning);
    server::ReplicaSet replicas(std::move(specs), ro);
    const Engine& engine = replicas.engine();

    server::ServerOptions so;
    so.host = a->host;
    so.port = a->port;
    so.api_key = a->api_key;
    so.model_id = a->alias;
    if (so.model_id.empty()) {
      so.model_id = std::filesystem::path(a->model).filename().string();
      if (so.model_id.ends_with(".gguf")) so.model_id.resize(so.model_id.size() - 5);
    }
    so.max_body_bytes = a->max_body;
    so.http_threads = (a->parallel + a->queue_limit) * static_cast<int>(replicas.size()) + 16;
    so.logger = logger;
    server::Server server(replicas, so);
    server.bind();

    size_t standby = 0;
    for (const server::ReplicaReport& r : replicas.report()) {
      if (r.health == server::ReplicaHealth::kStandby) ++standby;
    }
    fmt::print(stderr,
               "luzao serve: {} on http://{}:{} ({} parallel, context {} tokens per sequence, {} "
               "replica(s){})\n",
               so.model_id, a->host, server.port(), a->parallel, engine.ctx_size(),
               replicas.size() - standby,
               standby > 0 ? fmt::format(", {} standby", standby) : std::string());
    std::fflush(stderr);
    serve_until_signal(
        signals, logger, [&server] { server.stop(); }, [&server] { server.listen(); });
    replicas.stop();
    return 0;
  };
}

}  // namespace luzao::cli
