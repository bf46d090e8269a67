// Zip archive reader: end-of-central-directory search, zip64 records, stored/deflate extraction
// with zlib raw inflate and CRC-32 verification.
#include "cli/zip_reader.h"

#include <zlib.h>

#include <algorithm>
#include <limits>
#include <optional>

#include "core/checked_math.h"
#include "core/error.h"

namespace luzao::cli {
namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kEndSize = 22;
constexpr size_t kZip64EndSize = 56;
constexpr size_t kZip64LocatorSize = 20;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kMethodStored = 0;
constexpr uint16_t kMethodDeflate = 8;
constexpr size_t kChunk = 256 * 1024;

// Little-endian field reader over a bounded span; every read is checked by the caller's sizes.
class Cursor {
 public:
  Cursor(std::span<const std::byte> bytes, size_t pos) : bytes_(bytes), pos_(pos) {}
  bool has(size_t n) const { return pos_ <= bytes_.size() && bytes_.size() - pos_ >= n; }
  uint64_t le(size_t n) {
    LUZAO_CHECK(has(n));
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i)
      v |= uint64_t{std::to_integer<uint8_t>(bytes_[pos_ + i])} << (8 * i);
    pos_ += n;
    return v;
  }
  uint16_t u16() { return static_cast<uint16_t>(le(2)); }
  uint32_t u32() { return static_cast<uint32_t>(le(4)); }
  uint64_t u64() { return le(8); }
  void skip(size_t n) {
    LUZAO_CHECK(has(n));
    pos_ += n;
  }
  size_t pos() const { return pos_; }

 private:
  std::span<const std::byte> bytes_;
  size_t pos_;
};

std::string printable(std::string_view name) {
  std::string out;
  for (const char c : name.substr(0, 200)) {
    out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c);
  }
  return out;
}

}  // namespace

