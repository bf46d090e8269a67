// Test helper: builds GGUF byte images field by field (raw little-endian packing, independent of
// GgufWriter), recording offsets so tests can check the offsets that error messages name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace luzao::test {

class GgufImage {
 public:
  std::vector<std::byte> bytes;

  size_t size() const { return bytes.size(); }
  template <typename T>
  GgufImage& put(T v) {
    const size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &v, sizeof(T));
    return *this;
  }
  GgufImage& u8(uint8_t v) { return put(v); }
  GgufImage& u32(uint32_t v) { return put(v); }
  GgufImage& u64(uint64_t v) { return put(v); }
  GgufImage& str(std::string_view s) {
    u64(s.size());
    for (const char c : s) bytes.push_back(static_cast<std::byte>(c));
    return *this;
  }
  // Magic, version, tensor count, kv count.
  GgufImage& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    bytes.insert(bytes.end(), {std::byte{'G'}, std::byte{'G'}, std::byte{'U'}, std::byte{'F'}});
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  GgufImage& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(4).u32(v); }
  GgufImage& kv_string(std::string_view key, std::string_view v) { return str(key).u32(8).str(v); }
  // Tensor info: name, dims (GGUF order), ggml type id, offset in the data section.
  GgufImage& tensor(std::string_view name, std::vector<uint64_t> dims, uint32_t type,
                    uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (const uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  GgufImage& pad(size_t alignment) {
    while (bytes.size() % alignment != 0) bytes.push_back(std::byte{0});
    return *this;
  }
  GgufImage& zeros(size_t n) {
    bytes.resize(bytes.size() + n);
    return *this;
  }
  std::span<const std::byte> span() const { return bytes; }
};

}  // namespace luzao::test
