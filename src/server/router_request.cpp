// Reading completion requests for `luzao router`: stream mode, determinism, routing hints.
#include "server/router_request.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "server/openai_api.h"

namespace luzao::server {
namespace {

using nlohmann::json;

// Output tokens assumed for a chat request without max_tokens (completions default to 16).
constexpr int64_t kChatDefaultMaxTokens = 256;

const json* present(const json& body, const char* key) {
  const auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

// Message content as text: a string, or the text parts of an array.
void append_content(const json& content, std::string& out) {
  if (content.is_string()) {
    out += content.get<std::string>();
  } else if (content.is_array()) {
    for (const json& part : content) {
      if (!part.is_object()) continue;
      const auto text = part.find("text");
      if (text != part.end() && text->is_string()) out += text->get<std::string>();
    }
  }
}

std::string prompt_text_of(const json& body, bool chat) {
  std::string text;
  if (chat) {
    const json* messages = present(body, "messages");
    if (messages == nullptr || !messages->is_array()) return text;
    for (const json& m : *messages) {
      if (!m.is_object()) continue;
      const auto role = m.find("role");
      if (role != m.end() && role->is_string()) text += role->get<std::string>();
      text += ':';
      const auto content = m.find("content");
      if (content != m.end()) append_content(*content, text);
      text += '\n';
    }
    return text;
  }
  const json* prompt = present(body, "prompt");
  if (prompt == nullptr) return text;
  if (prompt->is_string()) return prompt->get<std::string>();
  return prompt->dump();  // token ids or a list of prompts: its JSON text still keys the prefix
}

}  // namespace

ForwardRequest parse_forward_request(const std::string& text, bool chat) {
  json body = parse_json_body(text);
  if (!body.is_object())
    throw ApiError(400, "the request body must be a JSON object", "invalid_request_error");
  ForwardRequest f;
  f.chat = chat;
  if (const json* stream = present(body, "stream")) {
    if (!stream->is_boolean())
      throw ApiError(400, "'stream' must be a boolean", "invalid_request_error", "stream");
    f.stream = stream->get<bool>();
  }
  if (const json* options = present(body, "stream_options")) {
    if (!options->is_object())
      throw ApiError(400, "'stream_options' must be an object", "invalid_request_error",
                     "stream_options");
    if (const json* usage = present(*options, "include_usage")) {
      if (!usage->is_boolean())
        throw ApiError(400, "'stream_options.include_usage' must be a boolean",
                       "invalid_request_error", "stream_options.include_usage");
      f.include_usage = usage->get<bool>();
    }
  }
  const json* temperature = present(body, "temperature");
  const json* top_k = present(body, "top_k");
  const json* seed = present(body, "seed");
  f.deterministic = (temperature && temperature->is_number() && temperature->get<double>() == 0) ||
                    (top_k && top_k->is_number_integer() && top_k->get<int64_t>() == 1) ||
                    (seed && seed->is_number_integer());

  f.prompt_text = prompt_text_of(body, chat);
  f.route.prefix_key = pool::prefix_key(f.prompt_text);
  f.route.prompt_tokens = static_cast<int64_t>(f.prompt_text.size() / 4 + 1);
  f.route.max_tokens = chat ? kChatDefaultMaxTokens : 16;
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    const json* v = present(body, key);
    if (v && v->is_number_integer() && v->get<int64_t>() > 0)
      f.route.max_tokens = v->get<int64_t>();
  }
  if (f.stream) {
    body["stream_options"]["include_usage"] = true;
    f.backend_body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  } else {
    f.backend_body = text;
  }
  return f;
}

std::string BackendAddress::url() const {
  return fmt::format("http://{}:{}", host, port);
}

BackendAddress parse_backend_url(std::string_view text) {
  std::string_view rest = text;
  if (rest.starts_with("https://"))
    fail(ErrorKind::kInvalidArgument, "backend '{}': https is not supported, use http://", text);
  if (rest.starts_with("http://")) rest.remove_prefix(7);
  if (rest.ends_with('/')) rest.remove_suffix(1);
  const size_t colon = rest.rfind(':');
  BackendAddress a;
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size() ||
      rest.find('/') != std::string_view::npos)
    fail(ErrorKind::kInvalidArgument, "backend '{}': expected http://HOST:PORT", text);
  a.host = std::string(rest.substr(0, colon));
  const std::string_view port = rest.substr(colon + 1);
  int value = 0;
  for (const char c : port) {
    if (c < '0' || c > '9' || value > 65535)
      fail(ErrorKind::kInvalidArgument, "backend '{}': bad port '{}'", text, port);
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > 65535)
    fail(ErrorKind::kInvalidArgument, "backend '{}': port {} is out of range", text, port);
  a.port = value;
  return a;
}

}  // namespace luzao::server
