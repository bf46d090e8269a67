// Placeholder for `luzao run`; replaced by the real implementation.
#include "cli/commands.h"
#include "core/error.h"

namespace luzao::cli {

CommandMain setup_run(CLI::App& command) {
  (void)command;
  return [] () -> int { fail(ErrorKind::kUnsupported, "not built yet"); };
}
CommandMain setup_chat(CLI::App& command) {
  (void)command;
  return [] () -> int { fail(ErrorKind::kUnsupported, "not built yet"); };
}
}  // namespace luzao::cli
