// `luzao perplexity`: perplexity of a model on a text file, llama-perplexity's way, with optional
// KL-divergence against saved base-model log-probabilities (see cli/perplexity.h).
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/perplexity.h"
#include "core/error.h"

namespace luzao::cli {

CommandMain setup_perplexity(CLI::App& cmd) {
  struct Args {
    std::string model;
    std::string file;
    std::string device = "cpu";
    std::string split;
    int threads = 0;
    int ctx = 512;
    int chunks = -1;
    int batch = 512;
    std::string save_logits;
    std::string kl_base;
    std::string cache_type = "f16";
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd.add_option("-m,--model", a->model, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd.add_option("-f,--file", a->file, "Text file to measure on")
      ->required()
      ->check(CLI::ExistingFile);
  cmd.add_option("-c,--ctx", a->ctx, "Tokens per chunk; the second half of each is scored")
      ->check(CLI::Range(4, 1 << 20))
      ->capture_default_str();
  cmd.add_option("--chunks", a->chunks, "Chunks to evaluate at most (-1: all)")
      ->capture_default_str();
  cmd.add_option("-b,--batch-size", a->batch, "Tokens per forward pass")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("-t,--threads", a->threads, "Worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  add_device_options(cmd, a->device, a->split);
  cmd.add_option("--save-logits", a->save_logits,
                 "Save the scored tokens' log-probabilities (fp16) for a later --kl-base");
  cmd.add_option(
         "--kl-base", a->kl_base,
         "Compare with log-probabilities saved by --save-logits: KL-divergence, top-1 agreement")
      ->check(CLI::ExistingFile);
  cmd.add_option("--cache-type", a->cache_type, "KV cache type: f16, f32 or q8_0")
      ->check(CLI::IsMember({"f16", "f32", "q8_0"}))
      ->capture_default_str();
  cmd.add_flag("--json", a->json, "Print the results as one JSON object on stdout");
  return [a]() -> int {
    const auto t0 = std::chrono::steady_clock::now();
    EngineOptions options;
    options.model_path = a->model;
    options.device = a->device;
    options.split = a->split;
    options.threads = a->threads;
    options.ctx_size = a->ctx;
    options.max_batch_tokens = std::min(a->batch, a->ctx);
    options.kv_dtype = *dtype_from_name(a->cache_type);
    options.logger = Logger(
        [](LogLevel, std::string_view line) { fmt::print(stderr, "{}\n", line); }, LogLevel::kWarn);
    Engine engine(options);
    const std::string text = read_text_file(a->file);
    const std::vector<int32_t> tokens = engine.tokenizer().tokenize(text, true, false);
    fmt::print(stderr, "perplexity: {} tokens, ctx {}, batch {}\n", tokens.size(), a->ctx,
               options.max_batch_tokens);
    PerplexityConfig config;
    config.ctx = a->ctx;
    config.chunks = a->chunks;
    config.batch = a->batch;
    config.save_logits = a->save_logits;
    config.kl_base = a->kl_base;
    config.on_chunk = [](int c, int n, double ppl) {
      fmt::print(stderr, "[{}/{}]{:.4f}{}", c + 1, n, ppl, c + 1 == n ? "\n" : ",");
      std::fflush(stderr);
    };
    const PerplexityReport r = run_perplexity(engine, tokens, config);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (a->json) {
      nlohmann::json j{{"model", a->model},
                       {"file", a->file},
                       {"ctx", r.ctx},
                       {"chunks", r.chunks},
                       {"text_tokens", r.text_tokens},
                       {"scored_tokens", r.nll.count()},
                       {"ppl", r.nll.ppl()},
                       {"ppl_stderr", r.nll.ppl_stderr()},
                       {"seconds", seconds}};
      if (r.kl) {
        j["kld_mean"] = r.kl->mean();
        j["kld_stderr"] = r.kl->mean_stderr();
        j["kld_p99"] = r.kl->percentile(0.99);
        j["kld_max"] = r.kl->percentile(1.0);
        j["top1_agreement"] = r.kl->top1_agreement();
        j["top1_stderr"] = r.kl->top1_stderr();
        j["base_ppl"] = r.base_nll->ppl();
      }
      fmt::print("{}\n", j.dump());
      return 0;
    }
    fmt::print("Final estimate: PPL = {:.4f} +/- {:.5f} ({} chunks of {}, {} tokens scored)\n",
               r.nll.ppl(), r.nll.ppl_stderr(), r.chunks, r.ctx, r.nll.count());
    if (r.kl) {
      fmt::print("PPL(base)         : {:.4f} +/- {:.5f}\n", r.base_nll->ppl(),
                 r.base_nll->ppl_stderr());
      fmt::print("Mean KLD          : {:.6f} +/- {:.6f}\n", r.kl->mean(), r.kl->mean_stderr());
      fmt::print("99.0% KLD         : {:.6f}\n", r.kl->percentile(0.99));
      fmt::print("Maximum KLD       : {:.6f}\n", r.kl->percentile(1.0));
      fmt::print("Same top token    : {:.3f} +/- {:.3f} %\n", 100 * r.kl->top1_agreement(),
                 100 * r.kl->top1_stderr());
    }
    return 0;
  };
}

}  // namespace luzao::cli
