// The CUDA backend: NVIDIA GPUs through the CUDA runtime, named "cuda:N".
#pragma once

#include <memory>

#include "backend/backend.h"

namespace luzao {

// Number of CUDA devices (0 when there is no driver or no GPU).
int cuda_device_count();
// Opens GPU `index`. Throws Error(kInvalidArgument) for an index out of range.
std::unique_ptr<Device> make_cuda_device(int index);

}  // namespace luzao
