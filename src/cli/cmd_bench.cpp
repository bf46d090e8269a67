// `luzao bench`: prompt processing (pp) and generation (tg) speed in tokens/s, mean ± stddev over
// repetitions, measured as llama-bench does (random tokens, empty context for every test).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "core/error.h"
#include "runtime/engine.h"

namespace luzao::cli {
namespace {

struct BenchArgs {
  std::string model;
  std::string device = "cpu";
  std::string split;
  std::vector<int> prompt = {512};
  std::vector<int> gen = {128};
  std::vector<int> threads = {0};
  std::vector<int> parallel = {1};
  int batch = 512;
  int repetitions = 5;
  std::string cache_type = "f16";
  bool json = false;
  bool no_warmup = false;
};

struct TestResult {
  std::string name;  // "pp512", "tg128", "tg128x8" (8 sequences)
  int n_prompt = 0;
  int n_gen = 0;
  int n_parallel = 1;
  int threads = 0;
  std::vector<double> samples;  // tokens/s per repetition
  double mean() const {
    double s = 0;
    for (double v : samples) s += v;
    return samples.empty() ? 0 : s / static_cast<double>(samples.size());
  }
  double stddev() const {
    if (samples.size() < 2) return 0;
    const double m = mean();
    double s = 0;
    for (double v : samples) s += (v - m) * (v - m);
    return std::sqrt(s / static_cast<double>(samples.size() - 1));
  }
};

std::vector<int32_t> random_tokens(int n, int32_t n_vocab, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> dist(0, n_vocab - 1);
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int32_t& t : out) t = dist(rng);
  return out;
}

// Seconds for one test on a fresh sequence: the prompt in one feed (chunked by the engine's
// batch size), or n_gen single-token steps.
double run_once(Engine& engine, int n_prompt, int n_gen, std::mt19937& rng) {
  using Clock = std::chrono::steady_clock;
  const int32_t n_vocab = engine.hparams().n_vocab;
  Session session(engine);
  if (n_prompt > 0) {
    const std::vector<int32_t> tokens = random_tokens(n_prompt, n_vocab, rng);
    const auto t0 = Clock::now();
    session.feed(tokens);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }
  const std::vector<int32_t> tokens = random_tokens(n_gen, n_vocab, rng);
  const auto t0 = Clock::now();
  for (int32_t t : tokens) session.feed(std::span(&t, 1));
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Seconds for n_gen steps of n_parallel sequences decoded together, one token each per step (the
// decode of a continuously batching server; llama-batched-bench's -npl without a shared prompt).
double run_parallel_once(Engine& engine, int n_gen, int n_parallel, std::mt19937& rng) {
  using Clock = std::chrono::steady_clock;
  const int32_t n_vocab = engine.hparams().n_vocab;
  std::vector<int32_t> seqs;
  for (int i = 0; i < n_parallel; ++i) seqs.push_back(engine.kv_cache().open_sequence());
  const std::vector<int32_t> tokens = random_tokens(n_gen * n_parallel, n_vocab, rng);
  std::vector<SequenceChunk> chunks(static_cast<size_t>(n_parallel));
  std::vector<float> logits(static_cast<size_t>(n_parallel) * static_cast<size_t>(n_vocab));
  const auto t0 = Clock::now();
  for (int step = 0; step < n_gen; ++step) {
    for (int i = 0; i < n_parallel; ++i) {
      const size_t k =
          static_cast<size_t>(step) * static_cast<size_t>(n_parallel) + static_cast<size_t>(i);
      chunks[static_cast<size_t>(i)] = {seqs[static_cast<size_t>(i)], step,
                                        std::span(tokens).subspan(k, 1), true, false};
    }
    engine.decode(chunks, logits);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  for (int32_t seq : seqs) engine.kv_cache().close_sequence(seq);
  return seconds;
}

uint64_t model_bytes(const GgufFile& f) {
  uint64_t n = 0;
  for (const GgufTensorInfo& t : f.tensors()) n += t.bytes;
  return n;
}

uint64_t model_params(const GgufFile& f) {
  uint64_t n = 0;
  for (const GgufTensorInfo& t : f.tensors()) n += t.elements();
  return n;
}

std::string human_bytes(uint64_t bytes) {
  const double mib = static_cast<double>(bytes) / (1024.0 * 1024.0);
  return mib >= 1024 ? fmt::format("{:.2f} GiB", mib / 1024) : fmt::format("{:.2f} MiB", mib);
}

int run_bench(const BenchArgs& a) {
  const int ctx_needed = std::max(*std::max_element(a.prompt.begin(), a.prompt.end()),
                                  *std::max_element(a.gen.begin(), a.gen.end()));
  const int max_parallel = *std::max_element(a.parallel.begin(), a.parallel.end());
  std::vector<TestResult> results;
  nlohmann::json rows = nlohmann::json::array();
  std::string model_name;
  uint64_t bytes = 0, params = 0;
  std::string device_desc;
  bool header_printed = false;
  for (int threads : a.threads) {
    EngineOptions options;
    options.model_path = a.model;
    options.device = a.device;
    options.split = a.split;
    options.threads = threads;
    options.ctx_size = std::max(ctx_needed, 16);
    options.max_batch_tokens = std::max(a.batch, max_parallel);
    options.max_sequences = max_parallel;
    options.kv_dtype = *dtype_from_name(a.cache_type);
    options.logger = Logger(
        [](LogLevel, std::string_view line) { fmt::print(stderr, "{}\n", line); }, LogLevel::kWarn);
    Engine engine(options);
    const std::string backend = a.split.empty() ? a.device : engine.placement_text();
    bytes = model_bytes(engine.file());
    params = model_params(engine.file());
    model_name = std::filesystem::path(a.model).filename().string();
    std::mt19937 rng(42);
    const int shown_threads =
        threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());

    std::vector<TestResult> tests;
    for (int p : a.prompt) {
      if (p > 0) tests.push_back({fmt::format("pp{}", p), p, 0, 1, shown_threads, {}});
    }
    for (int g : a.gen) {
      if (g <= 0) continue;
      for (int n : a.parallel) {
        const std::string name = n == 1 ? fmt::format("tg{}", g) : fmt::format("tg{}x{}", g, n);
        tests.push_back({name, 0, g, n, shown_threads, {}});
      }
    }
    if (!a.json && !header_printed) {
      fmt::print("| {:<32} | {:>10} | {:>8} | {:>7} | {:>7} | {:>8} | {:>16} |\n", "model", "size",
                 "params", "backend", "threads", "test", "t/s");
      fmt::print("| {:-<32} | {:->9}: | {:->7}: | {:-<7} | {:->6}: | {:->7}: | {:->15}: |\n", "",
                 "", "", "", "", "", "");
      header_printed = true;
    }
    for (TestResult& test : tests) {
      // One short warm-up run (as llama-bench): pages in the weights and sizes the scratch.
      if (!a.no_warmup)
        run_once(engine, test.n_prompt > 0 ? test.n_prompt : 0, test.n_prompt > 0 ? 0 : 1, rng);
      for (int r = 0; r < a.repetitions; ++r) {
        const double s = test.n_parallel > 1
                             ? run_parallel_once(engine, test.n_gen, test.n_parallel, rng)
                             : run_once(engine, test.n_prompt, test.n_gen, rng);
        const int tokens = test.n_prompt > 0 ? test.n_prompt : test.n_gen * test.n_parallel;
        test.samples.push_back(static_cast<double>(tokens) / s);
      }
      if (a.json) {
        rows.push_back({{"model", model_name},
                        {"model_size", bytes},
                        {"model_n_params", params},
                        {"backend", backend},
                        {"n_threads", test.threads},
                        {"test", test.name},
                        {"n_prompt", test.n_prompt},
                        {"n_gen", test.n_gen},
                        {"n_parallel", test.n_parallel},
                        {"avg_ts", test.mean()},
                        {"stddev_ts", test.stddev()},
                        {"samples_ts", test.samples}});
      } else {
        fmt::print(
            "| {:<32} | {:>10} | {:>7.2f}M | {:<7} | {:>7} | {:>8} | {:>8.2f} ± {:>5.2f} |\n",
            model_name, human_bytes(bytes), static_cast<double>(params) / 1e6, backend,
            test.threads, test.name, test.mean(), test.stddev());
        std::fflush(stdout);
      }
    }
  }
  if (a.json) fmt::print("{}\n", rows.dump(2));
  return 0;
}

}  // namespace

CommandMain setup_bench(CLI::App& cmd) {
  auto a = std::make_shared<BenchArgs>();
  cmd.add_option("-m,--model", a->model, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd.add_option("-p,--n-prompt", a->prompt, "Prompt lengths to test (comma-separated; 0: none)")
      ->delimiter(',')
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("-n,--n-gen", a->gen, "Generation lengths to test (comma-separated; 0: none)")
      ->delimiter(',')
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("-t,--threads", a->threads,
                 "Thread counts to test (comma-separated; 0: all cores)")
      ->delimiter(',')
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--parallel", a->parallel,
                 "Sequences generating together in the tg tests, comma-separated (aggregate "
                 "tokens/s of all of them; as llama-batched-bench's -npl)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("-b,--batch-size", a->batch, "Tokens per forward pass during prefill")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("-r,--repetitions", a->repetitions, "Repetitions of each test")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_device_options(cmd, a->device, a->split);
  cmd.add_option("--cache-type", a->cache_type, "KV cache type: f16, f32 or q8_0")
      ->check(CLI::IsMember({"f16", "f32", "q8_0"}))
      ->capture_default_str();
  cmd.add_flag("--json", a->json, "Print the results as a JSON array (llama-bench's fields)");
  cmd.add_flag("--no-warmup", a->no_warmup, "Skip the warm-up run before each test");
  return [a] { return run_bench(*a); };
}

}  // namespace luzao::cli
