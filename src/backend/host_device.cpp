// Host-memory buffers: aligned allocation, zero-copy mapping and bounds-checked copies.
#include "backend/host_device.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/checked_math.h"
#include "core/error.h"

namespace luzao {
namespace {

// Host pointer of a buffer that must belong to a host device.
std::byte* host_bytes(const Buffer& buffer, const char* what) {
  void* p = const_cast<Buffer&>(buffer).host_data();
  if (p == nullptr && buffer.size() != 0) {
    fail(ErrorKind::kInvalidArgument,
         "{}: buffer is not host memory (it belongs to another device)", what);
  }
  return static_cast<std::byte*>(p);
}

void check_range(const Buffer& buffer, size_t offset, size_t bytes, const char* what) {
  const auto end = checked_add(offset, bytes);
  if (!end || *end > buffer.size()) {
    fail(ErrorKind::kInvalidArgument, "{}: range [{}, {}+{}) lies outside the {}-byte buffer", what,
         offset, offset, bytes, buffer.size());
  }
}

}  // namespace

HostBuffer::HostBuffer(size_t size) : size_(size) {
  // More than the machine's RAM cannot succeed; refuse before asking the allocator.
  const uint64_t ram = host_memory_bytes();
  if (ram != 0 && size > ram) {
    fail(ErrorKind::kOutOfMemory, "host buffer: {} bytes exceed the {} bytes of RAM", size, ram);
  }
  const auto rounded = checked_align_up(size == 0 ? 1 : size, kHostAlignment);
  if (rounded) data_ = std::aligned_alloc(kHostAlignment, *rounded);
  if (data_ == nullptr) {
    fail(ErrorKind::kOutOfMemory, "host buffer: cannot allocate {} bytes", size);
  }
  std::memset(data_, 0, *rounded);
}

HostBuffer::~HostBuffer() {
  std::free(data_);
}

std::unique_ptr<Buffer> HostDevice::alloc(size_t bytes) {
  return std::make_unique<HostBuffer>(bytes);
}

std::unique_ptr<Buffer> HostDevice::map_host(const void* data, size_t bytes) {
  if (data == nullptr && bytes != 0) {
    fail(ErrorKind::kInvalidArgument, "map_host: null pointer for {} bytes", bytes);
  }
  return std::make_unique<MappedHostBuffer>(data, bytes);
}

void HostDevice::upload(Buffer& dst, size_t offset, const void* src, size_t bytes) {
  check_range(dst, offset, bytes, "upload");
  if (bytes != 0) std::memcpy(host_bytes(dst, "upload") + offset, src, bytes);
}

void HostDevice::download(const Buffer& src, size_t offset, void* dst, size_t bytes) {
  check_range(src, offset, bytes, "download");
  if (bytes != 0) std::memcpy(dst, host_bytes(src, "download") + offset, bytes);
}

void HostDevice::copy(const Buffer& src, size_t src_offset, Buffer& dst, size_t dst_offset,
                      size_t bytes) {
  check_range(src, src_offset, bytes, "copy (source)");
  check_range(dst, dst_offset, bytes, "copy (destination)");
  if (bytes != 0) {
    std::memmove(host_bytes(dst, "copy") + dst_offset, host_bytes(src, "copy") + src_offset, bytes);
  }
}

uint64_t host_memory_bytes() noexcept {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
}

}  // namespace luzao
