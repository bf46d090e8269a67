// WeightStore and Activation.
#include "model/weights.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace luzao {

WeightStore::WeightStore(std::shared_ptr<const GgufFile> file, Device& device, bool allow_map_host)
    : file_(std::move(file)) {
  const auto& tensors = file_->tensors();
  if (tensors.empty()) fail(ErrorKind::kBadFile, "{}: the file holds no tensors", file_->name());
  uint64_t end = 0;
  for (const GgufTensorInfo& t : tensors) end = std::max(end, t.offset + t.bytes);
  // The reader validated every [offset, offset + bytes) against the file, so the region from the
  // start of the data section to `end` is mapped.
  base_ = file_->tensor_data(tensors.front()).data() - tensors.front().offset;
  if (allow_map_host) buffer_ = device.map_host(base_, end);
  if (!buffer_) {
    buffer_ = device.alloc(end);
    device.upload(*buffer_, 0, base_, end);
  }
}

std::optional<TensorView> WeightStore::find(std::string_view name,
                                            std::initializer_list<int64_t> shape) const {
  const GgufTensorInfo* info = file_->find_tensor(name);
  if (info == nullptr) return std::nullopt;
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
  view.offset = file_->tensor_data(*info).data() - base_;
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
