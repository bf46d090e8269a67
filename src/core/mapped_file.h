// A read-only memory-mapped file (RAII). Weights are read in place, never copied.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

namespace luzao {

class MappedFile {
 public:
  // Maps the whole file read-only. Throws Error(kIo) naming the path when it cannot.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace luzao
