// What `luzao router` reads from a completion request: enough to route and to decide how it may be
// re-sent (streaming, deterministic), and the body that goes to the backends. No sockets here.
#pragma once

#include <string>
#include <string_view>

#include "pool/routing.h"

namespace luzao::server {

struct ForwardRequest {
  bool chat = false;
  bool stream = false;
  // Greedy (temperature 0 or top_k 1) or seeded: a re-sent request generates the same text, so a
  // stream broken after some text was delivered can be continued on another backend.
  bool deterministic = false;
  bool include_usage = false;  // the client asked for stream_options.include_usage
  std::string backend_body;    // the body sent to every backend attempt
  std::string prompt_text;     // the prompt as text, for prefix affinity
  pool::RouteRequest route;
};

// Parses a /v1/chat/completions (`chat`) or /v1/completions body. Throws ApiError(400) in OpenAI's
// format when the body is not a JSON object or `stream`/`stream_options` have the wrong type; every
// other check is the backend's. Streaming bodies ask the backend for usage (the router counts
// tokens with it); other bodies go to the backend byte for byte.
ForwardRequest parse_forward_request(const std::string& body, bool chat);

// A backend's address from `--backend`: "http://HOST:PORT" or "HOST:PORT" (a trailing '/' is
// allowed). Throws Error(kInvalidArgument) naming the text otherwise (https is not supported).
struct BackendAddress {
  std::string host;
  int port = 0;
  std::string url() const;  // "http://HOST:PORT"
};
BackendAddress parse_backend_url(std::string_view text);

}  // namespace luzao::server
