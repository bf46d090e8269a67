// GgufWriter: builds GGUF v3 files (little-endian) with aligned, padded tensor data.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <type_traits>

#include "core/checked_math.h"
#include "core/error.h"
#include "format/gguf.h"

namespace luzao {

namespace {

constexpr uint32_t kMagic = 0x46554747;
constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;

class ByteSink {
 public:
  std::vector<std::byte> bytes;

  template <typename T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &v, sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    bytes.insert(bytes.end(), p, p + s.size());
  }
  void pad_to(uint64_t alignment) { bytes.resize(*checked_align_up(bytes.size(), alignment)); }
};

// Does the variant hold the alternative that `type` names?
bool variant_matches(const GgufValue& v) {
  switch (v.type) {
    case GgufType::kUint8:
      return std::holds_alternative<uint8_t>(v.value);
    case GgufType::kInt8:
      return std::holds_alternative<int8_t>(v.value);
    case GgufType::kUint16:
      return std::holds_alternative<uint16_t>(v.value);
    case GgufType::kInt16:
      return std::holds_alternative<int16_t>(v.value);
    case GgufType::kUint32:
      return std::holds_alternative<uint32_t>(v.value);
    case GgufType::kInt32:
      return std::holds_alternative<int32_t>(v.value);
    case GgufType::kFloat32:
      return std::holds_alternative<float>(v.value);
    case GgufType::kBool:
      return std::holds_alternative<bool>(v.value);
    case GgufType::kString:
      return std::holds_alternative<std::string>(v.value);
    case GgufType::kArray: {
      const auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v.value);
      return a != nullptr && *a != nullptr;
    }
    case GgufType::kUint64:
      return std::holds_alternative<uint64_t>(v.value);
    case GgufType::kInt64:
      return std::holds_alternative<int64_t>(v.value);
    case GgufType::kFloat64:
      return std::holds_alternative<double>(v.value);
  }
  return false;
}

// Writes the value without its type tag (the caller writes the tag where GGUF has one).
void put_value(ByteSink& out, const GgufValue& v, std::string_view key) {
  if (!variant_matches(v)) {
    fail(ErrorKind::kInvalidArgument, "GGUF writer: key '{}': value does not hold a {}",
         escape_for_display(key), gguf_type_name(v.type));
  }
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          out.put_string(x);
        } else if constexpr (std::is_same_v<T, std::shared_ptr<GgufArray>>) {
          out.put<uint32_t>(static_cast<uint32_t>(x->element_type));
          out.put<uint64_t>(x->items.size());
          for (const GgufValue& item : x->items) {
            if (item.type != x->element_type) {
              fail(ErrorKind::kInvalidArgument,
                   "GGUF writer: key '{}': array of {} holds an item of type {}",
                   escape_for_display(key), gguf_type_name(x->element_type),
                   gguf_type_name(item.type));
            }
            put_value(out, item, key);
          }
        } else if constexpr (std::is_same_v<T, bool>) {
          out.put<uint8_t>(x ? 1 : 0);
        } else {
          out.put<T>(x);
        }
      },
      v.value);
}

}  // namespace

void GgufWriter::set(std::string key, GgufValue value) {
  for (GgufKeyValue& kv : metadata_) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  metadata_.push_back(GgufKeyValue{std::move(key), std::move(value)});
}

void GgufWriter::set_uint32(std::string key, uint32_t v) {
  set(std::move(key), gguf_uint32(v));
}
void GgufWriter::set_float32(std::string key, float v) {
  set(std::move(key), gguf_float32(v));
}
void GgufWriter::set_bool(std::string key, bool v) {
  set(std::move(key), gguf_bool(v));
}
void GgufWriter::set_string(std::string key, std::string v) {
  set(std::move(key), gguf_string(std::move(v)));
}
void GgufWriter::set_int32(std::string key, int32_t v) {
  set(std::move(key), gguf_int32(v));
}
void GgufWriter::set_uint64(std::string key, uint64_t v) {
  set(std::move(key), gguf_uint64(v));
}

void GgufWriter::set_string_array(std::string key, std::vector<std::string> v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (std::string& s : v) items.push_back(gguf_string(std::move(s)));
  set(std::move(key), gguf_array(GgufType::kString, std::move(items)));
}

void GgufWriter::set_float32_array(std::string key, std::span<const float> v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (const float x : v) items.push_back(gguf_float32(x));
  set(std::move(key), gguf_array(GgufType::kFloat32, std::move(items)));
}

void GgufWriter::set_int32_array(std::string key, std::span<const int32_t> v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (const int32_t x : v) items.push_back(gguf_int32(x));
  set(std::move(key), gguf_array(GgufType::kInt32, std::move(items)));
}

