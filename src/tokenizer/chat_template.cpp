// Chat template front end: parses once, builds Hugging Face's render context and renders.
#include "tokenizer/chat_template.h"

#include "core/error.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_eval.h"

namespace luzao {

ChatTemplate ChatTemplate::parse(std::string_view source) {
  ChatTemplate t;
  t.body_ = std::make_shared<const jinja::Body>(jinja::parse_template(source));
  return t;
}

std::string ChatTemplate::render(const jinja::ValueDict& context,
                                 const jinja::RenderDate& date) const {
  LUZAO_CHECK(body_ != nullptr);
  jinja::Interp interp(context, date);
  return interp.render(*body_);
}

jinja::Value chat_message_value(const ChatMessage& m) {
  jinja::ValueDict d;
  d.set("role", jinja::Value(m.role));
  if (m.content) d.set("content", jinja::Value(*m.content));
  if (m.reasoning_content) d.set("reasoning_content", jinja::Value(*m.reasoning_content));
  if (!m.tool_calls.empty()) {
    jinja::ValueList calls;
    for (const auto& c : m.tool_calls) {
      jinja::ValueDict fn;
      fn.set("name", jinja::Value(c.name));
      fn.set("arguments",
             c.arguments.is_undefined() ? jinja::Value(jinja::ValueDict{}) : c.arguments);
      jinja::ValueDict call;
      if (!c.id.empty()) call.set("id", jinja::Value(c.id));
      call.set("type", jinja::Value("function"));
      call.set("function", jinja::Value(std::move(fn)));
      calls.emplace_back(std::move(call));
    }
    d.set("tool_calls", jinja::Value(std::move(calls)));
  }
  if (m.tool_call_id) d.set("tool_call_id", jinja::Value(*m.tool_call_id));
  if (m.name) d.set("name", jinja::Value(*m.name));
  return jinja::Value(std::move(d));
}

jinja::Value chat_messages_value(std::span<const ChatMessage> messages) {
  jinja::ValueList list;
  list.reserve(messages.size());
  for (const auto& m : messages) list.push_back(chat_message_value(m));
  return jinja::Value(std::move(list));
}

std::string ChatTemplate::render_chat(std::span<const ChatMessage> messages,
                                      const ChatRenderOptions& options) const {
  jinja::ValueDict context;
  context.set("messages", chat_messages_value(messages));
  context.set("tools", options.tools ? *options.tools : jinja::Value::none());
  context.set("documents", jinja::Value::none());
  context.set("add_generation_prompt", jinja::Value(options.add_generation_prompt));
  context.set("bos_token", jinja::Value(options.bos_token));
  context.set("eos_token", jinja::Value(options.eos_token));
  for (const auto& [k, v] : options.extra.entries()) context.set(k, v);
  return render(context, options.date);
}

std::string render_chat(std::string_view source, std::span<const ChatMessage> messages,
                        const ChatRenderOptions& options) {
  return ChatTemplate::parse(source).render_chat(messages, options);
}

}  // namespace luzao
