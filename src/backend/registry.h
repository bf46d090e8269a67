// Finding and opening devices by name: "cpu", "reference", "opencl:N", "cuda:N", "<plugin>:N".
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"

namespace luzao {

struct DeviceOptions {
  int threads = 0;  // cpu backend worker threads; 0 = hardware concurrency
};

// Opens the device named by `spec` ("cpu", "opencl:1", "example:0"; "name" alone means index 0).
// Plugins are looked up on plugin_search_path() (backend/plugin/plugin_loader.h). Throws
// Error(kInvalidArgument) naming the spec if unknown, or the backend's error if it cannot open.
std::unique_ptr<Device> open_device(std::string_view spec, const DeviceOptions& options = {});
// Every device this build can open here, in a stable order (cpu, reference, opencl, cuda,
// plugins). Devices that fail to open are left out; list_devices() says why.
std::vector<std::unique_ptr<Device>> enumerate_devices(const DeviceOptions& options = {});

// One row of the device catalogue: an open device, or why a backend or plugin offers none.
struct DeviceListing {
  std::string spec;                // "opencl:0", or the backend / plugin path when `device` is null
  std::unique_ptr<Device> device;  // null when `error` says why
  std::string error;
};
// Every device and every failure to offer one (missing driver, broken plugin), in the order of
// enumerate_devices(). Backends with no device and no error (no GPU here) contribute no row.
std::vector<DeviceListing> list_devices(const DeviceOptions& options = {});

}  // namespace luzao
