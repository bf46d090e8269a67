// Host-memory buffers and the buffer half of a device whose memory is ordinary RAM
// (shared by the reference and cpu backends).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "backend/backend.h"

namespace luzao {

constexpr size_t kHostAlignment = 64;

// Owns `size` bytes aligned to kHostAlignment, zero-filled.
class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(size_t size);
  ~HostBuffer() override;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  size_t size() const override { return size_; }
  void* host_data() override { return data_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// Borrows host memory (an mmap'd file) that outlives it. Ops never write through a view of a
// mapped buffer they only read; writing into read-only mapped memory is the caller's bug.
class MappedHostBuffer final : public Buffer {
 public:
  MappedHostBuffer(const void* data, size_t size) : data_(data), size_(size) {}
  size_t size() const override { return size_; }
  void* host_data() override { return const_cast<void*>(data_); }

 private:
  const void* data_;
  size_t size_;
};

// alloc/map_host/upload/download/copy over host memory. Subclasses provide info(),
// supports() and create_stream().
class HostDevice : public Device {
 public:
  std::unique_ptr<Buffer> alloc(size_t bytes) override;
  std::unique_ptr<Buffer> map_host(const void* data, size_t bytes) override;
  void upload(Buffer& dst, size_t offset, const void* src, size_t bytes) override;
  void download(const Buffer& src, size_t offset, void* dst, size_t bytes) override;
  void copy(const Buffer& src, size_t src_offset, Buffer& dst, size_t dst_offset,
            size_t bytes) override;
};

// Total physical memory of this machine in bytes (0 when unknown).
uint64_t host_memory_bytes() noexcept;

}  // namespace luzao
