// GGUF v2/v3 parser: validates every count, size and offset (overflow-safe) before touching bytes,
// and reports each violation as Error(kBadFile) naming the file, the key or tensor and the offset.
#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <numeric>
#include <utility>

#include <fmt/ranges.h>

#include "core/checked_math.h"
#include "core/error.h"
#include "format/gguf.h"

namespace luzao {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian uint32
constexpr int kMaxArrayDepth = 16;       // deeper nesting is rejected (bounds recursion)
// Each array item becomes a GgufValue (~48 bytes), so a file of uint8 arrays could ask for 48x its
// size in memory. Real vocabularies hold under 1M items in all; cap the total well above that.
constexpr uint64_t kMaxArrayItems = uint64_t{1} << 24;
constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;  // key length, type, smallest value
constexpr uint64_t kMinTensorInfoBytes =
    8 + 4 + 8 + 4 + 8;  // name length, n_dims, 1 dim, type, offset

// Smallest encoding of one value of `type` (used to bound counts by the bytes that remain).
uint64_t min_value_bytes(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
    case GgufType::kString:
      return 8;
    case GgufType::kArray:
      return 4 + 8;
  }
  return 1;
}

bool valid_type_id(uint32_t id) {
  return id <= static_cast<uint32_t>(GgufType::kFloat64);
}

// ggml type ids that exist but that luzao does not implement (reported as unsupported, not bad).
std::string_view known_ggml_type(uint32_t id) {
  switch (id) {
    case 9:
      return "q8_1";
    case 16:
      return "iq2_xxs";
    case 17:
      return "iq2_xs";
    case 18:
      return "iq3_xxs";
    case 19:
      return "iq1_s";
    case 20:
      return "iq4_nl";
    case 21:
      return "iq3_s";
    case 22:
      return "iq2_s";
    case 23:
      return "iq4_xs";
    case 24:
      return "i8";
    case 25:
      return "i16";
    case 26:
      return "i32";
    case 27:
      return "i64";
    case 28:
      return "f64";
    case 29:
      return "iq1_m";
    case 34:
      return "tq1_0";
    case 35:
      return "tq2_0";
    case 39:
      return "mxfp4";
    default:
      return {};
  }
}

}  // namespace

// Reads one image front to back. Friend of GgufFile so it fills the private members directly.
class GgufParser {
 public:
  GgufParser(GgufFile& out, std::span<const std::byte> bytes)
      : out_(out), data_(bytes.data()), size_(bytes.size()) {}

  void run() {
    read_header();
    for (uint64_t i = 0; i < n_kv_; ++i) read_kv(i);
    read_alignment();
    for (uint64_t i = 0; i < n_tensors_; ++i) read_tensor_info(i);
    place_tensors();
  }

 private:
  GgufFile& out_;
  const std::byte* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  uint64_t array_items_ = 0;      // items in all metadata arrays so far
  std::string where_ = "header";  // what is being read, for messages

  template <typename... Args>
  [[noreturn]] void bad(fmt::format_string<Args...> format, Args&&... args) const {
    fail(ErrorKind::kBadFile, "{}: {}: {}", out_.name_, where_,
         fmt::format(format, std::forward<Args>(args)...));
  }

  uint64_t remaining() const { return size_ - pos_; }

  // Throws unless `n` more bytes exist at the current position. `what` names the field.
  void need(uint64_t n, std::string_view what) const {
    if (n > remaining()) {
      bad("{} [{} bytes at offset {}] runs past end of file (size {})", what, n, pos_, size_);
    }
  }

