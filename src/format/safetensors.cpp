// Safetensors parser: checks the header length against the file, parses the JSON header, and
// validates every tensor's dtype, shape and byte range (in bounds, sized exactly, no overlaps).
#include "format/safetensors.h"

#include <algorithm>
#include <cstring>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/checked_math.h"
#include "core/error.h"
#include "core/half.h"

namespace luzao {

namespace {

constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // the format's own limit is 100 MB
constexpr size_t kMaxDims = 8;

struct DTypeEntry {
  SafetensorsDType dtype;
  std::string_view name;
  size_t bytes;
};

constexpr DTypeEntry kDTypes[] = {
    {SafetensorsDType::kBool, "BOOL", 1},      {SafetensorsDType::kU8, "U8", 1},
    {SafetensorsDType::kI8, "I8", 1},          {SafetensorsDType::kF8E4M3, "F8_E4M3", 1},
    {SafetensorsDType::kF8E5M2, "F8_E5M2", 1}, {SafetensorsDType::kI16, "I16", 2},
    {SafetensorsDType::kU16, "U16", 2},        {SafetensorsDType::kF16, "F16", 2},
    {SafetensorsDType::kBF16, "BF16", 2},      {SafetensorsDType::kI32, "I32", 4},
    {SafetensorsDType::kU32, "U32", 4},        {SafetensorsDType::kF32, "F32", 4},
    {SafetensorsDType::kI64, "I64", 8},        {SafetensorsDType::kU64, "U64", 8},
    {SafetensorsDType::kF64, "F64", 8},
};

const DTypeEntry& entry_of(SafetensorsDType dtype) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.dtype == dtype) return e;
  }
  LUZAO_CHECK(false);
  return kDTypes[0];
}

uint64_t read_u64_le(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(p[i]);
  return v;
}

// A JSON value as a uint64, or fails naming the tensor and field.
uint64_t to_u64(const nlohmann::json& v, std::string_view file, std::string_view tensor,
                std::string_view field) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
    fail(ErrorKind::kBadFile, "{}: tensor '{}': {} must hold non-negative integers", file, tensor,
         field);
  }
  return v.get<uint64_t>();
}

}  // namespace

std::string_view safetensors_dtype_name(SafetensorsDType dtype) noexcept {
  return entry_of(dtype).name;
}

size_t safetensors_dtype_bytes(SafetensorsDType dtype) noexcept {
  return entry_of(dtype).bytes;
}

uint64_t SafetensorsTensor::elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;  // validated not to overflow by the parser
  return n;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  MappedFile mapped(path);
  SafetensorsFile file = parse(mapped.bytes(), path.string());
  file.file_.emplace(std::move(mapped));  // the mapping's address does not change on move
  return file;
}

