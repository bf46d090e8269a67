// Validation of OpenAI completion requests and the error JSON.
#include "server/openai_api.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace luzao::server {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, message, "invalid_request_error", param);
}

const char* type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

// The value of `key` when present and not null.
const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& body, const char* key, double lo, double hi, double fallback) {
  const json* v = field(body, key);
  if (v == nullptr) return fallback;
  if (!v->is_number()) bad(key, fmt::format("'{}' must be a number, not {}", key, type_name(*v)));
  const double d = v->get<double>();
  if (!(d >= lo && d <= hi))
    bad(key, fmt::format("'{}' must be between {} and {}, got {}", key, lo, hi, d));
  return d;
}

std::optional<int64_t> integer(const json& body, const char* key, int64_t lo, int64_t hi) {
  const json* v = field(body, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number_integer()) {
    bad(key, fmt::format("'{}' must be an integer, not {}", key, type_name(*v)));
  }
  // Unsigned values above int64 arrive as number_unsigned; compare in the signed domain carefully.
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) {
    bad(key, fmt::format("'{}' must be at most {}", key, hi));
  }
  const int64_t i = v->get<int64_t>();
  if (i < lo || i > hi)
    bad(key, fmt::format("'{}' must be between {} and {}, got {}", key, lo, hi, i));
  return i;
}

bool boolean(const json& body, const char* key, bool fallback) {
  const json* v = field(body, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) bad(key, fmt::format("'{}' must be a boolean, not {}", key, type_name(*v)));
  return v->get<bool>();
}

// Message content: a string, or an array of {"type": "text", "text": ...} parts.
std::optional<std::string> content_text(const json& m, size_t index) {
  const std::string param = fmt::format("messages[{}].content", index);
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) bad(param, fmt::format("'{}' must be a string or an array of parts", param));
  std::string text;
  for (size_t j = 0; j < it->size(); ++j) {
    const json& part = (*it)[j];
    const std::string pp = fmt::format("{}[{}]", param, j);
    if (!part.is_object()) bad(pp, fmt::format("'{}' must be an object", pp));
    auto type = part.find("type");
    if (type == part.end() || !type->is_string())
      bad(pp + ".type", fmt::format("'{}.type' is required", pp));
    if (*type != "text") {
      bad(pp + ".type", fmt::format("'{}.type' is '{}': only text parts are supported", pp,
                                    type->get<std::string>()));
    }
    auto t = part.find("text");
    if (t == part.end() || !t->is_string())
      bad(pp + ".text", fmt::format("'{}.text' must be a string", pp));
    text += t->get<std::string>();
  }
  return text;
}

std::vector<ChatMessage> parse_messages(const json& body) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) bad("messages", "'messages' is required");
  if (!it->is_array())
    bad("messages", fmt::format("'messages' must be an array, not {}", type_name(*it)));
  if (it->empty()) bad("messages", "'messages' must not be empty");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    if (!m.is_object())
      bad(fmt::format("messages[{}]", i), fmt::format("'messages[{}]' must be an object", i));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      bad(fmt::format("messages[{}].role", i),
          fmt::format("'messages[{}].role' must be a string", i));
    }
    ChatMessage msg;
    msg.role = role->get<std::string>();
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" &&
        msg.role != "tool" && msg.role != "developer") {
      bad(fmt::format("messages[{}].role", i),
          fmt::format(
              "'messages[{}].role' is '{}': expected system, developer, user, assistant or tool", i,
              msg.role));
    }
    msg.content = content_text(m, i);
    if (auto name = m.find("name"); name != m.end() && name->is_string())
      msg.name = name->get<std::string>();
    if (auto id = m.find("tool_call_id"); id != m.end() && id->is_string()) {
      msg.tool_call_id = id->get<std::string>();
    }
    out.push_back(std::move(msg));
  }
  return out;
}

std::vector<std::string> parse_stop(const json& body) {
  const json* v = field(body, "stop");
  if (v == nullptr) return {};
  if (v->is_string()) return {v->get<std::string>()};
  if (!v->is_array())
    bad("stop",
        fmt::format("'stop' must be a string or an array of strings, not {}", type_name(*v)));
  if (v->size() > 4) bad("stop", "'stop' may hold at most 4 sequences");
  std::vector<std::string> out;
  for (const json& s : *v) {
    if (!s.is_string()) bad("stop", "'stop' must be a string or an array of strings");
    out.push_back(s.get<std::string>());
  }
  return out;
}

}  // namespace