  template <typename T>
  T read_raw(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(std::string_view what) {
    const uint64_t at = pos_;
    const uint64_t len = read_raw<uint64_t>(what);
    if (len > remaining()) {
      bad("{} length {} at offset {} runs past end of file (size {})", what, len, at, size_);
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return s;
  }

  GgufType read_type(std::string_view what) {
    const uint64_t at = pos_;
    const uint32_t id = read_raw<uint32_t>(what);
    if (!valid_type_id(id)) bad("unknown value type {} at offset {}", id, at);
    return static_cast<GgufType>(id);
  }

  void read_header() {
    if (size_ < 4) bad("file is too small to be GGUF ({} bytes)", size_);
    const uint32_t magic = read_raw<uint32_t>("magic");
    if (magic != kMagic) {
      std::string shown(reinterpret_cast<const char*>(data_), 4);
      bad("bad magic \"{}\" at offset 0 (expected \"GGUF\"): not a GGUF file",
          escape_for_display(shown));
    }
    const uint32_t version = read_raw<uint32_t>("version");
    if (version == 0x02000000u || version == 0x03000000u) {
      fail(ErrorKind::kUnsupported,
           "{}: header: big-endian GGUF (version {} byte-swapped) is not "
           "supported",
           out_.name_, __builtin_bswap32(version));
    }
    if (version != 2 && version != 3) {
      fail(ErrorKind::kUnsupported,
           "{}: header: unsupported GGUF version {} at offset 4 (luzao reads versions 2 and 3)",
           out_.name_, version);
    }
    out_.version_ = version;
    n_tensors_ = read_raw<uint64_t>("tensor count");
    n_kv_ = read_raw<uint64_t>("metadata key count");
    // Bound the counts by what the rest of the file could hold before reserving anything.
    if (n_tensors_ > remaining() / kMinTensorInfoBytes) {
      bad("tensor count {} at offset 8 runs past end of file (size {}): each tensor needs at least "
          "{} bytes and only {} remain",
          n_tensors_, size_, kMinTensorInfoBytes, remaining());
    }
    if (n_kv_ > remaining() / kMinKvBytes) {
      bad("metadata key count {} at offset 16 runs past end of file (size {}): each key needs at "
          "least {} bytes and only {} remain",
          n_kv_, size_, kMinKvBytes, remaining());
    }
    if (n_tensors_ * kMinTensorInfoBytes + n_kv_ * kMinKvBytes > remaining()) {
      bad("{} tensors and {} metadata keys (offsets 8, 16) run past end of file (size {}): they "
          "need at least {} bytes and only {} remain",
          n_tensors_, n_kv_, size_, n_tensors_ * kMinTensorInfoBytes + n_kv_ * kMinKvBytes,
          remaining());
    }
    out_.metadata_.reserve(n_kv_);
    out_.tensors_.reserve(n_tensors_);
  }

  void read_kv(uint64_t index) {
    const uint64_t at = pos_;
    where_ = fmt::format("metadata entry {}", index);
    std::string key = read_string("key");
    where_ = fmt::format("key '{}'", escape_for_display(key));
    if (out_.key_index_.count(key) != 0) bad("duplicate key at offset {}", at);
    const GgufType type = read_type("value type");
    GgufValue value = read_value(type, 0);
    out_.key_index_.emplace(key, out_.metadata_.size());
    out_.metadata_.push_back(GgufKeyValue{std::move(key), std::move(value)});
  }

  template <typename T>
  GgufValue scalar(GgufType type, std::string_view what) {
    GgufValue v;
    v.type = type;
    v.value = read_raw<T>(what);
    return v;
  }

  GgufValue read_value(GgufType type, int depth) {
    switch (type) {
      case GgufType::kUint8:
        return scalar<uint8_t>(type, "uint8 value");
      case GgufType::kInt8:
        return scalar<int8_t>(type, "int8 value");
      case GgufType::kUint16:
        return scalar<uint16_t>(type, "uint16 value");
      case GgufType::kInt16:
        return scalar<int16_t>(type, "int16 value");
      case GgufType::kUint32:
        return scalar<uint32_t>(type, "uint32 value");
      case GgufType::kInt32:
        return scalar<int32_t>(type, "int32 value");
      case GgufType::kFloat32:
        return scalar<float>(type, "float32 value");
      case GgufType::kUint64:
        return scalar<uint64_t>(type, "uint64 value");
      case GgufType::kInt64:
        return scalar<int64_t>(type, "int64 value");
      case GgufType::kFloat64:
        return scalar<double>(type, "float64 value");
      case GgufType::kBool: {
        const uint64_t at = pos_;
        const uint8_t b = read_raw<uint8_t>("bool value");
        if (b > 1) bad("bool value {} at offset {} is neither 0 nor 1", b, at);
        GgufValue v;
        v.type = type;
        v.value = b == 1;
        return v;
      }
      case GgufType::kString: {
        GgufValue v;
        v.type = type;
        v.value = read_string("string");
        return v;
      }
      case GgufType::kArray:
        return read_array(depth + 1);
    }
    bad("unknown value type {}", static_cast<uint32_t>(type));
  }

  GgufValue read_array(int depth) {
    const uint64_t at = pos_;
    if (depth > kMaxArrayDepth)
      bad("arrays nested deeper than {} at offset {}", kMaxArrayDepth, at);
    const GgufType element = read_type("array element type");
    const uint64_t count_at = pos_;
    const uint64_t count = read_raw<uint64_t>("array length");
    const uint64_t unit = min_value_bytes(element);
    if (count > remaining() / unit) {
      bad("array of {} {} values at offset {} runs past end of file (needs at least {} bytes per "
          "item, {} bytes remain)",
          count, gguf_type_name(element), count_at, unit, remaining());
    }
    auto array = std::make_shared<GgufArray>();
    array->element_type = element;
    array_items_ += count;  // no overflow: each count is below the file size
    if (array_items_ > kMaxArrayItems) {
      fail(ErrorKind::kUnsupported,
           "{}: {}: array of {} items at offset {} takes the metadata past luzao's limit of {} "
           "array items in all",
           out_.name_, where_, count, count_at, kMaxArrayItems);
    }
    array->items.reserve(count);
    for (uint64_t i = 0; i < count; ++i) array->items.push_back(read_value(element, depth));
    GgufValue v;
    v.type = GgufType::kArray;
    v.value = std::move(array);
    return v;
  }

  void read_alignment() {
    where_ = "key 'general.alignment'";
    const auto it = out_.key_index_.find(std::string_view("general.alignment"));
    if (it == out_.key_index_.end()) return;
    const GgufValue& v = out_.metadata_[it->second].value;
    const auto* p = std::get_if<uint32_t>(&v.value);
    if (p == nullptr) bad("has type {}, expected uint32", gguf_type_name(v.type));
    const uint64_t a = *p;
    if (a == 0 || !std::has_single_bit(a)) bad("alignment {} is not a nonzero power of two", a);
    out_.alignment_ = a;
  }

  void read_tensor_info(uint64_t index) {
    const uint64_t at = pos_;
    where_ = fmt::format("tensor {}", index);
    GgufTensorInfo t;
    t.name = read_string("tensor name");
    where_ = fmt::format("tensor '{}'", escape_for_display(t.name));
    if (out_.tensor_index_.count(t.name) != 0) bad("duplicate tensor name at offset {}", at);
    const uint64_t dims_at = pos_;
    const uint32_t n_dims = read_raw<uint32_t>("n_dims");
    if (n_dims == 0 || n_dims > kMaxDims) {
      bad("n_dims {} at offset {} is out of range (1 to {})", n_dims, dims_at, kMaxDims);
    }
    t.shape.resize(n_dims);
    uint64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim_at = pos_;
      t.shape[d] = read_raw<uint64_t>("dimension");
      if (t.shape[d] == 0) bad("dimension {} at offset {} is zero", d, dim_at);
      const auto product = checked_mul(elements, t.shape[d]);
      if (!product || *product > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        bad("shape {} (at offset {}) has an element count that overflows", fmt::join(t.shape, "x"),
            dims_at + 4);
      }
      elements = *product;
    }
    const uint64_t type_at = pos_;
    const uint32_t type_id = read_raw<uint32_t>("dtype");
    const std::optional<DType> dtype = dtype_from_id(type_id);
    if (!dtype) {
      if (const std::string_view known = known_ggml_type(type_id); !known.empty()) {
        fail(ErrorKind::kUnsupported, "{}: {}: dtype {} (id {}) at offset {} is not supported",
             out_.name_, where_, known, type_id, type_at);
      }
      bad("unknown dtype id {} at offset {}", type_id, type_at);
    }
    t.dtype = *dtype;
    t.offset = read_raw<uint64_t>("data offset");
    const DTypeInfo& info = dtype_info(t.dtype);
    if (t.shape[0] % static_cast<uint64_t>(info.block_size) != 0) {
      bad("row of {} elements is not a multiple of the {} block size {}", t.shape[0], info.name,
          info.block_size);
    }
    std::optional<uint64_t> bytes = row_bytes(t.dtype, t.shape[0]);
    for (uint32_t d = 1; d < n_dims && bytes; ++d) bytes = checked_mul(*bytes, t.shape[d]);
    if (!bytes) bad("byte size of shape {} overflows", fmt::join(t.shape, "x"));
    t.bytes = *bytes;
    out_.tensor_index_.emplace(t.name, out_.tensors_.size());
    out_.tensors_.push_back(std::move(t));
  }

  void place_tensors() {
    where_ = "data section";
    const auto data_offset = checked_align_up(pos_, out_.alignment_);
    if (!data_offset) bad("start overflows when aligned to {}", out_.alignment_);
    out_.data_offset_ = *data_offset;
    const uint64_t a = out_.alignment_;
    for (const GgufTensorInfo& t : out_.tensors_) {
      where_ = fmt::format("tensor '{}'", escape_for_display(t.name));
      const auto start = checked_add(*data_offset, t.offset);
      const std::string shown =
          start ? fmt::format("{}", *start) : fmt::format("{}+{}", *data_offset, t.offset);
      if (t.offset % a != 0) {
        bad("data offset {} (file offset {}) is not a multiple of the alignment {}", t.offset,
            shown, a);
      }
      const auto end = start ? checked_add(*start, t.bytes) : std::nullopt;
      if (!end || *end > size_) {
        bad("data [offset {}, {} bytes] runs past end of file (size {})", shown, t.bytes, size_);
      }
    }
    // Overlap: sort by offset, then each tensor must end before the next begins.
    std::vector<size_t> order(out_.tensors_.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
      return out_.tensors_[x].offset < out_.tensors_[y].offset;
    });
    for (size_t i = 1; i < order.size(); ++i) {
      const GgufTensorInfo& prev = out_.tensors_[order[i - 1]];
      const GgufTensorInfo& cur = out_.tensors_[order[i]];
      if (prev.offset + prev.bytes > cur.offset) {  // no overflow: both checked against the size
        where_ = fmt::format("tensor '{}'", escape_for_display(cur.name));
        bad("data [offset {}, {} bytes] overlaps tensor '{}' [offset {}, {} bytes]",
            out_.data_offset_ + cur.offset, cur.bytes, escape_for_display(prev.name),
            out_.data_offset_ + prev.offset, prev.bytes);
      }
    }
  }
};

