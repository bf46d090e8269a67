// The OpenCL kernel sources (kernels/*.cl), embedded into the binary at build time by
// embed_kernels.cmake.
#pragma once

#include <cstddef>

namespace luzao::opencl {

struct KernelSource {
  const char* name;  // file name, e.g. "matmul.cl"
  const char* text;
};

extern const KernelSource kKernelSources[];
extern const size_t kKernelSourceCount;

}  // namespace luzao::opencl
