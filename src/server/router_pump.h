// The hand-over between a streaming request's pump thread (which talks to the backends) and the
// client's connection in `luzao router`. Internal to src/server/router*.cpp.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <httplib.h>

#include "server/openai_api.h"

namespace luzao::server {

// A response that is not a stream: status, body and the headers worth passing on.
struct PlainReply {
  int status = 0;
  std::string body;
  std::string content_type = "application/json";
  std::string retry_after;
  std::string backend;
};

// Between a stream's pump thread (producer) and the client's connection (consumer).
class Pump {
 public:
  // The pump decided how to answer: a stream, or a plain reply.
  void start_stream(const std::string& backend) {
    std::lock_guard lock(mutex_);
    if (head_) return;
    head_ = true;
    backend_ = backend;
    cv_.notify_all();
  }
  void reply_plain(PlainReply reply) {
    std::lock_guard lock(mutex_);
    if (head_) return;
    head_ = true;
    plain_ = std::move(reply);
    cv_.notify_all();
  }
  bool head_sent() const {
    std::lock_guard lock(mutex_);
    return head_;
  }
  void push(std::string events) {
    if (events.empty()) return;
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(events));
    cv_.notify_all();
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    cv_.notify_all();
  }
  // Consumer: waits for the head. A plain reply, or nullopt for a stream (backend in `backend`).
  std::optional<PlainReply> wait_head(std::string& backend) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return head_ || closed_; });
    backend = backend_;
    if (!head_) return PlainReply{500, error_body("the router failed", "server_error").dump()};
    return plain_;
  }
  // Consumer: takes what is queued, waiting up to `timeout`; false once closed and drained.
  bool pop(std::vector<std::string>& out, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [this] { return !queue_.empty() || closed_; });
    while (!queue_.empty()) {
      out.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    return !closed_ || !out.empty();
  }
  // Consumer went away (or the router stops): stop the backend connection in use.
  void cancel() {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    if (client_) client_->stop();
    cv_.notify_all();
  }
  bool cancelled() const {
    std::lock_guard lock(mutex_);
    return cancelled_;
  }
  void attach(httplib::Client* client) {
    std::lock_guard lock(mutex_);
    client_ = client;
    if (cancelled_ && client_) client_->stop();
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool head_ = false, closed_ = false, cancelled_ = false;
  std::string backend_;
  std::optional<PlainReply> plain_;
  std::deque<std::string> queue_;
  httplib::Client* client_ = nullptr;
};

}  // namespace luzao::server
