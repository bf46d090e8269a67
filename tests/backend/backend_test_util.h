// Helpers for backend tests: tensors built from host vectors on any device, read back as F32,
// and the normalised mean squared error used as the per-op error limit.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "backend/backend.h"

namespace luzao::test {

// A device buffer plus the row-major view over it.
struct DeviceTensor {
  std::unique_ptr<Buffer> buffer;
  TensorView view;
};

// Rows of `row_bytes` bytes placed `pad` bytes apart beyond their size (pad keeps the dtype's
// alignment, and exercises row_stride != row size), after `offset` leading bytes.
inline DeviceTensor make_tensor(Device& dev, DType dtype, int64_t rows, int64_t cols,
                                const void* data, size_t pad = 0, size_t offset = 0) {
  const size_t rb = *row_bytes(dtype, static_cast<uint64_t>(cols));
  const size_t stride = rb + pad;
  DeviceTensor t;
  t.buffer = dev.alloc(offset + stride * static_cast<size_t>(rows));
  t.view = TensorView{t.buffer.get(), offset, dtype, rows, cols, stride};
  if (data != nullptr) {
    for (int64_t r = 0; r < rows; ++r) {
      dev.upload(*t.buffer, offset + static_cast<size_t>(r) * stride,
                 static_cast<const uint8_t*>(data) + static_cast<size_t>(r) * rb, rb);
    }
  }
  return t;
}

inline DeviceTensor make_f32(Device& dev, int64_t rows, int64_t cols, const std::vector<float>& v,
                             size_t pad = 0) {
  return make_tensor(dev, DType::kF32, rows, cols, v.empty() ? nullptr : v.data(), pad);
}

// Reads the raw rows (without stride padding).
inline std::vector<uint8_t> read_raw(Device& dev, const DeviceTensor& t) {
  const size_t rb = *row_bytes(t.view.dtype, static_cast<uint64_t>(t.view.cols));
  std::vector<uint8_t> out(rb * static_cast<size_t>(t.view.rows));
  for (int64_t r = 0; r < t.view.rows; ++r) {
    dev.download(*t.buffer, t.view.offset + static_cast<size_t>(r) * t.view.row_stride,
                 out.data() + static_cast<size_t>(r) * rb, rb);
  }
  return out;
}

inline std::vector<float> read_f32(Device& dev, const DeviceTensor& t) {
  const std::vector<uint8_t> raw = read_raw(dev, t);
  std::vector<float> out(raw.size() / sizeof(float));
  std::memcpy(out.data(), raw.data(), raw.size());
  return out;
}

inline std::vector<float> random_floats(std::mt19937& rng, size_t n, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// sum (a - b)^2 / sum b^2: 0 for identical results, 1 for a result of zeros.
inline double nmse(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0.0;
  double den = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  if (got.size() != want.size()) return INFINITY;
  if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
  return num / den;
}

// Pools squared errors over many cases: the NMSE of all of them together, which is far less
// noisy than the worst single case when some outputs are tiny sums that happen to cancel.
struct PooledError {
  double num = 0.0;
  double den = 0.0;
  void add(const std::vector<float>& got, const std::vector<float>& want) {
    for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
      const double d = static_cast<double>(got[i]) - want[i];
      num += d * d;
      den += static_cast<double>(want[i]) * want[i];
    }
  }
  double value() const { return den == 0.0 ? (num == 0.0 ? 0.0 : INFINITY) : num / den; }
};

}  // namespace luzao::test
