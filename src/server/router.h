// `luzao router`: an OpenAI-compatible HTTP front for several `luzao serve` processes. Health
// checks, routing by least expected completion time with prefix affinity, and failover that loses
// no request (streams are resumed on another backend without repeated or missing text).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/log.h"

namespace luzao::server {

struct RouterOptions {
  std::vector<std::string> backends;  // "http://HOST:PORT" of each `luzao serve`
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: any free port (see RouterServer::port)
  std::string api_key;               // empty: no authentication on /v1/*
  std::string backend_api_key;       // sent to backends; empty: the client's Authorization
  int health_interval_ms = 500;      // between health checks of one backend
  int health_timeout_ms = 2000;      // a check slower than this fails
  int abort_after_failures = 3;      // failed checks in a row before in-flight requests move
  int failover_wait_ms = 10000;      // how long a moved request waits for a backend to be up
  int max_attempts = 0;              // backend attempts per request; 0: 2 x backends + 2
  int backend_timeout_s = 600;       // longest silence on a backend connection
  size_t max_body_bytes = 4u << 20;  // larger request bodies get 413
  int http_threads = 128;            // client connections served at once
  Logger logger;
};

class RouterServer {
 public:
  // Throws Error(kInvalidArgument) for an empty or malformed backend list.
  explicit RouterServer(RouterOptions options);
  ~RouterServer();
  RouterServer(const RouterServer&) = delete;
  RouterServer& operator=(const RouterServer&) = delete;

  // Binds the listening socket. Throws Error(kIo) naming host and port when that fails.
  void bind();
  int port() const;
  // Starts the health checks (waits for the first round, at most health_timeout_ms) and serves
  // until stop(); call after bind().
  void listen();
  // Thread-safe; makes listen() return after in-flight streams are cancelled.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace luzao::server
