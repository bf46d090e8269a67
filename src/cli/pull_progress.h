// Progress reporting for `luzao pull`: a bar redrawn in place on a terminal, occasional plain lines
// otherwise. The pull code only sees ProgressFn, so tests can pass nothing or a recorder.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace luzao::cli {

// Called with the task's label, bytes done and the total (0 when unknown); `finished` once at the
// end of each task. May be empty (no reporting).
using ProgressFn =
    std::function<void(std::string_view label, uint64_t done, uint64_t total, bool finished)>;

// "1.5 KiB", "97.3 MiB", "12 B".
std::string format_bytes(uint64_t bytes);
// One status line: label, a bar of `bar_width` cells when the total is known, bytes, percentage
// and speed (omitted when bytes_per_second <= 0).
std::string format_progress(std::string_view label, uint64_t done, uint64_t total,
                            double bytes_per_second, int bar_width);

// Writes to `out` (not owned). Interactive: redraws one line with '\r' at most 10 times a second.
// Otherwise a line every 10 seconds and one at the end of each task. Not thread-safe.
class ProgressBar {
 public:
  ProgressBar(std::FILE* out, bool interactive);
  void operator()(std::string_view label, uint64_t done, uint64_t total, bool finished);

 private:
  using Clock = std::chrono::steady_clock;
  std::FILE* out_;
  bool interactive_;
  std::string label_;
  Clock::time_point start_{};
  Clock::time_point last_draw_{};
  uint64_t start_done_ = 0;  // bytes already there when the task began (resumed downloads)
  size_t last_width_ = 0;
};

}  // namespace luzao::cli
