// `luzao router`: routes, health checks, and the forwarding of completion requests with failover
// (plain responses are re-sent whole; streams go through a pump thread and a StreamSplicer).
#include "server/router.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "server/http_listen.h"
#include "server/openai_api.h"
#include "server/router_backends.h"
#include "server/router_pump.h"
#include "server/router_request.h"
#include "server/router_sse.h"

namespace luzao::server {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Largest error body kept from a backend.
constexpr size_t kMaxErrorBody = 1u << 20;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void reply_error(httplib::Response& res, int status, const std::string& message,
                 const std::string& code = {}) {
  res.status = status;
  res.set_content(
      dump(error_body(message, status >= 500 ? "server_error" : "invalid_request_error", "", code)),
      "application/json");
}

const char* endpoint_label(const std::string& path) {
  if (path == "/v1/chat/completions" || path == "/chat/completions") return "/v1/chat/completions";
  if (path == "/v1/completions" || path == "/completions") return "/v1/completions";
  if (path == "/v1/models" || path == "/models" || path.starts_with("/v1/models/"))
    return "/v1/models";
  for (const char* known : {"/health", "/metrics", "/v1/pool"}) {
    if (path == known) return known;
  }
  return "other";
}

// The message of an OpenAI error body, or the body itself.
std::string error_message_of(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object() &&
      j["error"].contains("message") && j["error"]["message"].is_string())
    return j["error"]["message"].get<std::string>();
  return body.substr(0, 200);
}

std::optional<StreamUsage> usage_of_body(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("usage") || !j["usage"].is_object()) return std::nullopt;
  const json& u = j["usage"];
  StreamUsage s;
  s.prompt_tokens = u.value("prompt_tokens", int64_t{0});
  s.completion_tokens = u.value("completion_tokens", int64_t{0});
  if (u.contains("prompt_tokens_details") && u["prompt_tokens_details"].is_object())
    s.cached_tokens = u["prompt_tokens_details"].value("cached_tokens", int64_t{0});
  return s;
}

void apply(const PlainReply& p, httplib::Response& res) {
  res.status = p.status;
  res.set_content(p.body, p.content_type);
  if (!p.retry_after.empty()) res.set_header("Retry-After", p.retry_after);
  if (!p.backend.empty()) res.set_header("X-Luzao-Backend", p.backend);
}

// How one attempt on a backend ended.
struct Attempt {
  int status = 0;  // 0: no response head
  std::string content_type, retry_after;
  std::string body;  // a non-stream response's body
  httplib::Error error = httplib::Error::Success;
  bool transport_failed() const { return error != httplib::Error::Success; }
};

}  // namespace

struct RouterServer::Impl {
  RouterOptions options;
  std::vector<BackendAddress> addresses;
  BackendSet backends;
  RouterMetrics metrics;
  httplib::Server http;
  ListenSocket listen_socket;  // set while binding
  int port = -1;
  int max_attempts = 0;

  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stopping = false;
  std::set<std::shared_ptr<Pump>> pumps;  // streams whose pump thread runs
  int first_checks = 0;                   // backends checked at least once

  static std::vector<BackendAddress> parse_all(const std::vector<std::string>& urls) {
    if (urls.empty()) fail(ErrorKind::kInvalidArgument, "no --backend given");
    std::vector<BackendAddress> out;
    for (const std::string& url : urls) out.push_back(parse_backend_url(url));
    return out;
  }
  static std::vector<std::string> urls_of(const std::vector<BackendAddress>& addresses) {
    std::vector<std::string> out;
    for (const BackendAddress& a : addresses) out.push_back(a.url());
    return out;
  }

  explicit Impl(RouterOptions o)
      : options(std::move(o)),
        addresses(parse_all(options.backends)),
        backends(urls_of(addresses)) {
    const int n = static_cast<int>(addresses.size());
    max_attempts = options.max_attempts > 0 ? options.max_attempts : 2 * n + 2;
  }

  bool is_stopping() {
    std::lock_guard lock(stop_mutex);
    return stopping;
  }