ZipReader::ZipReader(std::span<const std::byte> data, std::string label)
    : data_(data), label_(std::move(label)) {
  const size_t size = data_.size();
  if (size < kEndSize)
    fail(ErrorKind::kBadFile, "{}: not a zip archive (only {} bytes)", label_, size);

  // The end record sits in the last 22 + 65535 bytes (the comment is at most 65535 bytes long).
  std::optional<size_t> end_pos;
  const size_t lowest = size > kEndSize + 0xffff ? size - kEndSize - 0xffff : 0;
  for (size_t pos = size - kEndSize + 1; pos-- > lowest;) {
    Cursor c(data_, pos);
    if (c.u32() != kEndSig) continue;
    c.skip(16);
    if (pos + kEndSize + c.u16() == size) {  // the comment must reach exactly to the end
      end_pos = pos;
      break;
    }
  }
  if (!end_pos)
    fail(ErrorKind::kBadFile, "{}: not a zip archive (no end of central directory)", label_);

  Cursor end(data_, *end_pos + 4);
  const uint16_t disk = end.u16();
  const uint16_t directory_disk = end.u16();
  const uint16_t entries_here = end.u16();
  uint64_t count = end.u16();
  uint64_t directory_size = end.u32();
  uint64_t directory_offset = end.u32();
  size_t directory_limit = *end_pos;  // the central directory must end before this

  const bool zip64 = count == 0xffff || directory_size == 0xffffffff ||
                     directory_offset == 0xffffffff || entries_here == 0xffff;
  if (zip64 || (*end_pos >= kZip64LocatorSize &&
                Cursor(data_, *end_pos - kZip64LocatorSize).u32() == kZip64LocatorSig)) {
    if (*end_pos < kZip64LocatorSize) {
      fail(ErrorKind::kBadFile, "{}: zip64 sizes without a zip64 end locator", label_);
    }
    Cursor locator(data_, *end_pos - kZip64LocatorSize);
    if (locator.u32() != kZip64LocatorSig) {
      fail(ErrorKind::kBadFile, "{}: zip64 sizes without a zip64 end locator", label_);
    }
    locator.skip(4);
    const uint64_t record_pos = locator.u64();
    if (record_pos > *end_pos - kZip64LocatorSize ||
        *end_pos - kZip64LocatorSize - record_pos < kZip64EndSize) {
      fail(ErrorKind::kBadFile, "{}: zip64 end record offset {} is out of range", label_,
           record_pos);
    }
    Cursor record(data_, record_pos);
    if (record.u32() != kZip64EndSig) {
      fail(ErrorKind::kBadFile, "{}: bad zip64 end record signature at offset {}", label_,
           record_pos);
    }
    record.skip(8 + 2 + 2);  // record size, versions
    const uint32_t disk64 = record.u32();
    const uint32_t directory_disk64 = record.u32();
    const uint64_t entries_here64 = record.u64();
    count = record.u64();
    directory_size = record.u64();
    directory_offset = record.u64();
    if (disk64 != 0 || directory_disk64 != 0 || entries_here64 != count) {
      fail(ErrorKind::kUnsupported, "{}: multi-volume zip archives are not supported", label_);
    }
    directory_limit = static_cast<size_t>(record_pos);
  } else if (disk != 0 || directory_disk != 0 || entries_here != count) {
    fail(ErrorKind::kUnsupported, "{}: multi-volume zip archives are not supported", label_);
  }

  const auto directory_end = checked_add(directory_offset, directory_size);
  if (!directory_end || *directory_end > directory_limit) {
    fail(ErrorKind::kBadFile, "{}: central directory (offset {}, size {}) runs past its end record",
         label_, directory_offset, directory_size);
  }
  if (count > directory_size / kCentralHeaderSize) {
    fail(ErrorKind::kBadFile, "{}: {} entries cannot fit in a central directory of {} bytes",
         label_, count, directory_size);
  }
  directory_offset_ = directory_offset;

  const auto directory = data_.first(static_cast<size_t>(*directory_end));
  Cursor c(directory, static_cast<size_t>(directory_offset));
  entries_.reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) {
    if (!c.has(kCentralHeaderSize)) {
      fail(ErrorKind::kBadFile, "{}: central directory entry {} is truncated", label_, i);
    }
    if (c.u32() != kCentralHeaderSig) {
      fail(ErrorKind::kBadFile, "{}: central directory entry {} has a bad signature", label_, i);
    }
    ZipEntry e;
    c.skip(4);  // versions
    e.flags = c.u16();
    e.method = c.u16();
    c.skip(4);  // time, date
    e.crc32 = c.u32();
    e.compressed_size = c.u32();
    e.uncompressed_size = c.u32();
    const uint16_t name_length = c.u16();
    const uint16_t extra_length = c.u16();
    const uint16_t comment_length = c.u16();
    const uint16_t start_disk = c.u16();
    c.skip(6);  // attributes
    e.local_header_offset = c.u32();
    if (!c.has(size_t{name_length} + extra_length + comment_length)) {
      fail(ErrorKind::kBadFile, "{}: central directory entry {} runs past the directory", label_,
           i);
    }
    e.name.assign(reinterpret_cast<const char*>(directory.data() + c.pos()), name_length);
    c.skip(name_length);
    if (e.name.find('\0') != std::string::npos) {
      fail(ErrorKind::kBadFile, "{}: entry {} has a NUL byte in its name", label_, i);
    }

    // Zip64 extended information: 8-byte values for exactly the fields that hold all ones.
    const size_t extra_end = c.pos() + extra_length;
    bool zip64_seen = false;
    while (c.pos() + 4 <= extra_end) {
      const uint16_t id = c.u16();
      const uint16_t length = c.u16();
      if (c.pos() + length > extra_end) {
        fail(ErrorKind::kBadFile, "{}: entry '{}' has a truncated extra field", label_,
             printable(e.name));
      }
      if (id == kZip64ExtraId && !zip64_seen) {
        zip64_seen = true;
        Cursor z(directory.first(c.pos() + length), c.pos());
        for (uint64_t* field : {&e.uncompressed_size, &e.compressed_size, &e.local_header_offset}) {
          if (*field != 0xffffffff) continue;
          if (!z.has(8)) {
            fail(ErrorKind::kBadFile, "{}: entry '{}' has a short zip64 extra field", label_,
                 printable(e.name));
          }
          *field = z.u64();
        }
      }
      c.skip(length);
    }
    if (c.pos() != extra_end) c.skip(extra_end - c.pos());
    c.skip(comment_length);

    if (start_disk != 0 && start_disk != 0xffff) {
      fail(ErrorKind::kUnsupported, "{}: multi-volume zip archives are not supported", label_);
    }
    if (e.local_header_offset >= directory_offset_) {
      fail(ErrorKind::kBadFile, "{}: entry '{}' starts at offset {}, inside the central directory",
           label_, printable(e.name), e.local_header_offset);
    }
    entries_.push_back(std::move(e));
  }
}

