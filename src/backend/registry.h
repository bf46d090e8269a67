// Finding and opening devices by name: "cpu", "reference", later "opencl:0", "<plugin>:N".
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "backend/backend.h"

namespace luzao {

struct DeviceOptions {
  int threads = 0;  // cpu backend worker threads; 0 = hardware concurrency
};

// Opens the device named by `spec`. Throws Error(kInvalidArgument) naming the spec if unknown.
std::unique_ptr<Device> open_device(std::string_view spec, const DeviceOptions& options = {});
// Every device this build can open here, in a stable order.
std::vector<std::unique_ptr<Device>> enumerate_devices(const DeviceOptions& options = {});

}  // namespace luzao
