// OpenCL errors, device discovery and program build.
#include "backend/opencl/cl_runtime.h"

#include <algorithm>

#include "backend/opencl/opencl_kernels.h"
#include "core/error.h"

namespace luzao::opencl {
namespace {

std::string_view error_name(cl_int err) {
  switch (err) {
    case CL_DEVICE_NOT_FOUND:
      return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE:
      return "CL_DEVICE_NOT_AVAILABLE";
    case CL_COMPILER_NOT_AVAILABLE:
      return "CL_COMPILER_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
      return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES:
      return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY:
      return "CL_OUT_OF_HOST_MEMORY";
    case CL_BUILD_PROGRAM_FAILURE:
      return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_VALUE:
      return "CL_INVALID_VALUE";
    case CL_INVALID_MEM_OBJECT:
      return "CL_INVALID_MEM_OBJECT";
    case CL_INVALID_KERNEL_ARGS:
      return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_ARG_SIZE:
      return "CL_INVALID_ARG_SIZE";
    case CL_INVALID_ARG_INDEX:
      return "CL_INVALID_ARG_INDEX";
    case CL_INVALID_WORK_GROUP_SIZE:
      return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_GLOBAL_WORK_SIZE:
      return "CL_INVALID_GLOBAL_WORK_SIZE";
    case CL_INVALID_BUFFER_SIZE:
      return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_KERNEL_NAME:
      return "CL_INVALID_KERNEL_NAME";
    case CL_MEM_COPY_OVERLAP:
      return "CL_MEM_COPY_OVERLAP";
    default:
      return "";
  }
}

}  // namespace

void cl_fail(cl_int err, std::string_view what) {
  const bool memory = err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_HOST_MEMORY ||
                      err == CL_INVALID_BUFFER_SIZE;
  const std::string_view name = error_name(err);
  fail(memory ? ErrorKind::kOutOfMemory : ErrorKind::kIo, "opencl: {} failed: {} ({})", what,
       name.empty() ? "OpenCL error" : name, err);
}

std::vector<cl_device_id> all_devices() {
  cl_uint n_platforms = 0;
  cl_int err = clGetPlatformIDs(0, nullptr, &n_platforms);
  if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR: no ICD installed */ || n_platforms == 0) return {};
  cl_check(err, "clGetPlatformIDs");
  std::vector<cl_platform_id> platforms(n_platforms);
  cl_check(clGetPlatformIDs(n_platforms, platforms.data(), nullptr), "clGetPlatformIDs");
  std::vector<cl_device_id> out;
  for (cl_platform_id p : platforms) {
    cl_uint n = 0;
    err = clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &n);
    if (err == CL_DEVICE_NOT_FOUND || n == 0) continue;
    cl_check(err, "clGetDeviceIDs");
    std::vector<cl_device_id> devices(n);
    cl_check(clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, n, devices.data(), nullptr), "clGetDeviceIDs");
    out.insert(out.end(), devices.begin(), devices.end());
  }
  return out;
}

std::string device_string(cl_device_id device, cl_device_info param) {
  size_t size = 0;
  cl_check(clGetDeviceInfo(device, param, 0, nullptr, &size), "clGetDeviceInfo");
  std::string s(size, '\0');
  cl_check(clGetDeviceInfo(device, param, size, s.data(), nullptr), "clGetDeviceInfo");
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
  return s;
}

Runtime::Runtime(cl_device_id device) : device_(device) {
  name_ = device_string(device, CL_DEVICE_NAME);
  vendor_ = device_string(device, CL_DEVICE_VENDOR);
  version_ = device_string(device, CL_DEVICE_VERSION);
  cl_ulong v = 0;
  cl_check(clGetDeviceInfo(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof v, &v, nullptr),
           "clGetDeviceInfo");
  max_alloc_ = v;
  cl_check(clGetDeviceInfo(device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof v, &v, nullptr),
           "clGetDeviceInfo");
  global_mem_ = v;
  cl_device_fp_config fp = 0;
  cl_check(clGetDeviceInfo(device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, nullptr),
           "clGetDeviceInfo");

  cl_int err = CL_SUCCESS;
  context_ = clCreateContext(nullptr, 1, &device_, nullptr, nullptr, &err);
  cl_check(err, "clCreateContext");
  // Ends the half-built object cleanly when a later step throws.
  struct Cleanup {
    Runtime* self;
    bool armed = true;
    ~Cleanup() {
      if (!armed) return;
      if (self->transfer_ != nullptr) clReleaseCommandQueue(self->transfer_);
      if (self->program_ != nullptr) clReleaseProgram(self->program_);
      clReleaseContext(self->context_);
    }
  } cleanup{this};
  transfer_ = clCreateCommandQueue(context_, device_, 0, &err);
  cl_check(err, "clCreateCommandQueue");

  // common.cl first: the others use its helpers.
  std::vector<const char*> texts;
  for (size_t i = 0; i < kKernelSourceCount; ++i) {
    if (std::string_view(kKernelSources[i].name) == "common.cl")
      texts.push_back(kKernelSources[i].text);
  }
  for (size_t i = 0; i < kKernelSourceCount; ++i) {
    if (std::string_view(kKernelSources[i].name) != "common.cl")
      texts.push_back(kKernelSources[i].text);
  }
  program_ = clCreateProgramWithSource(context_, static_cast<cl_uint>(texts.size()), texts.data(),
                                       nullptr, &err);
  cl_check(err, "clCreateProgramWithSource");
  std::string options = "-cl-std=CL1.2";
  if ((fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0) {
    options += " -cl-fp32-correctly-rounded-divide-sqrt";
  }
  err = clBuildProgram(program_, 1, &device_, options.c_str(), nullptr, nullptr);
  if (err != CL_SUCCESS) {
    size_t size = 0;
    clGetProgramBuildInfo(program_, device_, CL_PROGRAM_BUILD_LOG, 0, nullptr, &size);
    std::string log(size, '\0');
    clGetProgramBuildInfo(program_, device_, CL_PROGRAM_BUILD_LOG, size, log.data(), nullptr);
    if (log.size() > 2000) log.resize(2000);
    fail(ErrorKind::kUnsupported, "opencl: the kernels do not build for {} ({}): {}", name_,
         version_, log);
  }
  cleanup.armed = false;
}

Runtime::~Runtime() {
  clReleaseCommandQueue(transfer_);
  clReleaseProgram(program_);
  clReleaseContext(context_);
}

}  // namespace luzao::opencl

// PoCL keeps a few bytes allocated until process exit; LeakSanitizer (sanitizer builds) would
// report them as ours. The sanitizer runtime asks for these suppressions at start-up.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libpocl.so\n";
}
