// Builds small zip archives in memory for the zip reader and pull tests (stored, deflate, zip64).
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace luzao::cli::testing {

struct ZipSpec {
  std::string name;
  std::string data;
  bool deflate = false;
};

inline void put_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

// Raw deflate (no zlib header) of `data` at the given level, made with zlib itself.
inline std::string raw_deflate(const std::string& data, int level = 6) {
  z_stream z{};
  deflateInit2(&z, level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

inline uint32_t crc_of(const std::string& data) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
}

// Writes local headers + data, the central directory and the end record(s). With `zip64`, the
// central directory stores sizes/offsets as 0xffffffff with a zip64 extra field and the archive
// ends with a zip64 end record, locator and a classic end record full of 0xffff markers.
inline std::string build_zip(const std::vector<ZipSpec>& specs, bool zip64 = false,
                             const std::string& comment = "") {
  std::string out, central;
  for (const ZipSpec& s : specs) {
    const std::string payload = s.deflate ? raw_deflate(s.data) : s.data;
    const uint16_t method = s.deflate ? 8 : 0;
    const uint64_t offset = out.size();
    put_le(out, 0x04034b50, 4);
    put_le(out, 20, 2);
    put_le(out, 0, 2);
    put_le(out, method, 2);
    put_le(out, 0, 4);
    put_le(out, crc_of(s.data), 4);
    put_le(out, payload.size(), 4);
    put_le(out, s.data.size(), 4);
    put_le(out, s.name.size(), 2);
    put_le(out, 0, 2);
    out += s.name;
    out += payload;

    put_le(central, 0x02014b50, 4);
    put_le(central, 45, 2);
    put_le(central, 20, 2);
    put_le(central, 0, 2);
    put_le(central, method, 2);
    put_le(central, 0, 4);
    put_le(central, crc_of(s.data), 4);
    put_le(central, zip64 ? 0xffffffff : payload.size(), 4);
    put_le(central, zip64 ? 0xffffffff : s.data.size(), 4);
    put_le(central, s.name.size(), 2);
    put_le(central, zip64 ? 28 : 0, 2);
    put_le(central, 0, 2);
    put_le(central, 0, 2);
    put_le(central, 0, 6);
    put_le(central, zip64 ? 0xffffffff : offset, 4);
    central += s.name;
    if (zip64) {
      put_le(central, 0x0001, 2);
      put_le(central, 24, 2);
      put_le(central, s.data.size(), 8);
      put_le(central, payload.size(), 8);
      put_le(central, offset, 8);
    }
  }
  const uint64_t directory_offset = out.size();
  out += central;
  if (zip64) {
    const uint64_t record_offset = out.size();
    put_le(out, 0x06064b50, 4);
    put_le(out, 44, 8);
    put_le(out, 45, 2);
    put_le(out, 45, 2);
    put_le(out, 0, 4);
    put_le(out, 0, 4);
    put_le(out, specs.size(), 8);
    put_le(out, specs.size(), 8);
    put_le(out, central.size(), 8);
    put_le(out, directory_offset, 8);
    put_le(out, 0x07064b50, 4);
    put_le(out, 0, 4);
    put_le(out, record_offset, 8);
    put_le(out, 1, 4);
  }
  put_le(out, 0x06054b50, 4);
  put_le(out, 0, 2);
  put_le(out, 0, 2);
  put_le(out, zip64 ? 0xffff : specs.size(), 2);
  put_le(out, zip64 ? 0xffff : specs.size(), 2);
  put_le(out, zip64 ? 0xffffffff : central.size(), 4);
  put_le(out, zip64 ? 0xffffffff : directory_offset, 4);
  put_le(out, comment.size(), 2);
  out += comment;
  return out;
}

// Offset of the central directory in a classic (non-zip64) archive built above.
inline uint32_t directory_offset_of(const std::string& zip) {
  const size_t end = zip.rfind(std::string("PK\x05\x06", 4));
  uint32_t v = 0;
  std::memcpy(&v, zip.data() + end + 16, 4);  // little-endian hosts only, as are our targets
  return v;
}

}  // namespace luzao::cli::testing
