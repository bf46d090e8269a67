// Weights repacked for the cpu matmul: rows in groups of 16 with each 32-element block
// interleaved so that one 64-byte load holds 4 elements of 16 rows (one int32 lane per row) and
// one dpbusd against 4 broadcast activation bytes does 64 multiply-adds. Same bytes per block as
// the file format. Mapped (read-only) weight buffers keep their packed forms in a cache that is
// filled on first use and lives as long as the buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "backend/backend.h"
#include "backend/cpu/vec_dot.h"

namespace luzao::cpu {

inline constexpr int kPackRows = 16;   // rows per group
inline constexpr int kPackTokens = 8;  // most tokens one kernel call takes

// out[t * out_stride + j] = dot(row j of the group, activation row t) for j < 16, t < tokens.
using PackedGemmFn = void (*)(int64_t k, const std::byte* group, const std::byte* act,
                              size_t act_stride, int tokens, float* out, size_t out_stride);

// Per-dtype facts of the packed layout and its kernel (nullptr gemm: no kernel on this CPU).
struct PackedFormat {
  size_t block_bytes = 0;  // bytes of 16 rows x one 32-element block
  PackedGemmFn gemm = nullptr;
};
// The packed format of `dtype` for a CPU with `features`; block_bytes == 0 when not packable.
PackedFormat packed_format(DType dtype, const CpuFeatures& features);
// Registration from packed_avx512.cpp (gemm kernels only; the layout is portable).
PackedGemmFn packed_gemm_avx512(DType dtype);

// The first `rows` rows (a multiple of 16) of a matrix, packed.
class PackedMatrix {
 public:
  PackedMatrix(DType dtype, int64_t rows, int64_t cols, const PackedFormat& format);
  ~PackedMatrix();
  PackedMatrix(const PackedMatrix&) = delete;
  PackedMatrix& operator=(const PackedMatrix&) = delete;

  DType dtype() const { return dtype_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  PackedGemmFn gemm() const { return gemm_; }
  const std::byte* group(int64_t g) const { return data_ + static_cast<size_t>(g) * group_bytes_; }
  std::byte* group(int64_t g) { return data_ + static_cast<size_t>(g) * group_bytes_; }

 private:
  DType dtype_;
  int64_t rows_, cols_;
  size_t group_bytes_;
  PackedGemmFn gemm_;
  std::byte* data_ = nullptr;
};

// Packs rows [16g, 16g + 16) of `src` (rows `stride` bytes apart, in the file format) into
// group g of `dst`. Exposed for the kernel tests.
void pack_group(DType dtype, const std::byte* src, size_t stride, int64_t cols, std::byte* dst);

// A mapped host buffer (read-only weights) with a cache of packed matrices. Thread-safe.
class PackedWeightBuffer final : public Buffer {
 public:
  PackedWeightBuffer(const void* data, size_t size) : data_(data), size_(size) {}
  size_t size() const override { return size_; }
  void* host_data() override { return const_cast<void*>(data_); }

  // The packed form of the rows of `w` (a view into this buffer), made on first use; nullptr
  // when its dtype has no packed kernel here or it has fewer than 16 rows.
  const PackedMatrix* packed(const TensorView& w, const CpuFeatures& features);

 private:
  using Key = std::tuple<size_t, DType, int64_t, int64_t, size_t>;  // offset, dtype, shape, stride
  const void* data_;
  size_t size_;
  std::mutex mutex_;
  std::map<Key, std::unique_ptr<PackedMatrix>> cache_;  // nullptr entries: not packable
};

}  // namespace luzao::cpu
