// Parsing `--split` device lists.
#include "runtime/split.h"

#include <charconv>
#include <cmath>

#include "core/error.h"

namespace luzao {
namespace {

std::vector<std::string_view> split_on(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t at = text.find(sep, start);
    out.push_back(text.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

std::vector<SplitDeviceSpec> parse_split(std::string_view spec) {
  if (spec.empty()) {
    fail(ErrorKind::kInvalidArgument, "--split '': expected devices such as cpu,opencl:0");
  }
  std::vector<SplitDeviceSpec> out;
  size_t with_ratio = 0;
  const std::vector<std::string_view> entries = split_on(spec, ',');
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string_view entry = entries[i];
    const std::vector<std::string_view> fields = split_on(entry, ':');
    auto bad = [&](std::string_view why) {
      fail(ErrorKind::kInvalidArgument, "--split '{}': device {} ('{}') {}", spec, i + 1, entry,
           why);
    };
    if (entry.empty()) bad("is empty");
    if (fields.size() > 3) {
      bad("has too many ':' fields (expected NAME, NAME:INDEX or NAME:INDEX:RATIO)");
    }
    if (fields[0].empty()) bad("has no device name");
    if (fields.size() >= 2 && !all_digits(fields[1])) {
      bad("has an index that is not a number (expected NAME:INDEX or NAME:INDEX:RATIO)");
    }
    SplitDeviceSpec d;
    d.device = fields.size() >= 2
                   ? std::string(entry.substr(0, fields[0].size() + 1 + fields[1].size()))
                   : std::string(entry);
    if (fields.size() == 3) {
      const std::string_view r = fields[2];
      double ratio = 0;
      const auto [end, ec] = std::from_chars(r.data(), r.data() + r.size(), ratio);
      if (r.empty() || ec != std::errc() || end != r.data() + r.size()) {
        bad("has a ratio that is not a number");
      }
      if (!(ratio > 0) || !std::isfinite(ratio)) bad("has a ratio that is not positive");
      d.ratio = ratio;
      ++with_ratio;
    }
    out.push_back(std::move(d));
  }
  if (with_ratio != 0 && with_ratio != out.size()) {
    fail(ErrorKind::kInvalidArgument,
         "--split '{}': give a ratio for every device (NAME:INDEX:RATIO) or for none", spec);
  }
  return out;
}

std::string split_syntax_error(std::string_view spec) {
  try {
    parse_split(spec);
  } catch (const Error& e) {
    std::string message = e.what();
    constexpr std::string_view kPrefix = "--split ";  // CLI11 names the option itself
    if (message.starts_with(kPrefix)) message.erase(0, kPrefix.size());
    return message;
  }
  return {};
}

}  // namespace luzao
