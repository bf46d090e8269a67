// `luzao router` streaming pieces without sockets: an incremental Server-Sent Events parser and the
// splicer that joins a stream re-sent to another backend onto what the client already received.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace luzao::server {

// Incremental parser of a text/event-stream body. Not thread-safe.
class SseParser {
 public:
  // Appends bytes (split anywhere); returns the data of every event they complete, in order
  // (several `data:` lines of one event are joined with '\n'; comments and other fields ignored).
  std::vector<std::string> feed(std::string_view bytes);
  // Forgets a partly received event (a new connection starts).
  void reset();

 private:
  void line(std::string_view text, std::vector<std::string>& events);
  std::string buffer_;
  std::string data_;
  bool has_data_ = false;
};

// The token counts of an OpenAI `usage` object.
struct StreamUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;
};

enum class SpliceStatus {
  kContinue,      // keep reading this backend's stream
  kDone,          // [DONE] was forwarded: the client's stream is complete
  kDiverged,      // the re-sent request generated other text than was delivered
  kBackendError,  // the backend sent an error event or an unreadable one (see error_message())
};

struct SpliceResult {
  SpliceStatus status = SpliceStatus::kContinue;
  bool generated = false;            // the event carried generated text (new or replayed)
  std::optional<StreamUsage> usage;  // the event's usage, when it had one
};

// Turns the SSE events of one or more backend attempts of the same streaming request into one
// stream for the client. The first attempt passes through (id, created and model of its first
// chunk become the stream's). A later attempt regenerates the text from the start: text already
// delivered is compared and skipped, so the client sees neither repeats nor gaps; the role opener,
// finish chunk and usage chunk are sent once. The backend request always asks for usage (the router
// counts tokens); the usage chunk and `usage: null` fields are dropped unless the client asked.
// Not thread-safe.
class StreamSplicer {
 public:
  StreamSplicer(bool chat, bool client_wants_usage);

  // A new backend attempt starts its stream from the beginning.
  void begin_attempt();
  // Handles the data of one event of the current attempt; appends what the client must receive
  // (complete "data: ...\n\n" events) to `out`.
  SpliceResult on_event(std::string_view data, std::string& out);

  // Whether generated text has reached the client (the role opener does not count).
  bool delivered_any() const { return !delivered_.empty(); }
  const std::string& delivered() const { return delivered_; }
  // The client's stream is complete ([DONE] sent).
  bool done() const { return done_; }
  // Whether anything at all was sent to the client.
  bool started() const { return started_; }
  // The message of the last backend error event.
  const std::string& error_message() const { return error_message_; }
  // When the attempt broke after the finish chunk (and usage, if asked) were sent: appends [DONE]
  // and returns true, as nothing is missing. Otherwise returns false.
  bool complete_without_backend(std::string& out);
  // Ends the client's stream with an OpenAI-format error event and [DONE].
  void fail(const std::string& message, const std::string& code, std::string& out);

 private:
  void send(const nlohmann::json& chunk, std::string& out);
  void rewrite_identity(nlohmann::json& chunk);

  bool chat_;
  bool client_wants_usage_;
  std::optional<nlohmann::json> id_, created_, model_;
  std::string delivered_;  // generated text the client has received
  std::string attempt_;    // text the current attempt generated so far
  bool started_ = false, role_sent_ = false, finish_sent_ = false, usage_sent_ = false;
  bool done_ = false;
  std::string error_message_;
};

// One SSE event carrying `data`.
std::string sse_event(std::string_view data);

}  // namespace luzao::server
