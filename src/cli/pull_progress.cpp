// Progress bar and byte formatting for `luzao pull`.
#include "cli/pull_progress.h"

#include <algorithm>

#include <fmt/format.h>

namespace luzao::cli {

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  if (unit == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

std::string format_progress(std::string_view label, uint64_t done, uint64_t total,
                            double bytes_per_second, int bar_width) {
  std::string line(label);
  if (total > 0) {
    const double fraction = std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
    if (bar_width > 0) {
      const int filled = static_cast<int>(fraction * bar_width);
      line += fmt::format(" [{}{}]", std::string(static_cast<size_t>(filled), '#'),
                          std::string(static_cast<size_t>(bar_width - filled), '.'));
    }
    line +=
        fmt::format(" {} / {} {:5.1f}%", format_bytes(done), format_bytes(total), fraction * 100.0);
  } else {
    line += fmt::format(" {}", format_bytes(done));
  }
  if (bytes_per_second > 0.0) {
    line += fmt::format(" {}/s", format_bytes(static_cast<uint64_t>(bytes_per_second)));
  }
  return line;
}

ProgressBar::ProgressBar(std::FILE* out, bool interactive) : out_(out), interactive_(interactive) {}

void ProgressBar::operator()(std::string_view label, uint64_t done, uint64_t total, bool finished) {
  const Clock::time_point now = Clock::now();
  if (label != label_) {
    label_ = std::string(label);
    start_ = now;
    last_draw_ = now;
    start_done_ = done;
    last_width_ = 0;
  }
  const auto since_draw = now - last_draw_;
  if (!finished && since_draw < (interactive_ ? std::chrono::milliseconds(100)
                                              : std::chrono::milliseconds(10000))) {
    return;
  }
  last_draw_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double speed =
      seconds > 0.2 ? static_cast<double>(done - std::min(done, start_done_)) / seconds : 0.0;
  const std::string line = format_progress(label, done, total, speed, interactive_ ? 30 : 0);
  if (interactive_) {
    // Pad over the previous, possibly longer, line; newline only when the task ends.
    const size_t width = line.size();
    fmt::print(out_, "\r{}{}", line,
               std::string(last_width_ > width ? last_width_ - width : 0, ' '));
    last_width_ = width;
    if (finished) fmt::print(out_, "\n");
  } else {
    fmt::print(out_, "{}\n", line);
  }
  std::fflush(out_);
  if (finished) label_.clear();
}

}  // namespace luzao::cli
