// `luzao router`: an OpenAI-compatible front for several `luzao serve` processes (health checks,
// least-expected-completion-time routing with prefix affinity, failover) until SIGINT/SIGTERM.

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "server/router.h"

namespace luzao::cli {

CommandMain setup_router(CLI::App& cmd) {
  struct Args {
    server::RouterOptions options;
    bool verbose = false;
  };
  auto a = std::make_shared<Args>();
  server::RouterOptions& o = a->options;
  cmd.add_option("--backend", o.backends,
                 "A `luzao serve` to route to, http://HOST:PORT (repeat for each)")
      ->required()
      ->take_all();
  cmd.add_option("--host", o.host, "Address to listen on")->capture_default_str();
  cmd.add_option("--port", o.port, "Port to listen on (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd.add_option("--api-key", o.api_key, "Require 'Authorization: Bearer KEY' on /v1/*")
      ->envname("LUZAO_API_KEY");
  cmd.add_option("--backend-api-key", o.backend_api_key,
                 "Key sent to the backends (default: the client's Authorization header)")
      ->envname("LUZAO_BACKEND_API_KEY");
  cmd.add_option("--health-interval-ms", o.health_interval_ms,
                 "Milliseconds between health checks of each backend")
      ->check(CLI::Range(10, 600000))
      ->capture_default_str();
  cmd.add_option("--health-timeout-ms", o.health_timeout_ms,
                 "A health check or connection slower than this fails")
      ->check(CLI::Range(10, 600000))
      ->capture_default_str();
  cmd.add_option("--failover-wait-ms", o.failover_wait_ms,
                 "How long a request whose backend failed waits for another to be up")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--max-body", o.max_body_bytes, "Largest request body in bytes (413 beyond)")
      ->capture_default_str();
  cmd.add_option("--http-threads", o.http_threads, "Client connections served at once")
      ->check(CLI::Range(8, 4096))
      ->capture_default_str();
  cmd.add_flag("-v,--verbose", a->verbose, "Log every request to stderr");
  return [a]() -> int {
    server::RouterOptions options = a->options;
    options.logger =
        Logger([](LogLevel, std::string_view line) { fmt::print(stderr, "{}\n", line); },
               a->verbose ? LogLevel::kDebug : LogLevel::kInfo);
    const sigset_t signals = block_stop_signals();
    server::RouterServer router(options);
    router.bind();
    fmt::print(stderr, "luzao router on http://{}:{} ({} backends)\n", options.host, router.port(),
               options.backends.size());
    std::fflush(stderr);
    serve_until_signal(
        signals, options.logger, [&router] { router.stop(); }, [&router] { router.listen(); });
    return 0;
  };
}

}  // namespace luzao::cli
