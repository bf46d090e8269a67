// WeightStore and Activation.
#include "model/weights.h"

#include <algorithm>
#include <span>
#include <string>

#include "core/error.h"

namespace luzao {

WeightStore::WeightStore(std::shared_ptr<const GgufFile> file, Device& device, bool allow_map_host,
                         TensorFilter keep)
    : file_(std::move(file)) {
  const auto& tensors = file_->tensors();
  if (tensors.empty()) fail(ErrorKind::kBadFile, "{}: the file holds no tensors", file_->name());
  uint64_t end = 0;
  for (const GgufTensorInfo& t : tensors) end = std::max(end, t.offset + t.bytes);
  // The reader validated every [offset, offset + bytes) against the file, so the region from the
  // start of the data section to `end` is mapped.
  const std::byte* base = file_->tensor_data(tensors.front()).data() - tensors.front().offset;
  offsets_.assign(tensors.size(), kAbsent);
  if (allow_map_host) buffer_ = device.map_host(base, end);
  mapped_ = buffer_ != nullptr;
  if (mapped_ || !keep) {  // the data section as it is, mapped or in one upload
    if (!mapped_) {
      buffer_ = device.alloc(end);
      device.upload(*buffer_, 0, base, end);
    }
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!keep || keep(tensors[i].name)) offsets_[i] = tensors[i].offset;
    }
    return;
  }
  // Only the kept tensors, packed at aligned offsets.
  constexpr size_t kAlign = 64;
  size_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!keep(tensors[i].name)) continue;
    offsets_[i] = total;
    total += (tensors[i].bytes + kAlign - 1) / kAlign * kAlign;
  }
  buffer_ = device.alloc(std::max<size_t>(total, kAlign));
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (offsets_[i] == kAbsent) continue;
    const std::span<const std::byte> data = file_->tensor_data(tensors[i]);
    device.upload(*buffer_, offsets_[i], data.data(), data.size());
  }
}

std::optional<TensorView> WeightStore::find(std::string_view name,
                                            std::initializer_list<int64_t> shape) const {
  const GgufTensorInfo* info = file_->find_tensor(name);
  if (info == nullptr) return std::nullopt;
  const size_t index = static_cast<size_t>(info - file_->tensors().data());
  LUZAO_CHECK(offsets_[index] != kAbsent);  // asked for a tensor the filter left out
  std::vector<uint64_t> want(shape.begin(), shape.end());
  std::vector<uint64_t> have = info->shape;
  while (have.size() > want.size() && have.back() == 1) have.pop_back();
  if (have != want) {
    auto show = [](const std::vector<uint64_t>& s) {
      std::string out = "[";
      for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
      return out + "]";
    };
    fail(ErrorKind::kBadFile, "{}: tensor '{}' has shape {}, expected {}", file_->name(), name,
         show(info->shape), show(want));
  }
  TensorView view;
  view.buffer = buffer_.get();
  view.offset = offsets_[index];
  view.dtype = info->dtype;
  view.cols = static_cast<int64_t>(want[0]);
  view.rows = want.size() > 1 ? static_cast<int64_t>(want[1]) : 1;
  view.row_stride = *row_bytes(info->dtype, want[0]);
  return view;
}

TensorView WeightStore::require(std::string_view name, std::initializer_list<int64_t> shape) const {
  std::optional<TensorView> view = find(name, shape);
  if (!view) fail(ErrorKind::kBadFile, "{}: required tensor '{}' is missing", file_->name(), name);
  return *view;
}

TensorView Activation::get(Device& device, int64_t rows, int64_t cols) {
  const size_t bytes = static_cast<size_t>(rows) * static_cast<size_t>(cols) * sizeof(float);
  if (bytes > capacity_ || !buffer_) {
    buffer_ = device.alloc(std::max<size_t>(bytes, 64));
    capacity_ = bytes;
  }
  TensorView view;
  view.buffer = buffer_.get();
  view.dtype = DType::kF32;
  view.rows = rows;
  view.cols = cols;
  view.row_stride = static_cast<size_t>(cols) * sizeof(float);
  return view;
}

}  // namespace luzao