  httplib::Headers backend_headers(const httplib::Request& req) const {
    httplib::Headers h;
    if (!options.backend_api_key.empty()) {
      h.emplace("Authorization", "Bearer " + options.backend_api_key);
    } else if (req.has_header("Authorization")) {
      h.emplace("Authorization", req.get_header_value("Authorization"));
    }
    return h;
  }

  // Sends one request to backend i. `on_head` sees the response head and `on_data` each piece of
  // the body (when on_data is null, the body is kept in the Attempt); either may return false to
  // stop reading. The connection is closed early by the backend's abort hook (a hung backend) or
  // by `pump` (the client went away).
  Attempt send(size_t i, const std::string& method, const std::string& path,
               const std::string& body, const httplib::Headers& headers, Pump* pump,
               const std::function<bool(const Attempt&)>& on_head,
               const std::function<bool(const char*, size_t)>& on_data) {
    httplib::Client cli(addresses[i].host, addresses[i].port);
    cli.set_connection_timeout(std::chrono::milliseconds(options.health_timeout_ms));
    cli.set_read_timeout(std::chrono::seconds(options.backend_timeout_s));
    cli.set_write_timeout(std::chrono::seconds(30));
    cli.set_keep_alive(false);
    cli.set_tcp_nodelay(true);
    const uint64_t abort_id = backends.add_abort(i, [&cli] { cli.stop(); });
    if (pump) pump->attach(&cli);
    Attempt a;
    httplib::Request req;
    req.method = method;
    req.path = path;
    req.headers = headers;
    if (method == "POST") {
      req.body = body;
      req.headers.emplace("Content-Type", "application/json");
    }
    req.response_handler = [&a, &on_head](const httplib::Response& r) {
      a.status = r.status;
      a.content_type = r.get_header_value("Content-Type");
      a.retry_after = r.get_header_value("Retry-After");
      return on_head ? on_head(a) : true;
    };
    req.content_receiver = [&a, &on_data](const char* data, size_t n, uint64_t, uint64_t) {
      if (on_data) return on_data(data, n);
      a.body.append(data, n);
      return a.body.size() <= kMaxErrorBody * 64;
    };
    httplib::Response res;
    cli.send(req, res, a.error);
    if (pump) pump->attach(nullptr);
    backends.remove_abort(i, abort_id);
    return a;
  }

  // A backend for the next attempt. The first attempt takes what is up now. A retry avoids `avoid`
  // (the backend whose connection just failed) if another is up, else waits up to
  // failover_wait_ms for some backend not in `exclude` (those that answered 5xx) to come up.
  BackendSet::Ticket next_backend(const pool::RouteRequest& route, std::vector<size_t> exclude,
                                  std::optional<size_t> avoid, int attempt, const Pump* pump) {
    if (attempt >= max_attempts) return {};
    if (avoid) {
      exclude.push_back(*avoid);
      BackendSet::Ticket t = backends.acquire(route, exclude);
      exclude.pop_back();
      if (t.valid()) return t;
    }
    const auto deadline = Clock::now() + std::chrono::milliseconds(options.failover_wait_ms);
    while (true) {
      BackendSet::Ticket t = backends.acquire(route, exclude);
      if (t.valid() || attempt == 0) return t;
      if (Clock::now() > deadline || is_stopping() || (pump && pump->cancelled())) return t;
      // Every backend that is up failed this request already: waiting will not help.
      if (backends.any_up()) return t;
      std::unique_lock lock(stop_mutex);
      stop_cv.wait_for(lock, std::chrono::milliseconds(50));
    }
  }

  PlainReply unavailable(const std::string& detail) const {
    PlainReply p;
    p.status = 503;
    p.retry_after = std::to_string(std::max(1, (options.health_interval_ms + 999) / 1000));
    p.body = dump(error_body(
        detail.empty()
            ? std::string("no backend is available, retry later")
            : fmt::format("no backend could serve the request ({}), retry later", detail),
        "server_error", "", "no_backend_available"));
    return p;
  }

