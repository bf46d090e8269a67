// Safetensors reader: an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw data. Validated strictly before any tensor is read.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"

namespace luzao {

// Element types a safetensors header may name ("F32", "BF16", ...).
enum class SafetensorsDType {
  kBool,
  kU8,
  kI8,
  kF8E4M3,
  kF8E5M2,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kI64,
  kU64,
  kF64,
};
std::string_view safetensors_dtype_name(SafetensorsDType dtype) noexcept;
size_t safetensors_dtype_bytes(SafetensorsDType dtype) noexcept;

struct SafetensorsTensor {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::kF32;
  std::vector<uint64_t> shape;  // row-major, outermost first (PyTorch order)
  uint64_t begin = 0;           // byte range within the data section
  uint64_t end = 0;
  uint64_t elements() const;  // product of the shape (1 for a scalar)
};

// A parsed, validated safetensors file. Move-only; immutable after construction (a const
// SafetensorsFile may be shared between threads). Tensor data stays in the mapping.
class SafetensorsFile {
 public:
  // Maps and validates the file. Throws Error(kIo) when it cannot be read, Error(kBadFile) naming
  // the file and the tensor or field when the header is malformed, truncated or inconsistent.
  static SafetensorsFile open(const std::filesystem::path& path);
  // Validates an in-memory image; `name` stands in for the path in messages. The result refers to
  // `bytes` and must not outlive them.
  static SafetensorsFile parse(std::span<const std::byte> bytes, std::string_view name);

  const std::string& name() const { return name_; }
  // Tensors in header order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(std::string_view tensor_name) const;
  // The `__metadata__` string map (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The tensor's bytes inside the mapping (valid while this file lives).
  std::span<const std::byte> data(const SafetensorsTensor& tensor) const;

 private:
  SafetensorsFile() = default;
  std::string name_;
  std::optional<MappedFile> file_;
  std::span<const std::byte> payload_;  // the data section
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

// Converts a whole float tensor (F32, F16 or BF16) to F32; `out` holds tensor.elements() values.
// Throws Error(kUnsupported) naming the file and tensor for any other dtype.
void safetensors_to_f32(const SafetensorsFile& file, const SafetensorsTensor& tensor,
                        std::span<float> out);

}  // namespace luzao
