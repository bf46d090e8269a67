// Error helpers.
#include "core/error.h"

namespace luzao {

std::string_view error_kind_name(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::kInvalidArgument:
      return "invalid argument";
    case ErrorKind::kBadFile:
      return "bad file";
    case ErrorKind::kUnsupported:
      return "unsupported";
    case ErrorKind::kIo:
      return "i/o error";
    case ErrorKind::kOutOfMemory:
      return "out of memory";
    case ErrorKind::kInternal:
      return "internal error";
  }
  return "error";
}

void fail_check(const char* expr, const char* file, int line) {
  throw Error(ErrorKind::kInternal,
              fmt::format("internal check failed: {} ({}:{})", expr, file, line));
}

}  // namespace luzao
