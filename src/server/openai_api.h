// OpenAI API requests and errors: validates /v1/chat/completions and /v1/completions bodies into
// plain parameters, and renders OpenAI's JSON error format. No HTTP or engine state here.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sampling/sampler.h"
#include "tokenizer/chat_template.h"

namespace luzao::server {

// A request that must be answered with `status` and OpenAI's error JSON.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error",
           std::string param = {}, std::string code = {})
      : std::runtime_error(message),
        status_(status),
        type_(std::move(type)),
        param_(std::move(param)),
        code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string type_, param_, code_;
};

// {"error": {"message", "type", "param", "code"}}; empty param/code become null.
nlohmann::json error_body(const std::string& message, const std::string& type,
                          const std::string& param = {}, const std::string& code = {});
nlohmann::json error_body(const ApiError& error);

struct CompletionParams {
  bool chat = false;
  std::optional<std::string> model;
  std::vector<ChatMessage> messages;                  // chat
  std::string prompt;                                 // completions, text prompt
  std::optional<std::vector<int32_t>> prompt_tokens;  // completions, prompt given as token ids
  std::optional<int32_t> max_tokens;                  // absent: the default of the endpoint
  SamplingParams sampling;
  bool seeded = false;  // whether `seed` was given
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;
};

// Parses and validates a request body. Throws ApiError(400) naming the field at fault (wrong type,
// out of range, missing `messages` or `prompt`, n != 1). Defaults follow OpenAI: temperature 1,
// top_p 1; top_k (default 40), min_p (0.05) and repeat_penalty (1: off) as llama.cpp's server.
CompletionParams parse_completion_request(const nlohmann::json& body, bool chat);

// Parses JSON text; throws ApiError(400) saying where it is malformed.
nlohmann::json parse_json_body(const std::string& text);

}  // namespace luzao::server
