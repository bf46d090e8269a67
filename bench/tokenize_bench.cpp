// Tokenizer throughput on one core: MB/s of text through tokenize() (and detokenize()) for the
// vocabularies in ../shared/tokenizers over the texts in ../shared/data (Chinese and English).
// Usage: tokenize_bench [--benchmark_filter=qwen2] [other Google Benchmark flags]
// Absent files are skipped with a message; the goal is >= 5 MB/s of Chinese with qwen2.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;

const fs::path kShared = fs::path(LUZAO_SOURCE_DIR) / ".." / "shared";

constexpr const char* kVocabs[] = {"qwen2",     "qwen35",    "deepseek-llm",
                                   "llama-bpe", "llama-spm", "gpt-2"};
constexpr const char* kTexts[] = {"hongloumeng.txt", "tinyshakespeare.txt"};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One vocabulary and one text, loaded once and shared by the benchmarks that use them.
struct Case {
  std::unique_ptr<luzao::Tokenizer> tokenizer;
  std::string text;
  std::vector<int32_t> ids;
};

void bench_tokenize(benchmark::State& state, const Case* c) {
  size_t n_tokens = 0;
  for (auto _ : state) {
    std::vector<int32_t> ids = c->tokenizer->tokenize(c->text, false, false);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(c->text.size()));
  state.counters["tokens"] = static_cast<double>(n_tokens);
  state.counters["bytes/token"] =
      static_cast<double>(c->text.size()) / static_cast<double>(n_tokens);
}

void bench_detokenize(benchmark::State& state, const Case* c) {
  for (auto _ : state) {
    std::string text = c->tokenizer->detokenize(c->ids, false);
    benchmark::DoNotOptimize(text.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(c->text.size()));
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::vector<std::unique_ptr<Case>> cases;
  for (const char* text_name : kTexts) {
    const fs::path text_path = kShared / "data" / text_name;
    if (!fs::exists(text_path)) {
      std::fprintf(stderr, "skipping %s: not found\n", text_path.c_str());
      continue;
    }
    const std::string text = read_file(text_path);
    for (const char* vocab : kVocabs) {
      const fs::path vocab_path =
          kShared / "tokenizers" / ("ggml-vocab-" + std::string(vocab) + ".gguf");
      if (!fs::exists(vocab_path)) {
        std::fprintf(stderr, "skipping %s: not found\n", vocab_path.c_str());
        continue;
      }
      auto c = std::make_unique<Case>();
      try {
        const luzao::GgufFile file = luzao::GgufFile::open(vocab_path);
        c->tokenizer = luzao::Tokenizer::from_gguf(file);
      } catch (const luzao::Error& e) {
        std::fprintf(stderr, "skipping %s: %s\n", vocab, e.what());
        continue;
      }
      c->text = text;
      c->ids = c->tokenizer->tokenize(c->text, false, false);
      const std::string stem = fs::path(text_name).stem().string();
      benchmark::RegisterBenchmark(("tokenize/" + std::string(vocab) + "/" + stem).c_str(),
                                   bench_tokenize, c.get())
          ->Unit(benchmark::kMillisecond)
          ->MinTime(1.0);
      benchmark::RegisterBenchmark(("detokenize/" + std::string(vocab) + "/" + stem).c_str(),
                                   bench_detokenize, c.get())
          ->Unit(benchmark::kMillisecond)
          ->MinTime(0.5);
      cases.push_back(std::move(c));
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
