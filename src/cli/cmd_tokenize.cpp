// Placeholder for `luzao tokenize`; replaced by the real implementation.
#include "cli/commands.h"
#include "core/error.h"

namespace luzao::cli {

CommandMain setup_tokenize(CLI::App& command) {
  (void)command;
  return [] () -> int { fail(ErrorKind::kUnsupported, "not built yet"); };
}

}  // namespace luzao::cli
