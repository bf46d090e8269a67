// Importance matrix files: llama.cpp's GGUF layout (read and written) and its legacy .dat layout
// (read only). See quantize_imatrix.h.
#include "cli/quantize_imatrix.h"

#include <cstring>
#include <fstream>
#include <span>

#include "core/error.h"
#include "format/gguf.h"

namespace luzao::cli {
namespace {

constexpr std::string_view kSumSuffix = ".in_sum2";
constexpr std::string_view kCountSuffix = ".counts";

bool is_gguf(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open", path.string());
  char magic[4] = {};
  in.read(magic, 4);
  return in && std::memcmp(magic, "GGUF", 4) == 0;
}

std::vector<float> f32_values(const GgufFile& file, const GgufTensorInfo& t) {
  if (t.dtype != DType::kF32) {
    fail(ErrorKind::kBadFile, "{}: imatrix tensor {} has type {}, expected f32", file.name(),
         t.name, dtype_name(t.dtype));
  }
  const std::span<const std::byte> bytes = file.tensor_data(t);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

Imatrix load_gguf(const std::filesystem::path& path) {
  const GgufFile file = GgufFile::open(path);
  if (file.find_string("general.type").value_or("") != "imatrix") {
    fail(ErrorKind::kBadFile,
         "{}: a GGUF file but not an imatrix (general.type is not \"imatrix\")", path.string());
  }
  Imatrix m;
  if (file.find("imatrix.datasets") != nullptr)
    m.datasets = file.get_string_array("imatrix.datasets");
  m.chunk_count = static_cast<uint32_t>(file.find_uint("imatrix.chunk_count").value_or(0));
  m.chunk_size = static_cast<uint32_t>(file.find_uint("imatrix.chunk_size").value_or(0));
  for (const GgufTensorInfo& t : file.tensors()) {
    const std::string_view name = t.name;
    if (name.size() <= kSumSuffix.size() ||
        name.substr(name.size() - kSumSuffix.size()) != kSumSuffix) {
      continue;
    }
    const std::string weight(name.substr(0, name.size() - kSumSuffix.size()));
    const GgufTensorInfo* counts = file.find_tensor(weight + std::string(kCountSuffix));
    if (counts == nullptr) {
      fail(ErrorKind::kBadFile, "{}: {} has no matching {}{}", path.string(), t.name, weight,
           kCountSuffix);
    }
    const std::vector<float> sums = f32_values(file, t);
    const std::vector<float> n = f32_values(file, *counts);
    if (n.size() != 1) {
      fail(ErrorKind::kUnsupported, "{}: {} holds {} matrices (expert weights are not supported)",
           path.string(), weight, n.size());
    }
    Imatrix::Entry e;
    e.sum2.assign(sums.begin(), sums.end());
    e.count = n[0];
    m.set_entry(weight, std::move(e));
  }
  if (m.entries().empty())
    fail(ErrorKind::kBadFile, "{}: an imatrix with no entries", path.string());
  return m;
}

Imatrix load_legacy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open", path.string());
  auto read_i32 = [&](const char* what) {
    int32_t v = 0;
    if (!in.read(reinterpret_cast<char*>(&v), 4)) {
      fail(ErrorKind::kBadFile, "{}: truncated imatrix (reading {})", path.string(), what);
    }
    return v;
  };
  Imatrix m;
  const int32_t n_entries = read_i32("the entry count");
  if (n_entries <= 0 || n_entries > 1000000) {
    fail(ErrorKind::kBadFile, "{}: not an imatrix file ({} entries)", path.string(), n_entries);
  }
  for (int32_t i = 0; i < n_entries; ++i) {
    const int32_t len = read_i32("a name length");
    if (len <= 0 || len > 4096)
      fail(ErrorKind::kBadFile, "{}: entry {} has a bad name length {}", path.string(), i, len);
    std::string name(static_cast<size_t>(len), '\0');
    if (!in.read(name.data(), len))
      fail(ErrorKind::kBadFile, "{}: truncated at entry {}", path.string(), i);
    const int32_t ncall = read_i32("a call count");
    const int32_t nval = read_i32("a value count");
    if (nval <= 0 || nval > (1 << 26)) {
      fail(ErrorKind::kBadFile, "{}: entry {} has {} values", path.string(), name, nval);
    }
    std::vector<float> values(static_cast<size_t>(nval));
    if (!in.read(reinterpret_cast<char*>(values.data()),
                 static_cast<std::streamsize>(values.size() * 4))) {
      fail(ErrorKind::kBadFile, "{}: truncated in entry {}", path.string(), name);
    }
    // Stored values are mean squares times ncall: keep them as sums over ncall "tokens".
    Imatrix::Entry e;
    e.sum2.assign(values.begin(), values.end());
    e.count = ncall > 0 ? ncall : 1;
    m.set_entry(std::move(name), std::move(e));
  }
  return m;
}

}  // namespace

Imatrix Imatrix::load(const std::filesystem::path& path) {
  return is_gguf(path) ? load_gguf(path) : load_legacy(path);
}

void Imatrix::accumulate(const std::string& name, const float* rows, int64_t n_rows, int64_t cols) {
  Entry& e = entries_[name];
  if (e.sum2.empty()) e.sum2.assign(static_cast<size_t>(cols), 0.0);
  if (static_cast<int64_t>(e.sum2.size()) != cols) {
    fail(ErrorKind::kInvalidArgument, "imatrix entry {}: {} columns, earlier {}", name, cols,
         e.sum2.size());
  }
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* x = rows + r * cols;
    for (int64_t j = 0; j < cols; ++j)
      e.sum2[static_cast<size_t>(j)] += static_cast<double>(x[j]) * x[j];
  }
  e.count += static_cast<double>(n_rows);
}

std::vector<float> Imatrix::importance(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end() || it->second.count <= 0) return {};
  std::vector<float> out(it->second.sum2.size());
  for (size_t j = 0; j < out.size(); ++j)
    out[j] = static_cast<float>(it->second.sum2[j] / it->second.count);
  return out;
}

void Imatrix::save(const std::filesystem::path& path) const {
  GgufWriter w;
  w.set_string("general.type", "imatrix");
  w.set_string_array("imatrix.datasets", datasets);
  w.set_uint32("imatrix.chunk_count", chunk_count);
  w.set_uint32("imatrix.chunk_size", chunk_size);
  for (const auto& [name, e] : entries_) {
    std::vector<float> sums(e.sum2.begin(), e.sum2.end());
    const float count = static_cast<float>(e.count);
    w.add_tensor(name + std::string(kSumSuffix), DType::kF32, {sums.size(), 1},
                 std::as_bytes(std::span<const float>(sums)));
    w.add_tensor(name + std::string(kCountSuffix), DType::kF32, {1, 1},
                 std::as_bytes(std::span<const float>(&count, 1)));
  }
  const std::filesystem::path tmp = path.string() + ".tmp";
  try {
    w.write(tmp);
    std::filesystem::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

}  // namespace luzao::cli
