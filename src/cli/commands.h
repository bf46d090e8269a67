// The subcommands of `luzao`. Each registers its options on a CLI11 subcommand and returns the
// function that runs it; that function returns the process exit code and may throw luzao::Error.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace luzao::cli {

using CommandMain = std::function<int()>;

CommandMain setup_inspect(CLI::App& command);
CommandMain setup_tokenize(CLI::App& command);
CommandMain setup_pull(CLI::App& command);
CommandMain setup_run(CLI::App& command);
CommandMain setup_chat(CLI::App& command);
CommandMain setup_devices(CLI::App& command);
CommandMain setup_bench(CLI::App& command);
CommandMain setup_perplexity(CLI::App& command);
CommandMain setup_quantize(CLI::App& command);
CommandMain setup_imatrix(CLI::App& command);
CommandMain setup_convert(CLI::App& command);
CommandMain setup_serve(CLI::App& command);
CommandMain setup_router(CLI::App& command);
CommandMain setup_simulate(CLI::App& command);
CommandMain setup_pool(CLI::App& command);

}  // namespace luzao::cli