const ZipEntry* ZipReader::find(std::string_view name) const {
  for (const ZipEntry& e : entries_) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::span<const std::byte> ZipReader::entry_data(const ZipEntry& entry) const {
  const std::string name = printable(entry.name);
  // The local header's own name and extra lengths decide where the data starts.
  Cursor c(data_.first(static_cast<size_t>(directory_offset_)),
           static_cast<size_t>(entry.local_header_offset));
  if (!c.has(kLocalHeaderSize) || c.u32() != kLocalHeaderSig) {
    fail(ErrorKind::kBadFile, "{}: entry '{}' has no valid local header at offset {}", label_, name,
         entry.local_header_offset);
  }
  c.skip(22);
  const size_t name_length = c.u16();
  const size_t extra_length = c.u16();
  const uint64_t start = entry.local_header_offset + kLocalHeaderSize + name_length + extra_length;
  const auto end = checked_add(start, entry.compressed_size);
  if (!end || *end > directory_offset_) {
    fail(ErrorKind::kBadFile, "{}: entry '{}' ({} bytes at offset {}) runs past the archive data",
         label_, name, entry.compressed_size, start);
  }
  return data_.subspan(static_cast<size_t>(start), static_cast<size_t>(entry.compressed_size));
}

void ZipReader::extract(const ZipEntry& entry, const Sink& sink) const {
  const std::string name = printable(entry.name);
  if (entry.flags & 1) fail(ErrorKind::kUnsupported, "{}: entry '{}' is encrypted", label_, name);
  const std::span<const std::byte> input = entry_data(entry);
  uLong crc = crc32(0L, Z_NULL, 0);
  uint64_t produced = 0;
  auto emit = [&](std::span<const std::byte> chunk) {
    produced += chunk.size();
    if (produced > entry.uncompressed_size) {
      fail(ErrorKind::kBadFile, "{}: entry '{}' inflates to more than its recorded {} bytes",
           label_, name, entry.uncompressed_size);
    }
    crc = crc32(crc, reinterpret_cast<const Bytef*>(chunk.data()), static_cast<uInt>(chunk.size()));
    sink(chunk);
  };

  if (entry.method == kMethodStored) {
    if (entry.compressed_size != entry.uncompressed_size) {
      fail(ErrorKind::kBadFile, "{}: stored entry '{}' has compressed size {} != size {}", label_,
           name, entry.compressed_size, entry.uncompressed_size);
    }
    for (size_t pos = 0; pos < input.size(); pos += kChunk) {
      emit(input.subspan(pos, std::min(kChunk, input.size() - pos)));
    }
  } else if (entry.method == kMethodDeflate) {
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK)
      fail(ErrorKind::kInternal, "zlib: inflateInit2 failed");
    struct Ender {
      z_stream* z;
      ~Ender() { inflateEnd(z); }
    } ender{&z};
    std::vector<std::byte> out(kChunk);
    size_t consumed = 0;
    int status = Z_OK;
    while (status != Z_STREAM_END) {
      if (z.avail_in == 0) {
        const size_t n =
            std::min<size_t>(input.size() - consumed, std::numeric_limits<uInt>::max());
        z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(input.data() + consumed));
        z.avail_in = static_cast<uInt>(n);
        consumed += n;
      }
      z.next_out = reinterpret_cast<Bytef*>(out.data());
      z.avail_out = static_cast<uInt>(out.size());
      status = inflate(&z, Z_NO_FLUSH);
      if (status == Z_MEM_ERROR) fail(ErrorKind::kOutOfMemory, "zlib: out of memory");
      if (status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR) {
        fail(ErrorKind::kBadFile, "{}: entry '{}' has corrupt deflate data ({})", label_, name,
             z.msg != nullptr ? z.msg : "inflate failed");
      }
      const size_t got = out.size() - z.avail_out;
      if (got > 0) emit(std::span(out.data(), got));
      // No output and no input left: the stream stops before its final block.
      if (status != Z_STREAM_END && got == 0 && z.avail_in == 0 && consumed == input.size()) {
        fail(ErrorKind::kBadFile, "{}: entry '{}' has truncated deflate data", label_, name);
      }
    }
    if (z.avail_in != 0 || consumed != input.size()) {
      fail(ErrorKind::kBadFile, "{}: entry '{}' has {} stray bytes after its deflate data", label_,
           name, input.size() - consumed + z.avail_in);
    }
  } else {
    fail(ErrorKind::kUnsupported,
         "{}: entry '{}' uses compression method {} (only stored and deflate)", label_, name,
         entry.method);
  }

  if (produced != entry.uncompressed_size) {
    fail(ErrorKind::kBadFile, "{}: entry '{}' has {} bytes, its header says {}", label_, name,
         produced, entry.uncompressed_size);
  }
  if (static_cast<uint32_t>(crc) != entry.crc32) {
    fail(ErrorKind::kBadFile, "{}: entry '{}' fails its CRC-32 check (got {:08x}, expected {:08x})",
         label_, name, static_cast<uint32_t>(crc), entry.crc32);
  }
}

std::string ZipReader::read(const ZipEntry& entry, uint64_t max_size) const {
  if (entry.uncompressed_size > max_size) {
    fail(ErrorKind::kBadFile, "{}: entry '{}' is {} bytes, more than the {} allowed", label_,
         printable(entry.name), entry.uncompressed_size, max_size);
  }
  std::string out;
  out.reserve(static_cast<size_t>(entry.uncompressed_size));
  extract(entry, [&](std::span<const std::byte> chunk) {
    out.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
  });
  return out;
}

}  // namespace luzao::cli