json error_body(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code) {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

json error_body(const ApiError& e) {
  return error_body(e.what(), e.type(), e.param(), e.code());
}

json parse_json_body(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw ApiError(400, fmt::format("the request body is not valid JSON: {}", e.what()));
  }
}

CompletionParams parse_completion_request(const json& body, bool chat) {
  if (!body.is_object())
    bad("", fmt::format("the request body must be a JSON object, not {}", type_name(body)));
  CompletionParams p;
  p.chat = chat;
  if (const json* m = field(body, "model")) {
    if (!m->is_string())
      bad("model", fmt::format("'model' must be a string, not {}", type_name(*m)));
    p.model = m->get<std::string>();
  }
  if (chat) {
    p.messages = parse_messages(body);
  } else {
    const json* prompt = field(body, "prompt");
    if (prompt == nullptr) bad("prompt", "'prompt' is required");
    if (prompt->is_string()) {
      p.prompt = prompt->get<std::string>();
    } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
      p.prompt = (*prompt)[0].get<std::string>();
    } else if (prompt->is_array() && !prompt->empty() &&
               std::all_of(prompt->begin(), prompt->end(),
                           [](const json& t) { return t.is_number_integer(); })) {
      std::vector<int32_t> ids;
      for (const json& t : *prompt) {
        const int64_t id = t.get<int64_t>();
        if (id < 0 || id > std::numeric_limits<int32_t>::max())
          bad("prompt", fmt::format("token id {} is out of range", id));
        ids.push_back(static_cast<int32_t>(id));
      }
      p.prompt_tokens = std::move(ids);
    } else {
      bad("prompt", "'prompt' must be a string, an array of one string or an array of token ids");
    }
  }
  // max_completion_tokens is the newer name of max_tokens for chat.
  std::optional<int64_t> max_tokens = integer(body, "max_completion_tokens", 0, 1 << 30);
  if (!max_tokens) max_tokens = integer(body, "max_tokens", 0, 1 << 30);
  if (max_tokens) p.max_tokens = static_cast<int32_t>(*max_tokens);
  if (auto n = integer(body, "n", 1, 128); n && *n != 1) bad("n", "only n = 1 is supported");
  p.sampling.temperature = static_cast<float>(number(body, "temperature", 0.0, 2.0, 1.0));
  p.sampling.top_p = static_cast<float>(number(body, "top_p", 0.0, 1.0, 1.0));
  if (p.sampling.top_p <= 0.0f) bad("top_p", "'top_p' must be greater than 0");
  p.sampling.min_p = static_cast<float>(number(body, "min_p", 0.0, 1.0, 0.05));
  p.sampling.top_k = static_cast<int32_t>(integer(body, "top_k", 0, 1 << 30).value_or(40));
  p.sampling.repeat_penalty = static_cast<float>(number(body, "repeat_penalty", 0.0, 10.0, 1.0));
  if (p.sampling.repeat_penalty <= 0.0f)
    bad("repeat_penalty", "'repeat_penalty' must be greater than 0");
  number(body, "presence_penalty", -2.0, 2.0, 0.0);   // accepted, not applied
  number(body, "frequency_penalty", -2.0, 2.0, 0.0);  // accepted, not applied
  if (auto seed = integer(body, "seed", std::numeric_limits<int64_t>::min(),
                          std::numeric_limits<int64_t>::max())) {
    p.sampling.seed = static_cast<uint64_t>(*seed);
    p.seeded = true;
  }
  p.stop = parse_stop(body);
  p.stream = boolean(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "'stream_options' must be an object");
    if (!p.stream) bad("stream_options", "'stream_options' is only allowed when 'stream' is true");
    p.include_usage = boolean(*so, "include_usage", false);
  }
  if (const json* lp = field(body, "logprobs");
      lp != nullptr && !(lp->is_boolean() && !lp->get<bool>()) &&
      !(lp->is_number_integer() && lp->get<int64_t>() == 0)) {
    throw ApiError(400, "'logprobs' is not supported", "invalid_request_error", "logprobs");
  }
  return p;
}

}  // namespace luzao::server
