// Logging through an injected sink: library code never writes to stdout/stderr by itself.
#pragma once

#include <functional>
#include <string_view>

#include <fmt/format.h>

namespace luzao {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// A sink receives whole lines (without newline). Default-constructed Logger drops everything.
class Logger {
 public:
  using Sink = std::function<void(LogLevel, std::string_view)>;
  Logger() = default;
  explicit Logger(Sink sink, LogLevel min_level = LogLevel::kInfo)
      : sink_(std::move(sink)), min_level_(min_level) {}

  template <typename... Args>
  void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) const {
    if (sink_ && level >= min_level_)
      sink_(level, fmt::format(format, std::forward<Args>(args)...));
  }
  template <typename... Args>
  void info(fmt::format_string<Args...> format, Args&&... args) const {
    log(LogLevel::kInfo, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void debug(fmt::format_string<Args...> format, Args&&... args) const {
    log(LogLevel::kDebug, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void warn(fmt::format_string<Args...> format, Args&&... args) const {
    log(LogLevel::kWarn, format, std::forward<Args>(args)...);
  }

 private:
  Sink sink_;
  LogLevel min_level_ = LogLevel::kInfo;
};

}  // namespace luzao
