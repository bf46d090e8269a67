// Server: cpp-httplib routes, authentication, OpenAI response shapes, SSE streaming, client
// disconnect detection, and the pool's status and admin endpoints.
#include "server/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "pool/routing.h"
#include "server/http_listen.h"
#include "server/metrics.h"
#include "server/openai_api.h"
#include "server/web_assets.h"

namespace luzao::server {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

const char* endpoint_label(const std::string& path) {
  static constexpr const char* kKnown[] = {"/v1/chat/completions",
                                           "/v1/completions",
                                           "/v1/models",
                                           "/v1/pool",
                                           "/health",
                                           "/metrics",
                                           "/admin/embargo",
                                           "/"};
  for (const char* known : kKnown) {
    if (path == known) return known;
  }
  if (path == "/chat/completions") return "/v1/chat/completions";
  if (path == "/completions") return "/v1/completions";
  if (path.starts_with("/v1/models/") || path == "/models") return "/v1/models";
  if (path.starts_with("/admin/devices/")) return "/admin/devices";
  return "other";
}

void reply_error(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

int status_of(const Error& e) {
  switch (e.kind()) {
    case ErrorKind::kInvalidArgument:
    case ErrorKind::kOutOfMemory:
    case ErrorKind::kUnsupported:
      return 400;
    default:
      return 500;
  }
}

// The text of one finished or streaming request, shaped for its endpoint.
struct Reply {
  bool chat = false;
  bool include_usage = false;
  std::string id;
  int64_t created = 0;
  std::string model;
  Clock::time_point start;
  std::optional<Clock::time_point> first_token;

  json usage(const GenerationUpdate& u) const {
    return {{"prompt_tokens", u.prompt_tokens},
            {"completion_tokens", u.completion_tokens},
            {"total_tokens", u.prompt_tokens + u.completion_tokens},
            {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
  }
  json base(const char* object) const {
    return {{"id", id},
            {"object", object},
            {"created", created},
            {"model", model},
            {"system_fingerprint", "luzao"}};
  }
  json full(const std::string& text, const GenerationUpdate& last) const {
    json out = base(chat ? "chat.completion" : "text_completion");
    json choice = {
        {"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason_name(last.reason)}};
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    } else {
      choice["text"] = text;
    }
    out["choices"] = json::array({choice});
    out["usage"] = usage(last);
    return out;
  }
  // One SSE chunk: a delta of text, the role opener, or the finish marker.
  json chunk(const std::optional<std::string>& text, bool role, const char* finish) const {
    json out = base(chat ? "chat.completion.chunk" : "text_completion");
    json choice = {{"index", 0},
                   {"logprobs", nullptr},
                   {"finish_reason", finish ? json(finish) : json(nullptr)}};
    if (chat) {
      json delta = json::object();
      if (role) delta["role"] = "assistant";
      if (text) delta["content"] = *text;
      choice["delta"] = delta;
    } else {
      choice["text"] = text.value_or("");
    }
    out["choices"] = json::array({choice});
    if (include_usage) out["usage"] = nullptr;
    return out;
  }
};

// The port of a socket address (IPv4 or IPv6), or -1.
int port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return -1;
}

// The file descriptor of the connection a request arrived on, or -1. cpp-httplib 0.11 does not
// expose it, so this looks for the one socket of this process whose local and peer ports are the
// request's (the connection stays open, hence unique, while its handler runs).
int connection_fd(const httplib::Request& req) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    const std::string name = entry.path().filename().string();
    int fd = -1;
    if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc()) continue;
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) continue;
    if (port_of(local) != req.local_port) continue;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    if (port_of(peer) == req.remote_port) return fd;
  }
  return -1;
}