SafetensorsFile SafetensorsFile::parse(std::span<const std::byte> bytes, std::string_view name) {
  SafetensorsFile file;
  file.name_ = std::string(name);
  if (bytes.size() < 8) {
    fail(ErrorKind::kBadFile,
         "{}: truncated safetensors file ({} bytes, the header length alone "
         "needs 8)",
         name, bytes.size());
  }
  const uint64_t header_len = read_u64_le(bytes.data());
  const uint64_t available = bytes.size() - 8;
  if (header_len > available) {
    fail(ErrorKind::kBadFile,
         "{}: header length {} runs past the end of the file ({} bytes after the length field)",
         name, header_len, available);
  }
  if (header_len > kMaxHeaderBytes) {
    fail(ErrorKind::kBadFile, "{}: header length {} exceeds the 100 MB limit", name, header_len);
  }
  const auto* text = reinterpret_cast<const char*>(bytes.data() + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, text + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kBadFile, "{}: header is not valid JSON: {}", name, e.what());
  }
  if (!header.is_object()) fail(ErrorKind::kBadFile, "{}: header is not a JSON object", name);
  file.payload_ = bytes.subspan(8 + header_len);
  const uint64_t payload_size = file.payload_.size();

  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        fail(ErrorKind::kBadFile, "{}: __metadata__ is not a JSON object", name);
      for (const auto& [mkey, mvalue] : value.items()) {
        if (!mvalue.is_string()) {
          fail(ErrorKind::kBadFile, "{}: __metadata__ entry '{}' is not a string", name, mkey);
        }
        file.metadata_[mkey] = mvalue.get<std::string>();
      }
      continue;
    }
    if (!value.is_object())
      fail(ErrorKind::kBadFile, "{}: tensor '{}': entry is not a JSON object", name, key);
    SafetensorsTensor t;
    t.name = key;
    const auto dtype_it = value.find("dtype");
    if (dtype_it == value.end() || !dtype_it->is_string())
      fail(ErrorKind::kBadFile, "{}: tensor '{}': missing or non-string dtype", name, key);
    const std::string dtype_name = dtype_it->get<std::string>();
    const auto known = std::find_if(std::begin(kDTypes), std::end(kDTypes),
                                    [&](const DTypeEntry& e) { return e.name == dtype_name; });
    if (known == std::end(kDTypes)) {
      fail(ErrorKind::kUnsupported, "{}: tensor '{}': unknown dtype '{}'", name, key, dtype_name);
    }
    t.dtype = known->dtype;
    const auto shape_it = value.find("shape");
    if (shape_it == value.end() || !shape_it->is_array())
      fail(ErrorKind::kBadFile, "{}: tensor '{}': missing or non-array shape", name, key);
    if (shape_it->size() > kMaxDims)
      fail(ErrorKind::kBadFile, "{}: tensor '{}': {} dimensions (at most {})", name, key,
           shape_it->size(), kMaxDims);
    uint64_t bytes_needed = known->bytes;
    for (const nlohmann::json& d : *shape_it) {
      t.shape.push_back(to_u64(d, name, key, "shape"));
      const std::optional<uint64_t> next = checked_mul(bytes_needed, t.shape.back());
      if (!next) fail(ErrorKind::kBadFile, "{}: tensor '{}': shape overflows", name, key);
      bytes_needed = *next;
    }
    const auto offsets_it = value.find("data_offsets");
    if (offsets_it == value.end() || !offsets_it->is_array() || offsets_it->size() != 2)
      fail(ErrorKind::kBadFile, "{}: tensor '{}': data_offsets must be [begin, end]", name, key);
    t.begin = to_u64((*offsets_it)[0], name, key, "data_offsets");
    t.end = to_u64((*offsets_it)[1], name, key, "data_offsets");
    if (t.begin > t.end || t.end > payload_size) {
      fail(ErrorKind::kBadFile,
           "{}: tensor '{}': data_offsets [{}, {}] fall outside the {}-byte data section "
           "(truncated file?)",
           name, key, t.begin, t.end, payload_size);
    }
    if (t.end - t.begin != bytes_needed) {
      fail(ErrorKind::kBadFile,
           "{}: tensor '{}': data_offsets span {} bytes but {} of shape [{}] needs {}", name, key,
           t.end - t.begin, known->name, fmt::join(t.shape, ", "), bytes_needed);
    }
    file.index_.emplace(t.name, file.tensors_.size());
    file.tensors_.push_back(std::move(t));
  }

  // No two tensors may share bytes.
  std::vector<const SafetensorsTensor*> by_offset;
  for (const SafetensorsTensor& t : file.tensors_) {
    if (t.end > t.begin) by_offset.push_back(&t);
  }
  std::sort(
      by_offset.begin(), by_offset.end(),
      [](const SafetensorsTensor* a, const SafetensorsTensor* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      fail(ErrorKind::kBadFile, "{}: tensors '{}' and '{}' overlap in the data section", name,
           by_offset[i - 1]->name, by_offset[i]->name);
    }
  }
  return file;
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view tensor_name) const {
  const auto it = index_.find(tensor_name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const std::byte> SafetensorsFile::data(const SafetensorsTensor& tensor) const {
  LUZAO_CHECK(tensor.begin <= tensor.end && tensor.end <= payload_.size());
  return payload_.subspan(tensor.begin, tensor.end - tensor.begin);
}

void safetensors_to_f32(const SafetensorsFile& file, const SafetensorsTensor& tensor,
                        std::span<float> out) {
  LUZAO_CHECK(out.size() == tensor.elements());
  const std::span<const std::byte> src = file.data(tensor);
  switch (tensor.dtype) {
    case SafetensorsDType::kF32:
      std::memcpy(out.data(), src.data(), out.size() * sizeof(float));
      return;
    case SafetensorsDType::kF16:
    case SafetensorsDType::kBF16: {
      const bool is_f16 = tensor.dtype == SafetensorsDType::kF16;
      for (size_t i = 0; i < out.size(); ++i) {
        uint16_t h = 0;
        std::memcpy(&h, src.data() + 2 * i, 2);
        out[i] = is_f16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
      }
      return;
    }
    default:
      fail(ErrorKind::kUnsupported,
           "{}: tensor '{}' has dtype {}; only F32, F16 and BF16 tensors can be converted",
           file.name(), tensor.name, safetensors_dtype_name(tensor.dtype));
  }
}

}  // namespace luzao
