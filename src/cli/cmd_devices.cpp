// `luzao devices`: every device this build can open here (cpu, reference, OpenCL, CUDA, plugins)
// with its backend, vendor and memory, and whether it passes the quick conformance suite against
// the reference backend. Broken plugins and drivers are listed with the reason.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "backend/conformance/conformance.h"
#include "backend/registry.h"
#include "cli/commands.h"

namespace luzao::cli {
namespace {

struct DevicesOptions {
  bool no_check = false;
  bool verbose = false;
  int threads = 0;
};

std::string memory_label(uint64_t bytes) {
  if (bytes == 0) return "?";
  const double gib = static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0);
  return gib >= 1.0 ? fmt::format("{:.1f} GiB", gib)
                    : fmt::format("{:.0f} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

int run_devices(const DevicesOptions& o) {
  std::vector<DeviceListing> rows = list_devices(DeviceOptions{.threads = o.threads});
  bool all_pass = true;
  fmt::print("{:<12} {:<10} {:<20} {:>10}  {:<22} {}\n", "DEVICE", "BACKEND", "VENDOR", "MEMORY",
             "CONFORMANCE", "DESCRIPTION");
  for (DeviceListing& row : rows) {
    if (!row.device) {
      all_pass = false;
      fmt::print("{:<12} error: {}\n", row.spec, row.error);
      continue;
    }
    const DeviceInfo& info = row.device->info();
    std::string verdict = "not checked";
    std::vector<conformance::CaseResult> failed;
    if (info.backend == "reference") {
      verdict = "(the reference)";
    } else if (!o.no_check) {
      const auto start = std::chrono::steady_clock::now();
      const auto cases = conformance::run_all(*row.device, conformance::Depth::kQuick);
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      for (const auto& c : cases) {
        if (!c.passed()) failed.push_back(c);
      }
      verdict = fmt::format("{} {}/{} ({:.1f}s)", failed.empty() ? "pass" : "FAIL",
                            cases.size() - failed.size(), cases.size(), secs);
      all_pass = all_pass && failed.empty();
    }
    std::string vendor = info.vendor.substr(0, 20);
    fmt::print("{:<12} {:<10} {:<20} {:>10}  {:<22} {}\n", info.name, info.backend, vendor,
               memory_label(info.memory_bytes), verdict, info.description);
    const size_t shown = o.verbose ? failed.size() : std::min<size_t>(failed.size(), 3);
    for (size_t i = 0; i < shown; ++i) {
      fmt::print("{:<12}   {}: {}\n", "", failed[i].name(), failed[i].failure);
    }
    if (shown < failed.size()) {
      fmt::print("{:<12}   ... {} more (--verbose)\n", "", failed.size() - shown);
    }
  }
  std::fflush(stdout);
  return all_pass ? 0 : 1;
}

}  // namespace

CommandMain setup_devices(CLI::App& command) {
  auto o = std::make_shared<DevicesOptions>();
  command.description(
      "List the devices this build can use here, each checked against the reference backend by "
      "a quick conformance run. Plugins are found on $LUZAO_PLUGIN_PATH and in lib/luzao/plugins. "
      "Exit status 1 when a device fails its check or a plugin cannot be loaded.");
  command.add_flag("--no-check", o->no_check, "List only; skip the conformance check");
  command.add_flag("-v,--verbose", o->verbose, "Show every failing op x dtype");
  command.add_option("-t,--threads", o->threads, "cpu backend worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  return [o] { return run_devices(*o); };
}

}  // namespace luzao::cli
