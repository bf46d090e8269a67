// `--split`: the devices a model's layers are divided over, parsed from "cpu,opencl:0" or, with
// ratios, "cpu:0:3,opencl:0:1" (device NAME, NAME:INDEX or NAME:INDEX:RATIO, comma-separated).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace luzao {

struct SplitDeviceSpec {
  std::string device;  // as open_device() takes it: "cpu", "opencl:0", "example:1"
  double ratio = 1.0;  // share of the layers relative to the other devices'; > 0
};

// Parses a split spec. Every device gets ratio 1 (equal layer counts) unless every entry gives
// one; a ratio needs the NAME:INDEX:RATIO form, so "cpu:3" is device 3 of the cpu backend, not a
// ratio. The same device may appear more than once (each entry opens its own instance). Throws
// Error(kInvalidArgument) naming the spec and the entry at fault.
std::vector<SplitDeviceSpec> parse_split(std::string_view spec);

// The message parse_split() would throw for `spec` without its leading "--split " (CLI11 names
// the option), or "" when it parses: a CLI validator.
std::string split_syntax_error(std::string_view spec);

}  // namespace luzao
