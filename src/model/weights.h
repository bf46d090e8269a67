// Binding GGUF tensors to a device: one buffer over the file's data section (zero-copy where the
// device can address host memory), and shape-checked 2-D views of each tensor.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string_view>

#include "backend/backend.h"
#include "format/gguf.h"

namespace luzao {

class WeightStore {
 public:
  WeightStore(std::shared_ptr<const GgufFile> file, Device& device, bool allow_map_host);

  // The tensor as a view of rows x cols, where `shape` is in GGUF order (innermost first) and a
  // 1-D tensor is one row. Throws Error(kBadFile) naming the tensor when it is missing or its
  // shape differs.
  TensorView require(std::string_view name, std::initializer_list<int64_t> shape) const;
  std::optional<TensorView> find(std::string_view name, std::initializer_list<int64_t> shape) const;
  bool has(std::string_view name) const { return file_->find_tensor(name) != nullptr; }
  const GgufFile& file() const { return *file_; }

 private:
  std::shared_ptr<const GgufFile> file_;
  std::unique_ptr<Buffer> buffer_;
  const std::byte* base_ = nullptr;  // host address that buffer offset 0 stands for
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
