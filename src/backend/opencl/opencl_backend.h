// The OpenCL backend: devices of every OpenCL platform installed here (GPUs, or the CPU through
// PoCL), in platform order, named "opencl:N".
#pragma once

#include <memory>

#include "backend/backend.h"

namespace luzao {

// Number of OpenCL devices (0 when no ICD loader or platform is installed).
int opencl_device_count();
// Opens device `index`, compiling the kernels for it (cached by most drivers after the first
// run). Throws Error(kInvalidArgument) for an index out of range, kUnsupported when the device
// cannot build the kernels.
std::unique_ptr<Device> make_opencl_device(int index);

}  // namespace luzao