  // A request that is not a stream: attempts until one backend answers with a status below 500.
  PlainReply forward_plain(const ForwardRequest& f, const std::string& path,
                           const httplib::Headers& headers) {
    const auto start = Clock::now();
    std::vector<size_t> exclude;
    std::optional<PlainReply> last_5xx;
    std::string last_error;
    bool moved = false;
    std::optional<size_t> avoid;
    for (int attempt = 0;; ++attempt) {
      BackendSet::Ticket t = next_backend(f.route, exclude, avoid, attempt, nullptr);
      avoid.reset();
      if (!t.valid()) break;
      if (attempt > 0) metrics.count_retry();
      const size_t i = t.backend();
      Attempt a = send(i, "POST", path, f.backend_body, headers, nullptr, nullptr, nullptr);
      if (a.transport_failed() || (a.status == 200 && a.body.empty())) {
        last_error = fmt::format("{}: {}", backends.url(i), httplib::to_string(a.error));
        t.failed();
        backends.report_down(i, httplib::to_string(a.error));
        avoid = i;
        options.logger.info("router: {} failed ({}); moving the request", backends.url(i),
                            httplib::to_string(a.error));
        metrics.count_failover();
        moved = true;
        continue;
      }
      PlainReply p{a.status, std::move(a.body), a.content_type, a.retry_after, backends.url(i)};
      if (p.content_type.empty()) p.content_type = "application/json";
      if (a.status >= 500) {
        t.failed();
        exclude.push_back(i);
        last_error = fmt::format("{}: HTTP {}", backends.url(i), a.status);
        last_5xx = std::move(p);
        moved = true;
        continue;
      }
      if (a.status == 200) {
        if (const auto usage = usage_of_body(p.body)) t.finish(*usage);
      }
      if (moved) metrics.observe_moved_request(seconds_since(start));
      return p;
    }
    metrics.count_unserved();
    if (last_5xx) return *last_5xx;
    return unavailable(last_error);
  }

  // A streaming request, on its pump thread: attempts until the client's stream is complete.
  void forward_stream(const ForwardRequest& f, const std::string& path,
                      const httplib::Headers& headers, Pump& pump) {
    const auto start = Clock::now();
    StreamSplicer splicer(f.chat, f.include_usage);
    std::vector<size_t> exclude;
    std::optional<PlainReply> last_5xx;
    std::string last_error;
    bool moved = false;
    std::string out;
    const auto finish_with_error = [&](const std::string& message, const std::string& code) {
      metrics.count_unserved();
      if (!pump.head_sent()) {
        pump.reply_plain(last_5xx ? *last_5xx : unavailable(last_error));
        return;
      }
      out.clear();
      splicer.fail(message, code, out);
      pump.push(std::move(out));
    };
    std::optional<size_t> avoid;
    for (int attempt = 0;; ++attempt) {
      if (pump.cancelled()) break;
      BackendSet::Ticket t = next_backend(f.route, exclude, avoid, attempt, &pump);
      avoid.reset();
      if (!t.valid()) {
        finish_with_error(fmt::format("no backend could continue the stream ({})", last_error),
                          "no_backend_available");
        break;
      }
      if (attempt > 0) metrics.count_retry();
      const size_t i = t.backend();
      splicer.begin_attempt();
      SseParser parser;
      bool streaming = false;
      SpliceStatus end = SpliceStatus::kContinue;
      std::string error_body_text;
      std::optional<StreamUsage> usage;
      const auto on_head = [&](const Attempt& a) {
        streaming = a.status == 200 && a.content_type.starts_with("text/event-stream");
        if (streaming) pump.start_stream(backends.url(i));
        return true;
      };
      const auto on_data = [&](const char* data, size_t n) {
        if (!streaming) {
          error_body_text.append(data, n);
          return error_body_text.size() <= kMaxErrorBody;
        }
        for (const std::string& event : parser.feed(std::string_view(data, n))) {
          out.clear();
          const SpliceResult r = splicer.on_event(event, out);
          if (r.generated) {
            t.first_token(seconds_since(start));
            t.generated(1);
          }
          if (r.usage) usage = r.usage;
          pump.push(std::move(out));
          if (r.status != SpliceStatus::kContinue) {
            end = r.status;
            return false;
          }
        }
        return !pump.cancelled();
      };
      const Attempt a = send(i, "POST", path, f.backend_body, headers, &pump, on_head, on_data);
      if (pump.cancelled()) break;
      if (end == SpliceStatus::kDone) {
        if (usage) t.finish(*usage);
        if (moved) metrics.observe_moved_request(seconds_since(start));
        break;
      }
      if (end == SpliceStatus::kDiverged) {
        metrics.count_divergence();
        finish_with_error(
            "the backend that took over this stream generated different text; the stream "
            "cannot be continued",
            "stream_diverged");
        break;
      }
      if (a.status != 0 && !streaming && !a.transport_failed()) {
        PlainReply p{a.status, error_body_text, a.content_type, a.retry_after, backends.url(i)};
        if (p.content_type.empty()) p.content_type = "application/json";
        if (a.status < 500) {  // the request's own fault: passed through, never retried
          if (!pump.head_sent()) {
            pump.reply_plain(std::move(p));
          } else {
            finish_with_error(error_message_of(p.body), "backend_rejected");
          }
          break;
        }
        t.failed();
        exclude.push_back(i);
        last_error = fmt::format("{}: HTTP {}", backends.url(i), a.status);
        last_5xx = std::move(p);
        moved = true;
        continue;
      }
      // The stream broke: the connection failed or closed early, or the backend sent an error.
      t.failed();
      if (end == SpliceStatus::kBackendError) {
        last_error = fmt::format("{}: {}", backends.url(i), splicer.error_message());
        exclude.push_back(i);
      } else {
        const std::string why =
            a.transport_failed() ? httplib::to_string(a.error) : std::string("stream ended early");
        last_error = fmt::format("{}: {}", backends.url(i), why);
        backends.report_down(i, why);
        avoid = i;
      }
      options.logger.info("router: stream on {} broke ({}) after {} bytes of text", backends.url(i),
                          last_error, splicer.delivered().size());
      metrics.count_failover();
      moved = true;
      out.clear();
      if (splicer.complete_without_backend(out)) {
        pump.push(std::move(out));
        break;
      }
      if (splicer.delivered_any()) {
        if (!f.deterministic) {
          finish_with_error(
              "the backend serving this stream failed after sending text, and a sampled stream "
              "(temperature > 0 without a seed) cannot be resumed elsewhere",
              "backend_failed");
          break;
        }
        metrics.count_stream_resume();
      }
    }
    pump.close();
  }

