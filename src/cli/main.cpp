// Entry point of the `luzao` command: dispatches to one subcommand, turns errors into one line.
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/error.h"

namespace {

struct Entry {
  const char* name;
  const char* help;
  luzao::cli::CommandMain (*setup)(CLI::App&);
};

constexpr Entry kCommands[] = {
    {"run", "Generate a continuation of a prompt", luzao::cli::setup_run},
    {"chat", "Chat with a model interactively", luzao::cli::setup_chat},
    {"bench", "Measure prompt and generation speed (tokens/s), as llama-bench",
     luzao::cli::setup_bench},
    {"serve", "Serve the OpenAI-compatible API and a web chat page", luzao::cli::setup_serve},
    {"router", "Route OpenAI API requests across several `luzao serve` processes, with failover",
     luzao::cli::setup_router},
    {"devices", "List devices (cpu, OpenCL, CUDA, plugins) with a conformance check",
     luzao::cli::setup_devices},
    {"pool", "Plan a device pool's placement, or show a running pool (plan, status)",
     luzao::cli::setup_pool},
    {"simulate", "Simulate a large heterogeneous pool: cost, latency, a vendor withdrawn",
     luzao::cli::setup_simulate},
    {"inspect", "Print a GGUF file's metadata and tensor table", luzao::cli::setup_inspect},
    {"tokenize", "Print the token ids of a text as a JSON array", luzao::cli::setup_tokenize},
    {"pull", "Download a model (catalogue name, URL or path) into the cache",
     luzao::cli::setup_pull},
    {"perplexity", "Measure perplexity (and KL-divergence against a base) on a text file",
     luzao::cli::setup_perplexity},
    {"quantize", "Quantize a GGUF model (Q8_0 ... Q2_K, Q4_K_M, with an optional imatrix)",
     luzao::cli::setup_quantize},
    {"imatrix", "Collect activation statistics for importance-weighted quantization",
     luzao::cli::setup_imatrix},
    {"convert", "Convert a Hugging Face model directory (safetensors) to GGUF",
     luzao::cli::setup_convert},
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"luzao: a vendor-neutral LLM inference engine", "luzao"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, luzao::cli::CommandMain>> commands;
  for (const Entry& entry : kCommands) {
    CLI::App* sub = app.add_subcommand(entry.name, entry.help);
    commands.emplace_back(sub, entry.setup(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Usage errors: the message and usage on stderr, exit code 2 (as getopt-style tools do).
    fmt::print(stderr, "luzao: {}\n", e.what());
    const CLI::App* failed = &app;
    for (const auto& [sub, main] : commands) {
      if (sub->parsed()) failed = sub;
    }
    fmt::print(stderr, "{}", failed->help());
    return 2;
  }
  for (const auto& [sub, main] : commands) {
    if (!sub->parsed()) continue;
    try {
      return main();
    } catch (const luzao::Error& e) {
      fmt::print(stderr, "luzao {}: error: {}\n", sub->get_name(), e.what());
      return 1;
    } catch (const std::exception& e) {
      fmt::print(stderr, "luzao {}: error: {}\n", sub->get_name(), e.what());
      return 1;
    }
  }
  return 2;
}
