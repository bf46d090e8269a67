// OpenCL plumbing shared by the device, its buffers and its streams: error translation, device
// discovery, and the per-device context, compiled program and transfer queue.
#pragma once

#include <CL/cl.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace luzao::opencl {

// Throws Error naming `what` and the OpenCL error: kOutOfMemory for allocation failures,
// kIo (driver/device failure) otherwise.
[[noreturn]] void cl_fail(cl_int err, std::string_view what);
inline void cl_check(cl_int err, std::string_view what) {
  if (err != CL_SUCCESS) cl_fail(err, what);
}

// Every device of every platform, platforms in the ICD loader's order. Empty when OpenCL is not
// installed; throws Error(kIo) when a platform fails to answer.
std::vector<cl_device_id> all_devices();

// One opened device: context, the program built from the embedded kernels, and an in-order queue
// for transfers. Shared (shared_ptr) by the device object, its buffers and streams. cl_* calls
// on it are thread-safe as OpenCL guarantees; the object itself is immutable after construction.
class Runtime {
 public:
  explicit Runtime(cl_device_id device);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  cl_device_id device() const { return device_; }
  cl_context context() const { return context_; }
  cl_program program() const { return program_; }
  cl_command_queue transfer_queue() const { return transfer_; }
  uint64_t max_alloc() const { return max_alloc_; }
  uint64_t global_memory() const { return global_mem_; }
  const std::string& device_name() const { return name_; }
  const std::string& vendor() const { return vendor_; }
  const std::string& version() const { return version_; }

 private:
  cl_device_id device_;
  cl_context context_ = nullptr;
  cl_program program_ = nullptr;
  cl_command_queue transfer_ = nullptr;
  uint64_t max_alloc_ = 0;
  uint64_t global_mem_ = 0;
  std::string name_, vendor_, version_;
};

// A device information string (CL_DEVICE_NAME, ...).
std::string device_string(cl_device_id device, cl_device_info param);

}  // namespace luzao::opencl
