// Small branch-free helpers for cpu kernels: fp16/bf16 widening that the compiler can vectorise,
// and a growable aligned scratch area that stops allocating once it has reached its peak size.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace luzao::cpu {

// IEEE half to float without branches (exact for every input, including subnormals, inf, NaN):
// normals are rebased by an exponent multiply, subnormals by a magic-number subtraction.
inline float fp16_to_f32(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const float normal = std::bit_cast<float>((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float subnormal = std::bit_cast<float>((two_w >> 17) | (126u << 23)) - 0.5f;
  const uint32_t bits =
      two_w < (1u << 27) ? std::bit_cast<uint32_t>(subnormal) : std::bit_cast<uint32_t>(normal);
  return std::bit_cast<float>(sign | bits);
}

inline float bf16_to_f32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

// Aligned bytes that grow on demand and are reused across calls (per stream / per thread).
class Scratch {
 public:
  Scratch() = default;
  ~Scratch() { std::free(data_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  Scratch(Scratch&& o) noexcept : data_(o.data_), size_(o.size_) {
    o.data_ = nullptr;
    o.size_ = 0;
  }

  // At least `bytes` bytes aligned to 64; contents are not preserved when it grows.
  void* get(size_t bytes) {
    if (bytes > size_) {
      const size_t want = (bytes + 63) / 64 * 64;
      void* p = std::aligned_alloc(64, want);
      if (p == nullptr) throw std::bad_alloc();
      std::free(data_);
      data_ = p;
      size_ = want;
    }
    return data_;
  }
  template <typename T>
  T* get_as(size_t count) {
    return static_cast<T*>(get(count * sizeof(T)));
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace luzao::cpu
