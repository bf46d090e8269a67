// GGUF (v2, v3) reader and writer. The reader validates every size and offset before any access
// and throws luzao::Error(kBadFile) naming the file, the key or tensor, and the byte offset.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/mapped_file.h"
#include "tensor/dtype.h"

namespace luzao {

// GGUF metadata value types, numbered as in the file.
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
std::string_view gguf_type_name(GgufType type) noexcept;

struct GgufArray;

// One metadata value. Arrays may nest.
struct GgufValue {
  GgufType type = GgufType::kUint8;
  std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
               std::shared_ptr<GgufArray>, uint64_t, int64_t, double>
      value;
};

struct GgufArray {
  GgufType element_type = GgufType::kUint8;
  std::vector<GgufValue> items;
};

struct GgufKeyValue {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;  // GGUF order: shape[0] is the innermost (contiguous) dimension
  uint64_t offset = 0;          // relative to the start of the data section
  uint64_t bytes = 0;
  uint64_t elements() const;  // product of the shape (validated not to overflow by the reader)
};

// A parsed, validated GGUF file. Move-only; immutable after construction, so a const GgufFile may
// be shared between threads. All metadata is copied out; tensor data stays in the mapping.
class GgufFile {
 public:
  // Maps and validates the whole file. Throws Error (kIo / kBadFile / kUnsupported).
  static GgufFile open(const std::filesystem::path& path);
  // Validates an in-memory image (used by the fuzzer); `name` stands in for the path in errors.
  // The returned file refers to `bytes` (for tensor_data) and must not outlive them.
  static GgufFile parse(std::span<const std::byte> bytes, std::string_view name);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute offset of the data section
  const std::string& name() const { return name_; }      // the path, for messages
  uint64_t file_size() const { return bytes_.size(); }

  const std::vector<GgufKeyValue>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;

  // Typed getters. The plain ones throw Error(kBadFile) naming the file and key when the key is
  // missing or has another type; the `_or` ones return the fallback when it is missing.
  // Integer getters accept any integer type whose value fits.
  uint64_t get_uint(std::string_view key) const;
  std::optional<uint64_t> find_uint(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  float get_float(std::string_view key) const;  // accepts float32 / float64
  std::optional<float> find_float(std::string_view key) const;
  bool get_bool_or(std::string_view key, bool fallback) const;
  std::string get_string(std::string_view key) const;
  std::optional<std::string> find_string(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<float> get_float_array(std::string_view key) const;
  std::vector<int32_t> get_int_array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // The tensor's bytes inside the mapping (valid while this GgufFile lives).
  std::span<const std::byte> tensor_data(const GgufTensorInfo& tensor) const;

 private:
  GgufFile() = default;
  std::string name_;
  std::optional<MappedFile> file_;
  std::span<const std::byte> bytes_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKeyValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> key_index_;     // key -> index in metadata_
  std::map<std::string, size_t, std::less<>> tensor_index_;  // name -> index in tensors_
  friend class GgufParser;
};

// Formats a value for display on one line: strings in double quotes with control characters and
// invalid UTF-8 escaped and cut after `max_string_bytes`; arrays longer than `max_items` as
// "[151936 strings: "a", "b", ...]" (just "[151936 strings]" when `max_items` is 0).
std::string gguf_value_to_string(const GgufValue& value, size_t max_items = 8,
                                 size_t max_string_bytes = 256);

// `text` made safe for a one-line message: control characters, backslashes, double quotes and
// invalid UTF-8 escaped (\n, \", \xNN); cut after `max_bytes` input bytes with "..." appended.
std::string escape_for_display(std::string_view text, size_t max_bytes = 128);

// Value constructors for the writer and for tests.
GgufValue gguf_uint32(uint32_t v);
GgufValue gguf_int32(int32_t v);
GgufValue gguf_uint64(uint64_t v);
GgufValue gguf_float32(float v);
GgufValue gguf_bool(bool v);
GgufValue gguf_string(std::string v);
// All items must have type `element_type` (the writer checks).
GgufValue gguf_array(GgufType element_type, std::vector<GgufValue> items);

// Writes GGUF v3 files. Tensor data is aligned to `general.alignment` (default 32).
class GgufWriter {
 public:
  void set(std::string key, GgufValue value);  // replaces an existing key
  void set_uint32(std::string key, uint32_t v);
  void set_float32(std::string key, float v);
  void set_bool(std::string key, bool v);
  void set_string(std::string key, std::string v);
  void set_string_array(std::string key, std::vector<std::string> v);
  void set_int32(std::string key, int32_t v);
  void set_uint64(std::string key, uint64_t v);
  void set_float32_array(std::string key, std::span<const float> v);
  void set_int32_array(std::string key, std::span<const int32_t> v);
  // Sets general.alignment (a nonzero power of two; throws kInvalidArgument otherwise).
  void set_alignment(uint32_t alignment);
  // `shape` in GGUF order; `data` must hold exactly the bytes the shape and dtype need.
  void add_tensor(std::string name, DType dtype, std::vector<uint64_t> shape,
                  std::span<const std::byte> data);
  // Throws Error(kIo) naming the path when it cannot write; kInvalidArgument when a value's type
  // does not match its variant or an array item does not match the array's element type.
  void write(const std::filesystem::path& path) const;
  // The whole file as bytes (for tests and fuzz seeds).
  std::vector<std::byte> to_bytes() const;

 private:
  std::vector<GgufKeyValue> metadata_;
  struct PendingTensor {
    GgufTensorInfo info;
    std::vector<std::byte> data;
  };
  std::vector<PendingTensor> tensors_;
  uint64_t alignment() const;
  // Header, metadata, tensor infos and padding up to the data section.
  std::vector<std::byte> header_bytes() const;
};

}  // namespace luzao