  void completion(const httplib::Request& req, httplib::Response& res, bool chat) {
    const ForwardRequest f = parse_forward_request(req.body, chat);
    const std::string path = chat ? "/v1/chat/completions" : "/v1/completions";
    if (!backends.any_up()) {
      apply(unavailable(""), res);
      return;
    }
    const httplib::Headers headers = backend_headers(req);
    if (!f.stream) {
      apply(forward_plain(f, path, headers), res);
      return;
    }
    auto pump = std::make_shared<Pump>();
    {
      std::lock_guard lock(stop_mutex);
      if (stopping) {
        apply(unavailable("the router is stopping"), res);
        return;
      }
      pumps.insert(pump);
    }
    std::thread([this, pump, f, path, headers] {
      try {
        forward_stream(f, path, headers, *pump);
      } catch (const std::exception& e) {
        options.logger.warn("router: stream failed: {}", e.what());
      }
      pump->close();
      std::lock_guard lock(stop_mutex);
      pumps.erase(pump);
      stop_cv.notify_all();
    }).detach();
    std::string backend;
    if (auto plain = pump->wait_head(backend)) {
      apply(*plain, res);
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_header("X-Luzao-Backend", backend);
    res.set_chunked_content_provider(
        "text/event-stream",
        [pump](size_t, httplib::DataSink& sink) {
          std::vector<std::string> events;
          const bool open = pump->pop(events, std::chrono::milliseconds(250));
          for (const std::string& e : events) {
            if (!sink.write(e.data(), e.size())) return false;
          }
          if (!open) sink.done();
          return true;
        },
        [pump](bool) { pump->cancel(); });
  }

  // GET requests answered by any healthy backend (the model list).
  void forward_get(const httplib::Request& req, httplib::Response& res) {
    std::vector<size_t> tried;
    std::string last_error;
    while (true) {
      const int i = backends.first_up(tried);
      if (i < 0) break;
      const size_t b = static_cast<size_t>(i);
      Attempt a = send(b, "GET", req.path, "", backend_headers(req), nullptr, nullptr, nullptr);
      if (!a.transport_failed() && a.status > 0 && a.status < 500) {
        apply(PlainReply{a.status, std::move(a.body),
                         a.content_type.empty() ? "application/json" : a.content_type, "",
                         backends.url(b)},
              res);
        return;
      }
      last_error =
          a.transport_failed() ? httplib::to_string(a.error) : fmt::format("HTTP {}", a.status);
      if (a.transport_failed()) backends.report_down(b, last_error);
      tried.push_back(b);
    }
    apply(unavailable(last_error), res);
  }

  void check(size_t i) {
    httplib::Client cli(addresses[i].host, addresses[i].port);
    cli.set_connection_timeout(std::chrono::milliseconds(options.health_timeout_ms));
    cli.set_read_timeout(std::chrono::milliseconds(options.health_timeout_ms));
    cli.set_keep_alive(false);
    const bool was_up = backends.up(i);
    const httplib::Result r = cli.Get("/health");
    const bool ok = r && r->status == 200;
    const std::string error =
        ok ? std::string()
           : (r ? fmt::format("health check: HTTP {}", r->status)
                : fmt::format("health check: {}", httplib::to_string(r.error())));
    const int failures = backends.report_health(i, ok, error);
    if (ok != was_up) {
      options.logger.info("router: backend {} is {}{}", backends.url(i), ok ? "up" : "down",
                          ok ? "" : " (" + error + ")");
    }
    if (ok && backends.needs_seed(i)) seed_speed(cli, i);
    if (failures >= options.abort_after_failures) {
      const size_t n = backends.abort_all(i);
      if (n > 0)
        options.logger.info("router: moving {} requests off unresponsive backend {}", n,
                            backends.url(i));
    }
    backends.sample_throughput(
        i, std::chrono::duration<double>(Clock::now().time_since_epoch()).count());
  }

  // Once, after the first passing health check: the speeds the backend reports in its GET
  // /v1/pool seed the routing estimate, so that the router does not start blind. Without them
  // (an older backend, nothing measured yet) it learns from traffic alone.
  void seed_speed(httplib::Client& cli, size_t i) {
    const httplib::Result r = cli.Get("/v1/pool");
    if (!r) return;  // retried at the next passing check
    const std::optional<ReportedSpeed> speed =
        r->status == 200 ? parse_reported_speed(r->body) : std::nullopt;
    if (backends.seed(i, speed)) {
      options.logger.info("router: backend {} reports prefill {:.1f} and decode {:.1f} tokens/s",
                          backends.url(i), speed->prefill_tps, speed->decode_tps);
    } else {
      options.logger.debug("router: backend {} reports no speed; learning it from traffic",
                           backends.url(i));
    }
  }

  void health_loop(size_t i) {
    bool first = true;
    while (true) {
      check(i);
      std::unique_lock lock(stop_mutex);
      if (first) {
        first = false;
        first_checks += 1;
        stop_cv.notify_all();
      }
      stop_cv.wait_for(lock, std::chrono::milliseconds(options.health_interval_ms),
                       [this] { return stopping; });
      if (stopping) return;
    }
  }

  bool needs_key(const std::string& path) const {
    return !options.api_key.empty() && (path.starts_with("/v1/") || path == "/chat/completions" ||
                                        path == "/completions" || path == "/models");
  }

  template <typename Fn>
  httplib::Server::Handler guarded(Fn fn) {
    return [fn](const httplib::Request& req, httplib::Response& res) {
      try {
        fn(req, res);
      } catch (const ApiError& e) {
        res.status = e.status();
        res.set_content(dump(error_body(e)), "application/json");
      } catch (const std::exception& e) {
        reply_error(res, 500, e.what());
      }
    };
  }

  void routes();
};

void RouterServer::Impl::routes() {
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!needs_key(req.path) ||
        req.get_header_value("Authorization") == "Bearer " + options.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    reply_error(res, 401, "Incorrect or missing API key: send 'Authorization: Bearer <key>'",
                "invalid_api_key");
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                     httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 404) {
      reply_error(res, 404, fmt::format("no route for {} {}", req.method, req.path), "not_found");
    } else if (res.status == 413) {
      reply_error(res, 413,
                  fmt::format("the request body is larger than the limit of {} bytes",
                              options.max_body_bytes),
                  "request_too_large");
    } else {
      reply_error(res, res.status,
                  fmt::format("HTTP {} for {} {}", res.status, req.method, req.path));
    }
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
        reply_error(res, 500, message);
      });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics.count_request(endpoint_label(req.path), res.status);
    options.logger.debug("{} {} -> {}", req.method, req.path, res.status);
  });

  http.Get("/health", guarded([this](const httplib::Request&, httplib::Response& res) {
             size_t up = 0;
             for (size_t i = 0; i < backends.size(); ++i) up += backends.up(i) ? 1 : 0;
             res.status = up > 0 ? 200 : 503;
             if (up == 0) res.set_header("Retry-After", "1");
             res.set_content(dump({{"status", up > 0 ? "ok" : "no backend is up"},
                                   {"backends_up", up},
                                   {"backends", backends.size()}}),
                             "application/json");
           }));
  http.Get("/metrics", guarded([this](const httplib::Request&, httplib::Response& res) {
             res.set_content(metrics.render(backends), "text/plain; version=0.0.4");
           }));
  http.Get("/v1/pool", guarded([this](const httplib::Request&, httplib::Response& res) {
             res.set_content(dump(pool_json(backends)), "application/json");
           }));
  const auto models = guarded(
      [this](const httplib::Request& req, httplib::Response& res) { forward_get(req, res); });
  http.Get("/v1/models", models);
  http.Get("/models", models);
  http.Get(R"(/v1/models/(.+))", models);
  const auto chat = guarded(
      [this](const httplib::Request& req, httplib::Response& res) { completion(req, res, true); });
  const auto text = guarded(
      [this](const httplib::Request& req, httplib::Response& res) { completion(req, res, false); });
  http.Post("/v1/chat/completions", chat);
  http.Post("/chat/completions", chat);
  http.Post("/v1/completions", text);
  http.Post("/completions", text);
}