void GgufWriter::set_alignment(uint32_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    fail(ErrorKind::kInvalidArgument, "GGUF writer: alignment {} is not a nonzero power of two",
         alignment);
  }
  set_uint32("general.alignment", alignment);
}

void GgufWriter::add_tensor(std::string name, DType dtype, std::vector<uint64_t> shape,
                            std::span<const std::byte> data) {
  for (const PendingTensor& t : tensors_) {
    if (t.info.name == name) {
      fail(ErrorKind::kInvalidArgument, "GGUF writer: duplicate tensor '{}'",
           escape_for_display(name));
    }
  }
  if (shape.empty() || shape.size() > 4) {
    fail(ErrorKind::kInvalidArgument, "GGUF writer: tensor '{}' has {} dimensions (1 to 4 allowed)",
         escape_for_display(name), shape.size());
  }
  std::optional<uint64_t> bytes = row_bytes(dtype, shape[0]);
  for (size_t d = 1; d < shape.size() && bytes; ++d) bytes = checked_mul(*bytes, shape[d]);
  if (!bytes || *bytes == 0) {
    fail(ErrorKind::kInvalidArgument,
         "GGUF writer: tensor '{}': shape does not fit dtype {} (zero dimension, row not a "
         "multiple of the block size, or overflow)",
         escape_for_display(name), dtype_name(dtype));
  }
  if (*bytes != data.size()) {
    fail(ErrorKind::kInvalidArgument, "GGUF writer: tensor '{}' needs {} bytes but {} were given",
         escape_for_display(name), *bytes, data.size());
  }
  PendingTensor t;
  t.info.name = std::move(name);
  t.info.dtype = dtype;
  t.info.shape = std::move(shape);
  t.info.bytes = *bytes;
  t.data.assign(data.begin(), data.end());
  tensors_.push_back(std::move(t));
}

uint64_t GgufWriter::alignment() const {
  for (const GgufKeyValue& kv : metadata_) {
    if (kv.key != "general.alignment") continue;
    const auto* a = std::get_if<uint32_t>(&kv.value.value);
    if (a == nullptr || *a == 0 || (*a & (*a - 1)) != 0) {
      fail(ErrorKind::kInvalidArgument,
           "GGUF writer: general.alignment must be a uint32 nonzero power of two");
    }
    return *a;
  }
  return kDefaultAlignment;
}

std::vector<std::byte> GgufWriter::header_bytes() const {
  const uint64_t align = alignment();
  ByteSink out;
  out.put<uint32_t>(kMagic);
  out.put<uint32_t>(kVersion);
  out.put<uint64_t>(tensors_.size());
  out.put<uint64_t>(metadata_.size());
  for (const GgufKeyValue& kv : metadata_) {
    out.put_string(kv.key);
    out.put<uint32_t>(static_cast<uint32_t>(kv.value.type));
    put_value(out, kv.value, kv.key);
  }
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    out.put_string(t.info.name);
    out.put<uint32_t>(static_cast<uint32_t>(t.info.shape.size()));
    for (const uint64_t d : t.info.shape) out.put<uint64_t>(d);
    out.put<uint32_t>(static_cast<uint32_t>(t.info.dtype));
    out.put<uint64_t>(offset);
    offset = *checked_align_up(offset + t.info.bytes, align);
  }
  out.pad_to(align);
  return std::move(out.bytes);
}

std::vector<std::byte> GgufWriter::to_bytes() const {
  std::vector<std::byte> out = header_bytes();
  const uint64_t align = alignment();
  for (const PendingTensor& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    out.resize(*checked_align_up(out.size(), align));
  }
  return out;
}

void GgufWriter::write(const std::filesystem::path& path) const {
  const std::vector<std::byte> header = header_bytes();
  const uint64_t align = alignment();
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) fail(ErrorKind::kIo, "{}: cannot create: {}", path.string(), std::strerror(errno));
  const std::byte zeros[256] = {};
  bool ok = std::fwrite(header.data(), 1, header.size(), f.get()) == header.size();
  for (const PendingTensor& t : tensors_) {
    if (!ok) break;
    ok = std::fwrite(t.data.data(), 1, t.data.size(), f.get()) == t.data.size();
    uint64_t pad = *checked_align_up(t.data.size(), align) - t.data.size();
    while (ok && pad > 0) {
      const size_t n = std::min<uint64_t>(pad, sizeof(zeros));
      ok = std::fwrite(zeros, 1, n, f.get()) == n;
      pad -= n;
    }
  }
  const int err = errno;
  if (std::fclose(f.release()) != 0 || !ok) {
    fail(ErrorKind::kIo, "{}: write failed: {}", path.string(), std::strerror(ok ? errno : err));
  }
}

}  // namespace luzao
