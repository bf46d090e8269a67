// Placeholder for `luzao inspect`; replaced by the real implementation.
#include "cli/commands.h"
#include "core/error.h"

namespace luzao::cli {

CommandMain setup_inspect(CLI::App& command) {
  (void)command;
  return [] () -> int { fail(ErrorKind::kUnsupported, "not built yet"); };
}

}  // namespace luzao::cli