RouterServer::RouterServer(RouterOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& s = *impl_;
  const size_t threads = static_cast<size_t>(std::max(8, s.options.http_threads));
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.http.set_payload_max_length(s.options.max_body_bytes);
  s.http.set_tcp_nodelay(true);
  prepare_listen_socket(s.http, s.listen_socket);
  s.routes();
}

RouterServer::~RouterServer() {
  stop();
}

void RouterServer::bind() {
  Impl& s = *impl_;
  s.port = bind_listen_socket(s.http, s.listen_socket, s.options.host, s.options.port);
}

int RouterServer::port() const {
  return impl_->port;
}

void RouterServer::listen() {
  Impl& s = *impl_;
  std::vector<std::thread> checkers;
  for (size_t i = 0; i < s.backends.size(); ++i)
    checkers.emplace_back([&s, i] { s.health_loop(i); });
  {
    std::unique_lock lock(s.stop_mutex);
    s.stop_cv.wait_for(lock, std::chrono::milliseconds(s.options.health_timeout_ms + 500), [&s] {
      return s.stopping || s.first_checks >= static_cast<int>(s.backends.size());
    });
  }
  const bool ok = s.http.listen_after_bind();
  // Stop the health checks and every stream's pump before returning.
  std::set<std::shared_ptr<Pump>> pumps;
  {
    std::lock_guard lock(s.stop_mutex);
    s.stopping = true;
    pumps = s.pumps;
    s.stop_cv.notify_all();
  }
  for (const auto& p : pumps) p->cancel();
  for (std::thread& t : checkers) t.join();
  {
    std::unique_lock lock(s.stop_mutex);
    s.stop_cv.wait(lock, [&s] { return s.pumps.empty(); });
  }
  if (!ok)
    fail(ErrorKind::kIo, "the router on {}:{} stopped with an error", s.options.host, s.port);
}

void RouterServer::stop() {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.stop_mutex);
    s.stopping = true;
    for (const auto& p : s.pumps) p->cancel();
    s.stop_cv.notify_all();
  }
  s.http.stop();
}

}  // namespace luzao::server
