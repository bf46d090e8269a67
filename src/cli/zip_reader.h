// A small read-only zip reader (central directory, stored and deflate entries, zip64), enough to
// take a .gguf out of a Python wheel. Every size and offset is checked against the archive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace luzao::cli {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflate; others are refused on extraction
  uint16_t flags = 0;
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t local_header_offset = 0;
};

// Parses the central directory of the archive held in `data` (which must outlive the reader).
// `label` names the archive in error messages. Throws Error(kBadFile) on any inconsistency.
class ZipReader {
 public:
  ZipReader(std::span<const std::byte> data, std::string label);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // The entry with exactly this name, or nullptr.
  const ZipEntry* find(std::string_view name) const;

  // Streams the entry's uncompressed bytes to `sink` in chunks, checking the size and CRC-32.
  // Throws Error(kBadFile) naming the entry on corrupt data; kUnsupported for other methods or
  // encryption. Exceptions thrown by `sink` propagate.
  using Sink = std::function<void(std::span<const std::byte>)>;
  void extract(const ZipEntry& entry, const Sink& sink) const;
  // The whole entry in memory; refuses entries larger than `max_size` bytes.
  std::string read(const ZipEntry& entry, uint64_t max_size) const;

 private:
  std::span<const std::byte> entry_data(const ZipEntry& entry) const;

  std::span<const std::byte> data_;
  std::string label_;
  std::vector<ZipEntry> entries_;
  uint64_t directory_offset_ = 0;  // entries' data must end before the central directory
};

}  // namespace luzao::cli
