// The in-tree device table: "cpu" and "reference". Plugins and GPU backends add rows later.
#include "backend/registry.h"

#include <array>

#include "backend/cpu/cpu_backend.h"
#include "backend/reference/reference_backend.h"
#include "core/error.h"

namespace luzao {
namespace {

struct DeviceEntry {
  std::string_view name;
  std::unique_ptr<Device> (*open)(const DeviceOptions&);
};

constexpr std::array<DeviceEntry, 2> kDevices{{
    {"cpu", [](const DeviceOptions& o) { return make_cpu_device(o.threads); }},
    {"reference", [](const DeviceOptions&) { return make_reference_device(); }},
}};

}  // namespace

std::unique_ptr<Device> open_device(std::string_view spec, const DeviceOptions& options) {
  if (options.threads < 0) {
    fail(ErrorKind::kInvalidArgument, "device '{}': threads must be >= 0, got {}", spec,
         options.threads);
  }
  for (const DeviceEntry& e : kDevices) {
    if (spec == e.name) return e.open(options);
  }
  std::string known;
  for (const DeviceEntry& e : kDevices)
    known += fmt::format("{}{}", known.empty() ? "" : ", ", e.name);
  fail(ErrorKind::kInvalidArgument, "unknown device '{}' (this build knows: {})", spec, known);
}

std::vector<std::unique_ptr<Device>> enumerate_devices(const DeviceOptions& options) {
  std::vector<std::unique_ptr<Device>> out;
  for (const DeviceEntry& e : kDevices) out.push_back(e.open(options));
  return out;
}

}  // namespace luzao