// Whether the client closed (or reset) its end of the connection. The request body has been
// read, so a readable end-of-file or a hang-up means it is gone; pipelined bytes do not.
bool peer_closed(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  if ((p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) return true;
  char byte = 0;
  return (p.revents & POLLIN) != 0 && recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

// What an SSE provider keeps between calls.
struct StreamState {
  Reply reply;
  std::shared_ptr<GenerationStream> stream;
  bool opened = false;
  std::atomic<bool> finished{false};
};

}  // namespace

struct Server::Impl {
  ReplicaSet& replicas;
  const Engine& engine;
  ServerOptions options;
  httplib::Server http;
  Metrics metrics;
  std::mutex template_mutex;  // the chat template renderer is not documented as thread-safe
  std::mutex rng_mutex;
  std::mt19937_64 rng{std::random_device{}()};
  int port = -1;
  ListenSocket listen_socket;  // set while binding

  Impl(ReplicaSet& r, ServerOptions o) : replicas(r), engine(r.engine()), options(std::move(o)) {}

  uint64_t random() {
    std::lock_guard lock(rng_mutex);
    return rng();
  }

  bool authorized(const httplib::Request& req) const {
    if (options.api_key.empty()) return true;
    return req.get_header_value("Authorization") == "Bearer " + options.api_key;
  }

  static bool needs_key(const std::string& path) {
    return path.starts_with("/v1/") || path.starts_with("/admin/") || path == "/chat/completions" ||
           path == "/completions" || path == "/models";
  }

  template <typename Fn>
  httplib::Server::Handler guarded(Fn fn) {
    return [this, fn](const httplib::Request& req, httplib::Response& res) {
      try {
        fn(req, res);
      } catch (const ApiError& e) {
        reply_error(res, e.status(), error_body(e));
      } catch (const Error& e) {
        const int status = status_of(e);
        reply_error(res, status,
                    error_body(e.what(), status == 400 ? "invalid_request_error" : "server_error"));
      } catch (const std::exception& e) {
        reply_error(res, 500, error_body(e.what(), "server_error"));
      }
    };
  }

  json model_entry() const {
    const HParams& hp = engine.hparams();
    return {{"id", options.model_id},
            {"object", "model"},
            {"created", 0},
            {"owned_by", "luzao"},
            {"meta",
             {{"architecture", hp.architecture},
              {"n_ctx", engine.ctx_size()},
              {"n_vocab", hp.n_vocab},
              {"n_layer", hp.n_layer},
              {"n_embd", hp.n_embd}}}};
  }

  void routes() {
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!needs_key(req.path) || authorized(req))
        return httplib::Server::HandlerResponse::Unhandled;
      reply_error(res, 401,
                  error_body("Incorrect or missing API key: send 'Authorization: Bearer <key>'",
                             "invalid_request_error", "", "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    });
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                       httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string message;
      std::string code;
      if (res.status == 404) {
        message = fmt::format("no route for {} {}", req.method, req.path);
        code = "not_found";
      } else if (res.status == 413) {
        message = fmt::format("the request body is larger than the limit of {} bytes",
                              options.max_body_bytes);
        code = "request_too_large";
      } else {
        message = fmt::format("HTTP {} for {} {}", res.status, req.method, req.path);
      }
      reply_error(res, res.status,
                  error_body(message, res.status >= 500 ? "server_error" : "invalid_request_error",
                             "", code));
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          std::string message = "internal error";
          try {
            if (ep) std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            message = e.what();
          } catch (...) {
          }
          reply_error(res, 500, error_body(message, "server_error"));
        });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics.count_request(endpoint_label(req.path), res.status);
      options.logger.debug("{} {} -> {}", req.method, req.path, res.status);
    });

    http.Get("/health", guarded([](const httplib::Request&, httplib::Response& res) {
               res.set_content(R"({"status":"ok"})", "application/json");
             }));
    http.Get("/metrics", guarded([this](const httplib::Request&, httplib::Response& res) {
               PoolMetrics pool;
               pool.replicas = replicas.report();
               pool.migrations = replicas.migrations();
               pool.lost = replicas.lost_requests();
               pool.resume_delays = replicas.resume_delays();
               res.set_content(metrics.render(total_stats(pool.replicas), &pool),
                               "text/plain; version=0.0.4");
             }));
    const auto models = guarded([this](const httplib::Request&, httplib::Response& res) {
      res.set_content(dump({{"object", "list"}, {"data", json::array({model_entry()})}}),
                      "application/json");
    });
    http.Get("/v1/models", models);
    http.Get("/models", models);
    http.Get(R"(/v1/models/(.+))",
             guarded([this](const httplib::Request& req, httplib::Response& res) {
               const std::string id = req.matches[1];
               if (id != options.model_id) {
                 throw ApiError(404, fmt::format("The model '{}' does not exist", id),
                                "invalid_request_error", "model", "model_not_found");
               }
               res.set_content(dump(model_entry()), "application/json");
             }));
    const auto chat = guarded([this](const httplib::Request& req, httplib::Response& res) {
      completion(req, res, true);
    });
    const auto text = guarded([this](const httplib::Request& req, httplib::Response& res) {
      completion(req, res, false);
    });
    http.Post("/v1/chat/completions", chat);
    http.Post("/chat/completions", chat);
    http.Post("/v1/completions", text);
    http.Post("/completions", text);
    pool_routes();
    for (const WebAsset& asset : web_assets()) {
      const auto serve = [asset](const httplib::Request&, httplib::Response& res) {
        res.set_content(std::string(asset.body), std::string(asset.content_type));
      };
      http.Get(std::string(asset.path), serve);
      if (asset.path == "/index.html") http.Get("/", serve);
    }
  }

  json pool_status() const {
    json devices = json::array();
    for (const ReplicaReport& r : replicas.report()) {
      const SchedulerStats& s = r.stats;
      const double hours = r.uptime_seconds / 3600.0;
      json cost = nullptr;  // currency per million generated tokens, at the tokens/hour served
      if (s.generated_tokens > 0 && hours > 0) {
        cost = r.price_per_hour * hours / static_cast<double>(s.generated_tokens) * 1e6;
      }
      devices.push_back(
          {{"id", r.id},
           {"device", r.device},
           {"vendor", r.vendor},
           {"state", replica_health_name(r.health)},
           {"reason", r.reason.empty() ? json(nullptr) : json(r.reason)},
           {"price_per_hour", r.price_per_hour},
           {"measured", {{"prefill_tps", s.prefill_tps}, {"decode_tps", s.decode_tps}}},
           {"utilisation", r.uptime_seconds > 0 ? s.busy_seconds / r.uptime_seconds : 0.0},
           {"requests_routed", r.routed},
           {"requests_served", s.finished},
           {"requests_running", s.running},
           {"requests_queued", s.queued},
           {"requests_moved_in", s.resumed},
           {"requests_moved_out", s.evacuated},
           {"generated_tokens", s.generated_tokens},
           {"tokens_per_hour", hours > 0 ? static_cast<double>(s.generated_tokens) / hours : 0.0},
           {"cost_per_million_tokens", cost}});
    }
    // Seconds from a request leaving its device to its next token elsewhere (nearest rank).
    std::vector<double> delays = replicas.resume_delays();
    std::sort(delays.begin(), delays.end());
    const auto percentile = [&delays](double q) -> json {
      if (delays.empty()) return nullptr;
      const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(delays.size())));
      return delays[std::clamp<size_t>(rank, 1, delays.size()) - 1];
    };
    // The planned placement (`luzao serve --pool` with a workload) and its re-plans; null when
    // every device of the pool serves.
    json placement = nullptr;
    if (const std::optional<PlacementReport> p = replicas.placement()) {
      json replans = json::array();
      for (const ReplanRecord& r : p->replans) {
        replans.push_back({{"time", r.time},
                           {"trigger", r.trigger},
                           {"added", r.added},
                           {"removed", r.removed},
                           {"replicas", r.replicas},
                           {"feasible", r.feasible},
                           {"reason", r.reason.empty() ? json(nullptr) : json(r.reason)},
                           {"cost_per_hour", r.cost_per_hour},
                           {"cost_per_million_tokens", r.cost_per_million_tokens}});
      }
      placement = {{"replicas", p->replicas},
                   {"cost_per_hour", p->cost_per_hour},
                   {"cost_per_million_tokens", p->cost_per_million_tokens},
                   {"feasible", p->feasible},
                   {"reason", p->reason.empty() ? json(nullptr) : json(p->reason)},
                   {"fallback", p->fallback},
                   {"replans", replans}};
    }
    return {{"object", "pool"},
            {"model", options.model_id},
            {"devices", devices},
            {"placement", placement},
            {"embargoed_vendors", replicas.embargoed_vendors()},
            {"migrations", replicas.migrations()},
            {"lost_requests", replicas.lost_requests()},
            {"resume_seconds",
             {{"count", delays.size()}, {"p50", percentile(0.5)}, {"p99", percentile(0.99)}}}};
  }

  static bool force_flag(const httplib::Request& req, const json& body) {
    if (req.get_param_value("force") == "1" || req.get_param_value("force") == "true") return true;
    if (body.is_object() && body.contains("force")) {
      if (!body["force"].is_boolean()) {
        throw ApiError(400, "'force' must be a boolean", "invalid_request_error", "force");
      }
      return body["force"].get<bool>();
    }
    return false;
  }

  static json optional_body(const httplib::Request& req) {
    if (req.body.empty()) return json::object();
    json body = parse_json_body(req.body);
    if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
    return body;
  }

  static void withdraw_error(WithdrawStatus st, const std::string& what) {
    switch (st) {
      case WithdrawStatus::kDone:
        return;
      case WithdrawStatus::kUnknown:
        throw ApiError(404, fmt::format("no device '{}' in the pool", what),
                       "invalid_request_error", "", "device_not_found");
      case WithdrawStatus::kLastReplica:
        throw ApiError(409,
                       fmt::format("{} would withdraw the last serving device; send "
                                   "{{\"force\": true}} to do it anyway (its requests then fail)",
                                   what),
                       "invalid_request_error", "", "last_device");
      case WithdrawStatus::kNotServing:
        throw ApiError(409, fmt::format("device '{}' is not in a state that allows this", what),
                       "invalid_request_error", "", "device_state");
    }
  }

  void pool_routes() {
    http.Get("/v1/pool", guarded([this](const httplib::Request&, httplib::Response& res) {
               res.set_content(dump(pool_status()), "application/json");
             }));
    http.Post(R"(/admin/devices/([^/]+)/drain)",
              guarded([this](const httplib::Request& req, httplib::Response& res) {
                const std::string id = req.matches[1];
                const bool force = force_flag(req, optional_body(req));
                withdraw_error(replicas.drain(id, force), id);
                res.set_content(dump({{"device", id}, {"state", "drained"}}), "application/json");
              }));
    http.Post(R"(/admin/devices/([^/]+)/restore)",
              guarded([this](const httplib::Request& req, httplib::Response& res) {
                const std::string id = req.matches[1];
                withdraw_error(replicas.restore(id), id);
                res.set_content(dump({{"device", id}, {"state", "serving"}}), "application/json");
              }));
    http.Post(
        "/admin/embargo", guarded([this](const httplib::Request& req, httplib::Response& res) {
          const json body = optional_body(req);
          if (!body.contains("vendor") || !body["vendor"].is_string() ||
              body["vendor"].get<std::string>().empty()) {
            throw ApiError(400, "'vendor' (a non-empty string) is required",
                           "invalid_request_error", "vendor");
          }
          const std::string vendor = body["vendor"];
          std::vector<std::string> withdrawn;
          withdraw_error(replicas.embargo(vendor, force_flag(req, body), withdrawn),
                         fmt::format("an embargo of vendor '{}'", vendor));
          res.set_content(dump({{"vendor", vendor}, {"withdrawn", withdrawn}}), "application/json");
        }));
  }

  std::vector<int32_t> prompt_tokens(const CompletionParams& p) {
    const Tokenizer& tok = engine.tokenizer();
    if (p.chat) {
      std::string text;
      {
        std::lock_guard lock(template_mutex);
        try {
          text = engine.chat_prompt(p.messages, true);
        } catch (const Error& e) {
          throw ApiError(400, fmt::format("cannot render the chat template: {}", e.what()),
                         "invalid_request_error", "messages");
        }
      }
      return tok.tokenize(text, true, true);
    }
    if (p.prompt_tokens) return *p.prompt_tokens;
    return tok.tokenize(p.prompt, true, true);
  }

  void finish_metrics(const Reply& r, const GenerationUpdate& last) {
    const auto now = Clock::now();
    metrics.observe_request_duration(seconds_between(r.start, now));
    if (r.first_token) {
      metrics.observe_time_to_first_token(seconds_between(r.start, *r.first_token));
      if (last.completion_tokens > 1) {
        metrics.observe_time_per_output_token(seconds_between(*r.first_token, now) /
                                              (last.completion_tokens - 1));
      }
    }
  }

  void completion(const httplib::Request& req, httplib::Response& res, bool chat) {
    Reply r;
    r.start = Clock::now();
    r.chat = chat;
    const CompletionParams p = parse_completion_request(parse_json_body(req.body), chat);
    if (p.model && !p.model->empty() && *p.model != options.model_id) {
      throw ApiError(404,
                     fmt::format("The model '{}' does not exist; this server serves '{}'", *p.model,
                                 options.model_id),
                     "invalid_request_error", "model", "model_not_found");
    }
    const char* prompt_param = chat ? "messages" : "prompt";
    GenerationRequest g;
    g.prompt = prompt_tokens(p);
    const int32_t n = static_cast<int32_t>(g.prompt.size());
    if (n == 0) throw ApiError(400, "the prompt is empty", "invalid_request_error", prompt_param);
    if (n > engine.ctx_size()) {
      throw ApiError(
          400,
          fmt::format(
              "This model's maximum context length is {} tokens, but the prompt has {} tokens",
              engine.ctx_size(), n),
          "invalid_request_error", prompt_param, "context_length_exceeded");
    }
    g.max_tokens = p.max_tokens.value_or(chat ? engine.ctx_size() - n : 16);
    g.sampling = p.sampling;
    if (!p.seeded) g.sampling.seed = random();
    g.stop = p.stop;
    const std::string_view head(reinterpret_cast<const char*>(g.prompt.data()),
                                g.prompt.size() * sizeof(int32_t));
    SubmitResult submitted;
    try {
      submitted = replicas.submit(std::move(g), pool::prefix_key(head));
    } catch (const Error& e) {
      throw ApiError(400, e.what(), "invalid_request_error", prompt_param);
    }
    std::shared_ptr<GenerationStream> stream = std::move(submitted.stream);
    if (!stream) {
      res.set_header("Retry-After", "1");
      throw ApiError(503, submitted.refusal, "server_error", "",
                     submitted.busy ? "server_busy" : "no_device");
    }
    r.id = fmt::format("{}-{:016x}", chat ? "chatcmpl" : "cmpl", random());
    r.created = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
    r.model = options.model_id;
    r.include_usage = p.include_usage;
    if (p.stream) {
      stream_reply(res, std::move(r), std::move(stream));
      return;
    }
    // Non-streaming: nothing is written until the end, so watch the socket to notice a client
    // that gave up, and cancel its request.
    const int fd = connection_fd(req);
    bool gone = false;
    std::string text;
    GenerationUpdate u;
    auto next_check = Clock::now();
    while (true) {
      const bool news = stream->wait(u, std::chrono::milliseconds(100));
      if (!gone && Clock::now() >= next_check) {
        next_check = Clock::now() + std::chrono::milliseconds(100);
        if (peer_closed(fd)) {
          gone = true;
          stream->cancel();
        }
      }
      if (!news) continue;
      if (u.new_tokens > 0 && !r.first_token) r.first_token = Clock::now();
      text += u.text;
      if (u.finished) break;
    }
    if (gone) {
      res.status = 499;  // nginx's "client closed request": nobody reads this answer
      res.set_content(dump(error_body("the client closed the connection", "invalid_request_error")),
                      "application/json");
      return;
    }
    if (u.reason == FinishReason::kError) throw ApiError(500, u.error, "server_error");
    if (u.reason == FinishReason::kCancelled) {
      res.set_header("Retry-After", "1");
      throw ApiError(503, "the request was cancelled: the server is stopping", "server_error");
    }
    finish_metrics(r, u);
    res.set_content(dump(r.full(text, u)), "application/json");
  }

  void stream_reply(httplib::Response& res, Reply reply, std::shared_ptr<GenerationStream> stream) {
    auto st = std::make_shared<StreamState>();
    st->reply = std::move(reply);
    st->stream = std::move(stream);
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, st](size_t, httplib::DataSink& sink) -> bool {
          const auto send = [&sink](const std::string& data) {
            const std::string event = "data: " + data + "\n\n";
            return sink.write(event.data(), event.size());
          };
          Reply& r = st->reply;
          if (!st->opened) {
            st->opened = true;
            if (r.chat && !send(dump(r.chunk(std::string(), true, nullptr)))) return false;
          }
          GenerationUpdate u;
          if (!st->stream->wait(u, std::chrono::milliseconds(250))) return sink.is_writable();
          if (u.new_tokens > 0 && !r.first_token) r.first_token = Clock::now();
          if (!u.text.empty() && !send(dump(r.chunk(u.text, false, nullptr)))) return false;
          if (!u.finished) return true;
          bool ok = true;
          if (u.reason == FinishReason::kError || u.reason == FinishReason::kCancelled) {
            const std::string message =
                u.reason == FinishReason::kError ? u.error : "the request was cancelled";
            ok = send(dump(error_body(message, "server_error")));
          } else {
            ok = send(dump(r.chunk(std::nullopt, false, finish_reason_name(u.reason))));
            if (ok && r.include_usage) {
              json last = r.base(r.chat ? "chat.completion.chunk" : "text_completion");
              last["choices"] = json::array();
              last["usage"] = r.usage(u);
              ok = send(dump(last));
            }
            finish_metrics(r, u);
          }
          st->finished = true;
          if (ok) ok = send("[DONE]");
          if (ok) sink.done();
          return ok;
        },
        [st](bool) {
          if (!st->finished) st->stream->cancel();  // the client went away mid-stream
        });
  }
};

Server::Server(ReplicaSet& replicas, ServerOptions options)
    : impl_(std::make_unique<Impl>(replicas, std::move(options))) {
  Impl& s = *impl_;
  const int threads = std::max(4, s.options.http_threads);
  s.http.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  s.http.set_payload_max_length(s.options.max_body_bytes);
  prepare_listen_socket(s.http, s.listen_socket);
  s.routes();
}

Server::~Server() {
  stop();
}

void Server::bind() {
  Impl& s = *impl_;
  s.port = bind_listen_socket(s.http, s.listen_socket, s.options.host, s.options.port);
}

int Server::port() const {
  return impl_->port;
}

void Server::listen() {
  if (!impl_->http.listen_after_bind()) {
    fail(ErrorKind::kIo, "the server on {}:{} stopped with an error", impl_->options.host,
         impl_->port);
  }
}

void Server::stop() {
  impl_->http.stop();
}

}  // namespace luzao::server
