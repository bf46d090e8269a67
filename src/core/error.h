// luzao::Error, the one exception type for recoverable problems, and the invariant checks.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace luzao {

// What went wrong, so callers (CLI exit codes, HTTP status) can react without parsing text.
enum class ErrorKind {
  kInvalidArgument,  // bad option, bad request, bad value from a caller
  kBadFile,          // a file is corrupt, truncated or not what it claims to be
  kUnsupported,      // valid input that this build cannot handle (architecture, dtype, op)
  kIo,               // the OS or the network refused (open, read, download)
  kOutOfMemory,      // an allocation or a capacity limit (context, KV pages)
  kInternal,         // a broken invariant: a bug in luzao
};

std::string_view error_kind_name(ErrorKind kind) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// Throws Error(kind, fmt::format(...)). The message must name the file, key, tensor or field.
template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(kind, fmt::format(format, std::forward<Args>(args)...));
}

[[noreturn]] void fail_check(const char* expr, const char* file, int line);

}  // namespace luzao

// Guards invariants (programming errors). Throws kInternal; library code never aborts.
#define LUZAO_CHECK(cond)                             \
  do {                                                \
    if (!(cond)) [[unlikely]]                         \
      ::luzao::fail_check(#cond, __FILE__, __LINE__); \
  } while (0)

#ifdef NDEBUG
#define LUZAO_DCHECK(cond) \
  do {                     \
  } while (0)
#else
#define LUZAO_DCHECK(cond) LUZAO_CHECK(cond)
#endif
