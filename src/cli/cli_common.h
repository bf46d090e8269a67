// Pieces several subcommands share: the --device/--split pair, and the serving loop of
// `luzao serve` and `luzao router` (SIGINT/SIGTERM stop the server from a waiting thread).
#pragma once

#include <csignal>
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "core/log.h"

namespace luzao::cli {

// Adds --device (into `device`) and --split (into `split`, validated, excluding --device);
// returns the --split option for further exclusions.
CLI::Option* add_device_options(CLI::App& cmd, std::string& device, std::string& split);

// Ignores SIGPIPE (a write to a closed socket must not kill a server) and blocks SIGINT and
// SIGTERM in this thread, so that every thread started afterwards inherits the block and the
// signals reach only serve_until_signal's waiter. Call before creating the server.
sigset_t block_stop_signals();

// Runs `listen` on this thread; a waiter thread calls `stop` when SIGINT or SIGTERM arrives
// (logging it) and is woken and joined once `listen` returns. Rethrows what `listen` threw.
void serve_until_signal(const sigset_t& signals, const Logger& logger,
                        const std::function<void()>& stop, const std::function<void()>& listen);

}  // namespace luzao::cli
