// The OpenAI-compatible HTTP server: /v1/chat/completions and /v1/completions (JSON or SSE),
// /v1/models, /health, /metrics, the embedded web chat page, and the pool's /v1/pool and
// /admin/* endpoints (drain, restore, embargo), in front of a ReplicaSet.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/log.h"
#include "runtime/engine.h"
#include "runtime/scheduler.h"
#include "server/replica_set.h"

namespace luzao::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: any free port (see Server::port)
  std::string api_key;               // empty: no authentication
  std::string model_id;              // the id /v1/models lists and requests may name
  size_t max_body_bytes = 4u << 20;  // larger bodies get 413
  int http_threads = 32;             // connections served at once (streams hold one each)
  Logger logger;
};

class Server {
 public:
  // Generation goes through `replicas` (one or more engines on devices), which must outlive the
  // server; its first engine is read only through its thread-safe parts (tokenizer, chat
  // template, limits).
  Server(ReplicaSet& replicas, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket. Throws Error(kIo) naming host and port when that fails.
  void bind();
  int port() const;
  // Serves until stop(); call after bind().
  void listen();
  // Thread-safe; makes listen() return.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace luzao::server
