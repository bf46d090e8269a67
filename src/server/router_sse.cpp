// SSE parsing and the splicing of re-sent streaming requests for `luzao router`.
#include "server/router_sse.h"

#include <algorithm>

#include "server/openai_api.h"

namespace luzao::server {
namespace {

using nlohmann::json;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

int64_t int_field(const json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

StreamUsage usage_of(const json& usage) {
  StreamUsage u;
  u.prompt_tokens = int_field(usage, "prompt_tokens");
  u.completion_tokens = int_field(usage, "completion_tokens");
  const auto details = usage.find("prompt_tokens_details");
  if (details != usage.end() && details->is_object())
    u.cached_tokens = int_field(*details, "cached_tokens");
  return u;
}

}  // namespace

std::string sse_event(std::string_view data) {
  std::string event = "data: ";
  event += data;
  event += "\n\n";
  return event;
}

std::vector<std::string> SseParser::feed(std::string_view bytes) {
  std::vector<std::string> events;
  buffer_.append(bytes);
  size_t begin = 0;
  while (true) {
    const size_t end = buffer_.find('\n', begin);
    if (end == std::string::npos) break;
    std::string_view text(buffer_.data() + begin, end - begin);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    line(text, events);
    begin = end + 1;
  }
  buffer_.erase(0, begin);
  return events;
}

void SseParser::reset() {
  buffer_.clear();
  data_.clear();
  has_data_ = false;
}

void SseParser::line(std::string_view text, std::vector<std::string>& events) {
  if (text.empty()) {
    if (has_data_) events.push_back(std::move(data_));
    data_.clear();
    has_data_ = false;
    return;
  }
  if (text.front() == ':') return;  // a comment
  const size_t colon = text.find(':');
  const std::string_view field = text.substr(0, colon);
  std::string_view value =
      colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field != "data") return;
  if (has_data_) data_ += '\n';
  data_ += value;
  has_data_ = true;
}

StreamSplicer::StreamSplicer(bool chat, bool client_wants_usage)
    : chat_(chat), client_wants_usage_(client_wants_usage) {}

void StreamSplicer::begin_attempt() {
  attempt_.clear();
}

void StreamSplicer::send(const json& chunk, std::string& out) {
  out += sse_event(dump(chunk));
  started_ = true;
}

void StreamSplicer::rewrite_identity(json& chunk) {
  const auto keep = [&chunk](const char* key, std::optional<json>& first) {
    const auto it = chunk.find(key);
    if (first) {
      if (it != chunk.end()) *it = *first;
    } else if (it != chunk.end()) {
      first = *it;
    }
  };
  keep("id", id_);
  keep("created", created_);
  keep("model", model_);
  if (!client_wants_usage_) chunk.erase("usage");
}

SpliceResult StreamSplicer::on_event(std::string_view data, std::string& out) {
  SpliceResult result;
  if (done_) return {SpliceStatus::kDone};
  if (data == "[DONE]") {
    if (attempt_.size() < delivered_.size()) return {SpliceStatus::kDiverged};
    out += sse_event("[DONE]");
    started_ = true;
    done_ = true;
    return {SpliceStatus::kDone};
  }
  json chunk = json::parse(data, nullptr, false);
  if (chunk.is_discarded() || !chunk.is_object()) {
    error_message_ = "a backend sent an unreadable stream event";
    return {SpliceStatus::kBackendError};
  }
  if (const auto err = chunk.find("error"); err != chunk.end()) {
    error_message_ = "a backend failed";
    if (err->is_object() && err->contains("message") && (*err)["message"].is_string())
      error_message_ = (*err)["message"].get<std::string>();
    return {SpliceStatus::kBackendError};
  }
  const auto usage = chunk.find("usage");
  if (usage != chunk.end() && usage->is_object()) result.usage = usage_of(*usage);
  const auto choices = chunk.find("choices");
  if (choices == chunk.end() || !choices->is_array() || choices->empty()) {
    // The usage chunk (empty choices) is sent at most once, and only when the client asked.
    if (result.usage && client_wants_usage_ && !usage_sent_) {
      rewrite_identity(chunk);
      usage_sent_ = true;
      send(chunk, out);
    }
    return result;
  }
  json& choice = (*choices)[0];
  if (!choice.is_object()) {
    error_message_ = "a backend sent a stream chunk without a choice object";
    return {SpliceStatus::kBackendError};
  }
  // The generated text of this chunk, and where it lives.
  json* text_slot = nullptr;
  bool role = false;
  if (chat_) {
    auto delta = choice.find("delta");
    if (delta != choice.end() && delta->is_object()) {
      role = delta->contains("role");
      if (role && role_sent_) delta->erase("role");
      const auto content = delta->find("content");
      if (content != delta->end() && content->is_string()) text_slot = &*content;
    }
  } else {
    const auto text = choice.find("text");
    if (text != choice.end() && text->is_string()) text_slot = &*text;
  }
  bool has_text = false;
  if (text_slot) {
    std::string piece = text_slot->get<std::string>();
    result.generated = !piece.empty();
    const size_t start = attempt_.size();
    attempt_ += piece;
    if (start < delivered_.size()) {
      const size_t overlap = std::min(piece.size(), delivered_.size() - start);
      if (delivered_.compare(start, overlap, piece, 0, overlap) != 0)
        return {SpliceStatus::kDiverged};
      piece.erase(0, overlap);
    }
    delivered_ += piece;
    has_text = !piece.empty();
    if (chat_ && !has_text) {
      choice["delta"].erase("content");
    } else {
      *text_slot = piece;
    }
  }
  const auto finish = choice.find("finish_reason");
  const bool finishing = finish != choice.end() && !finish->is_null();
  if (finishing) {
    if (attempt_.size() < delivered_.size()) return {SpliceStatus::kDiverged};
    if (finish_sent_) {
      *finish = nullptr;
    } else {
      finish_sent_ = true;
    }
  }
  const bool new_role = role && !role_sent_;
  const bool new_finish = finishing && !finish->is_null();
  if (!has_text && !new_role && !new_finish) return result;  // nothing new for the client
  role_sent_ = role_sent_ || new_role;
  rewrite_identity(chunk);
  send(chunk, out);
  return result;
}

bool StreamSplicer::complete_without_backend(std::string& out) {
  if (done_ || !finish_sent_ || (client_wants_usage_ && !usage_sent_)) return false;
  out += sse_event("[DONE]");
  done_ = true;
  return true;
}

void StreamSplicer::fail(const std::string& message, const std::string& code, std::string& out) {
  if (done_) return;
  out += sse_event(dump(error_body(message, "server_error", "", code)));
  out += sse_event("[DONE]");
  started_ = true;
  done_ = true;
}

}  // namespace luzao::server
