// Chat templates: Hugging Face-style Jinja chat templates (tokenizer.chat_template) parsed once and
// rendered with jinja2's semantics, for `luzao run --chat`, `luzao chat` and the OpenAI server.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "tokenizer/jinja_value.h"

namespace luzao {

namespace jinja {
struct Stmt;
}

// One tool call of an assistant message, as OpenAI's API and Hugging Face templates shape it.
struct ChatToolCall {
  std::string id;          // optional (empty: no "id" key)
  std::string name;        // function name
  jinja::Value arguments;  // a dict (parse with jinja::parse_json) or the JSON string as given
};

// One message. Absent optional fields are left out of the dict the template sees, as Hugging Face
// drops None values.
struct ChatMessage {
  std::string role;
  std::optional<std::string> content;
  std::optional<std::string> reasoning_content;
  std::vector<ChatToolCall> tool_calls;
  std::optional<std::string> tool_call_id;
  std::optional<std::string> name;
};

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  std::string bos_token;
  std::string eos_token;
  // OpenAI-style tool definitions ([{"type": "function", "function": {...}}]); none: tools=None.
  std::optional<jinja::Value> tools;
  // Further template arguments (enable_thinking, reasoning_effort, ...).
  jinja::ValueDict extra;
  // What strftime_now() returns dates for.
  jinja::RenderDate date;
};

// A parsed template. Copies share the syntax tree; render() is const and safe to call from several
// threads at once.
class ChatTemplate {
 public:
  // Fails with kInvalidArgument on syntax errors and kUnsupported on constructs outside the
  // supported subset; messages name the template line.
  static ChatTemplate parse(std::string_view source);

  // Renders with `context` as the template's variables (messages, tools, add_generation_prompt,
  // bos_token, ...). Errors (raise_exception, undefined values, unsupported filters) throw
  // luzao::Error naming the template line; raise_exception's message is kept verbatim.
  std::string render(const jinja::ValueDict& context, const jinja::RenderDate& date = {}) const;

  // Builds Hugging Face's context (messages, tools, documents=None, add_generation_prompt,
  // bos_token, eos_token, extra) and renders it.
  std::string render_chat(std::span<const ChatMessage> messages,
                          const ChatRenderOptions& options) const;

 private:
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::Stmt>>> body_;
};

// The template-visible dict of one message / the list of all messages.
jinja::Value chat_message_value(const ChatMessage& message);
jinja::Value chat_messages_value(std::span<const ChatMessage> messages);

// Parse-and-render in one call, for one-off use.
std::string render_chat(std::string_view source, std::span<const ChatMessage> messages,
                        const ChatRenderOptions& options);

}  // namespace luzao
