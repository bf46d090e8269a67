// Binding GGUF tensors to a device: one buffer over the file's data section (zero-copy where the
// device can address host memory), and shape-checked 2-D views of each tensor.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "format/gguf.h"

namespace luzao {

class WeightStore {
 public:
  // Which tensors (by name) a store holds; empty: all of them.
  using TensorFilter = std::function<bool(std::string_view name)>;

  // Zero-copy over the whole data section when allow_map_host and the device can address host
  // memory (only the pages of the tensors used are ever read); otherwise the tensors that `keep`
  // accepts are uploaded into one device buffer, so a part of a split model holds only its own.
  WeightStore(std::shared_ptr<const GgufFile> file, Device& device, bool allow_map_host,
              TensorFilter keep = {});

  // The tensor as a view of rows x cols, where `shape` is in GGUF order (innermost first) and a
  // 1-D tensor is one row. Throws Error(kBadFile) naming the tensor when it is missing or its
  // shape differs.
  TensorView require(std::string_view name, std::initializer_list<int64_t> shape) const;
  std::optional<TensorView> find(std::string_view name, std::initializer_list<int64_t> shape) const;
  bool has(std::string_view name) const { return file_->find_tensor(name) != nullptr; }
  const GgufFile& file() const { return *file_; }
  // Bytes of device memory the store allocated (0 when it maps host memory).
  size_t device_bytes() const { return mapped_ ? 0 : buffer_->size(); }

 private:
  std::shared_ptr<const GgufFile> file_;
  std::unique_ptr<Buffer> buffer_;
  bool mapped_ = false;
  // Buffer offset of each tensor (by index in file_->tensors()), or kAbsent when filtered out.
  static constexpr size_t kAbsent = ~size_t{0};
  std::vector<size_t> offsets_;
};

// A device buffer holding a [rows, cols] F32 activation, grown on demand and reused afterwards.
class Activation {
 public:
  // Returns a view of `rows` rows, reallocating only when the capacity is exceeded.
  TensorView get(Device& device, int64_t rows, int64_t cols);

 private:
  std::unique_ptr<Buffer> buffer_;
  size_t capacity_ = 0;
};

}  // namespace luzao