uint64_t GgufTensorInfo::elements() const {
  uint64_t n = 1;
  for (const uint64_t d : shape) {
    const auto p = checked_mul(n, d);
    if (!p) fail(ErrorKind::kBadFile, "tensor '{}': element count overflows", name);
    n = *p;
  }
  return n;
}

GgufFile GgufFile::open(const std::filesystem::path& path) {
  MappedFile mapped(path);
  const std::span<const std::byte> bytes = mapped.bytes();
  GgufFile file = parse(bytes, path.string());
  file.file_.emplace(std::move(mapped));  // the mapping's address does not change on move
  return file;
}

GgufFile GgufFile::parse(std::span<const std::byte> bytes, std::string_view name) {
  GgufFile file;
  file.name_ = std::string(name);
  file.bytes_ = bytes;
  GgufParser(file, bytes).run();
  return file;
}

std::span<const std::byte> GgufFile::tensor_data(const GgufTensorInfo& tensor) const {
  const auto start = checked_add(data_offset_, tensor.offset);
  const auto end = start ? checked_add(*start, tensor.bytes) : std::nullopt;
  if (!end || *end > bytes_.size()) {
    fail(ErrorKind::kInvalidArgument, "{}: tensor '{}' does not lie inside this file", name_,
         escape_for_display(tensor.name));
  }
  return bytes_.subspan(*start, tensor.bytes);
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue* GgufFile::find(std::string_view key) const {
  const auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

}  // namespace luzao
