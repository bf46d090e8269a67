// `luzao run` (one prompt, continuation on stdout) and `luzao chat` (interactive loop).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "core/error.h"
#include "runtime/engine.h"

namespace luzao::cli {
namespace {

struct ModelArgs {
  std::string model;
  std::string device = "cpu";
  std::string split;
  int threads = 0;
  int ctx_size = 0;
  int batch = 512;
  std::string cache_type = "f16";
  std::string chat_template_file;
  bool verbose = false;
};

struct SamplingArgs {
  SamplingParams params;
  int max_tokens = 256;
};

void add_model_options(CLI::App& cmd, ModelArgs& a) {
  cmd.add_option("-m,--model", a.model, "GGUF model file")->required();
  add_device_options(cmd, a.device, a.split);
  cmd.add_option("-t,--threads", a.threads, "Worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("-c,--ctx-size", a.ctx_size, "Context size in tokens (0: model's, at most 4096)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("-b,--batch-size", a.batch, "Tokens per forward pass during prefill")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--cache-type", a.cache_type, "KV cache type: f16, f32 or q8_0")
      ->check(CLI::IsMember({"f16", "f32", "q8_0"}))
      ->capture_default_str();
  cmd.add_option("--chat-template", a.chat_template_file,
                 "Jinja chat template file to use instead of the model's")
      ->check(CLI::ExistingFile);
  cmd.add_flag("-v,--verbose", a.verbose, "Log loading details to stderr");
}

void add_sampling_options(CLI::App& cmd, SamplingArgs& a) {
  a.params.seed = 0xC0FFEE;
  cmd.add_option("-n,--n-predict", a.max_tokens, "Tokens to generate at most")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--temp", a.params.temperature, "Temperature (0: greedy)")->capture_default_str();
  cmd.add_option("--top-k", a.params.top_k, "Top-k (0: off)")->capture_default_str();
  cmd.add_option("--top-p", a.params.top_p, "Top-p (1: off)")->capture_default_str();
  cmd.add_option("--min-p", a.params.min_p, "Min-p (0: off)")->capture_default_str();
  cmd.add_option("--repeat-penalty", a.params.repeat_penalty, "Repetition penalty (1: off)")
      ->capture_default_str();
  cmd.add_option("--repeat-last-n", a.params.repeat_last_n, "Tokens the penalty looks back over")
      ->capture_default_str();
  cmd.add_option("-s,--seed", a.params.seed, "Random seed")->capture_default_str();
}

std::unique_ptr<Engine> load_engine(const ModelArgs& a) {
  EngineOptions options;
  options.model_path = a.model;
  options.device = a.device;
  options.split = a.split;
  options.threads = a.threads;
  options.ctx_size = a.ctx_size;
  options.max_batch_tokens = a.batch;
  options.kv_dtype = *dtype_from_name(a.cache_type);
  if (!a.chat_template_file.empty()) {
    std::ifstream in(a.chat_template_file, std::ios::binary);
    options.chat_template.assign(std::istreambuf_iterator<char>(in), {});
    if (!in && !in.eof()) fail(ErrorKind::kIo, "{}: cannot read", a.chat_template_file);
  }
  options.logger = Logger([](LogLevel, std::string_view line) { fmt::print(stderr, "{}\n", line); },
                          a.verbose ? LogLevel::kDebug : LogLevel::kWarn);
  return std::make_unique<Engine>(options);
}

void print_piece(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void print_timings(const GenerateResult& r) {
  const double pp = r.prompt_seconds > 0 ? r.prompt_tokens / r.prompt_seconds : 0;
  const size_t steps = r.tokens.empty() ? 0 : r.tokens.size() - 1;
  const double tg = r.generate_seconds > 0 ? static_cast<double>(steps) / r.generate_seconds : 0;
  fmt::print(stderr,
             "\nprompt: {} tokens in {:.3f} s ({:.1f} tok/s); generated: {} tokens, {:.1f} tok/s\n",
             r.prompt_tokens, r.prompt_seconds, pp, r.tokens.size(), tg);
}

}  // namespace

CommandMain setup_run(CLI::App& cmd) {
  struct Args {
    ModelArgs model;
    SamplingArgs sampling;
    std::string prompt;
    bool chat = false;
    std::string logits_out;
    std::string tokens_out;
    bool quiet_timings = false;
  };
  auto a = std::make_shared<Args>();
  add_model_options(cmd, a->model);
  add_sampling_options(cmd, a->sampling);
  cmd.add_option("-p,--prompt", a->prompt, "Prompt text")->required();
  cmd.add_flag("--chat", a->chat, "Wrap the prompt in the model's chat template as a user turn");
  cmd.add_option("--logits-out", a->logits_out,
                 "Write the last prompt position's logits (float32, little endian) to FILE");
  cmd.add_option("--tokens-out", a->tokens_out,
                 "Write prompt and generated token ids as JSON to FILE");
  cmd.add_flag("--no-timings", a->quiet_timings, "Do not print timings to stderr");
  return [a]() -> int {
    auto engine = load_engine(a->model);
    std::string text = a->prompt;
    if (a->chat) {
      ChatMessage user;
      user.role = "user";
      user.content = a->prompt;
      text = engine->chat_prompt(std::span(&user, 1), true);
    }
    const std::vector<int32_t> prompt = engine->tokenizer().tokenize(text, true, true);
    if (prompt.empty()) fail(ErrorKind::kInvalidArgument, "the prompt is empty after tokenization");
    if (prompt.size() > static_cast<size_t>(engine->ctx_size())) {
      fail(ErrorKind::kInvalidArgument,
           "the prompt has {} tokens, more than the context size of {}", prompt.size(),
           engine->ctx_size());
    }
    Session session(*engine);
    GenerateOptions options;
    options.max_tokens = a->sampling.max_tokens;
    options.sampling = a->sampling.params;
    std::vector<float> prompt_logits;
    const bool want_logits = !a->logits_out.empty();
    GenerateResult result;
    if (want_logits) {  // feed first so the prompt's logits can be saved before sampling
      const auto t0 = std::chrono::steady_clock::now();
      const auto logits = session.feed(prompt);
      const double prompt_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      prompt_logits.assign(logits.begin(), logits.end());
      result = session.generate({}, options, [](int32_t, std::string_view t) {
        print_piece(t);
        return true;
      });
      result.prompt_tokens = static_cast<int32_t>(prompt.size());
      result.prompt_seconds = prompt_seconds;
    } else {
      result = session.generate(prompt, options, [](int32_t, std::string_view t) {
        print_piece(t);
        return true;
      });
    }
    if (want_logits) {
      std::ofstream out(a->logits_out, std::ios::binary);
      out.write(reinterpret_cast<const char*>(prompt_logits.data()),
                static_cast<std::streamsize>(prompt_logits.size() * sizeof(float)));
      if (!out) fail(ErrorKind::kIo, "{}: cannot write logits", a->logits_out);
    }
    if (!a->tokens_out.empty()) {
      std::ofstream out(a->tokens_out);
      out << nlohmann::json{{"prompt", prompt}, {"generated", result.tokens}}.dump() << "\n";
      if (!out) fail(ErrorKind::kIo, "{}: cannot write tokens", a->tokens_out);
    }
    std::fputc('\n', stdout);
    if (!a->quiet_timings) print_timings(result);
    return 0;
  };
}

CommandMain setup_chat(CLI::App& cmd) {
  struct Args {
    ModelArgs model;
    SamplingArgs sampling;
    std::string system;
  };
  auto a = std::make_shared<Args>();
  add_model_options(cmd, a->model);
  add_sampling_options(cmd, a->sampling);
  cmd.add_option("--system", a->system, "System message");
  return [a]() -> int {
    auto engine = load_engine(a->model);
    Session session(*engine);
    std::vector<ChatMessage> messages;
    auto message = [](std::string role, std::string content) {
      ChatMessage m;
      m.role = std::move(role);
      m.content = std::move(content);
      return m;
    };
    if (!a->system.empty()) messages.push_back(message("system", a->system));
    GenerateOptions options;
    options.max_tokens = a->sampling.max_tokens;
    options.sampling = a->sampling.params;
    fmt::print(stderr, "Chatting with {}. Type /exit or Ctrl-D to quit.\n", a->model.model);
    std::string line;
    while (true) {
      fmt::print(stderr, "> ");
      if (!std::getline(std::cin, line) || line == "/exit") break;
      if (line.empty()) continue;
      messages.push_back(message("user", line));
      const std::string text = engine->chat_prompt(messages, true);
      const std::vector<int32_t> all = engine->tokenizer().tokenize(text, true, true);
      // Keep the KV of the shared prefix; feed only what is new since the last turn.
      size_t common = 0;
      const auto& hist = session.history();
      while (common < hist.size() && common < all.size() && hist[common] == all[common]) ++common;
      if (common == all.size()) --common;  // at least one token to produce fresh logits
      session.truncate(common);
      std::string reply;
      GenerateResult r;
      try {
        r = session.generate(std::span(all).subspan(common), options,
                             [&reply](int32_t, std::string_view t) {
                               print_piece(t);
                               reply += t;
                               return true;
                             });
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::kOutOfMemory) throw;
        fmt::print(stderr, "\n{} (conversation reset)\n", e.what());
        messages.clear();
        session.truncate(0);
        continue;
      }
      std::fputc('\n', stdout);
      std::fflush(stdout);
      messages.push_back(message("assistant", reply));
    }
    return 0;
  };
}

}  // namespace luzao::cli
