// Packing of the 32-element block formats into 16-row groups (layouts below), and the cache of
// packed matrices kept by mapped weight buffers.
//
// Per 32-element block, for 16 rows j (u16 = fp16 bits):
//   Q4_0: d[16] u16, nibbles[4][16][4]                      (288 bytes = 16 x 18)
//   Q4_1: d[16], m[16], nibbles[4][16][4]                   (320 bytes = 16 x 20)
//   Q5_0: d[16], fifth_bits[8] u64, nibbles[4][16][4]       (352 bytes = 16 x 22)
//   Q5_1: d[16], m[16], fifth_bits[8] u64, nibbles[4][16][4] (384 bytes = 16 x 24)
//   Q8_0: d[16], codes[8][16][4] stored as code + 128       (544 bytes = 16 x 34)
// nibbles[c][j][i] is byte 4c + i of row j's qs: low nibble element 4c + i, high nibble element
// 16 + 4c + i. fifth_bits[2c + h] holds in bit 4j + i the fifth bit of element 16h + 4c + i of
// row j. codes[c][j][i] is element 4c + i of row j.
//   F16:  element e of the 16 rows as 16 consecutive fp16 values (1024 bytes per 32 elements).
// Per 256-element super-block, for 16 rows j:
//   Q4_K: d[16], dmin[16], sc[8][16] u8, min[8][16] u8, nibbles[32][16][4]     (2368 = 16 x 148)
//         nibbles[8c + i][j] = bytes 32c + 4i .. +3 of row j's qs: low nibbles are elements
//         64c + 4i.. (group 2c), high nibbles elements 64c + 32 + 4i.. (group 2c + 1).
//   Q6_K: d[16], sc[16][16] i8, nibbles[32][16][4], high[32][4] u64           (3360 = 16 x 210)
//         codes q in 0..63: nibbles[c][j] low = q & 15 of elements 4c.., high = of 128 + 4c..;
//         high[c] = {bit 4 of elements 4c.., bit 5 of them, bit 4 of 128 + 4c.., bit 5} with
//         bit 4j + i for row j, element + i.
#include "backend/cpu/packed.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"
#include "tensor/blocks.h"

namespace luzao::cpu {
namespace {

template <typename Block>
const Block& block_of(const std::byte* src, size_t stride, int j, int64_t b) {
  return reinterpret_cast<const Block*>(src + static_cast<size_t>(j) * stride)[b];
}

template <typename Block>
void put_scales(const std::byte* src, size_t stride, int64_t b, std::byte*& out, bool with_min) {
  for (int j = 0; j < kPackRows; ++j)
    std::memcpy(out + 2 * j, &block_of<Block>(src, stride, j, b).d, 2);
  out += 32;
  if constexpr (requires(Block x) { x.m; }) {
    if (with_min) {
      for (int j = 0; j < kPackRows; ++j) {
        std::memcpy(out + 2 * j, &block_of<Block>(src, stride, j, b).m, 2);
      }
      out += 32;
    }
  }
}

template <typename Block>
void put_fifth_bits(const std::byte* src, size_t stride, int64_t b, std::byte*& out) {
  uint64_t masks[8] = {};
  for (int j = 0; j < kPackRows; ++j) {
    uint32_t qh;
    std::memcpy(&qh, block_of<Block>(src, stride, j, b).qh, 4);
    for (int c = 0; c < 4; ++c) {
      for (int h = 0; h < 2; ++h) {
        for (int i = 0; i < 4; ++i) {
          masks[2 * c + h] |= uint64_t{(qh >> (16 * h + 4 * c + i)) & 1u} << (4 * j + i);
        }
      }
    }
  }
  std::memcpy(out, masks, sizeof(masks));
  out += sizeof(masks);
}

template <typename Block>
void put_nibbles(const std::byte* src, size_t stride, int64_t b, std::byte*& out) {
  for (int c = 0; c < 4; ++c) {
    for (int j = 0; j < kPackRows; ++j) {
      std::memcpy(out + 64 * c + 4 * j, block_of<Block>(src, stride, j, b).qs + 4 * c, 4);
    }
  }
  out += 256;
}

size_t block_bytes(DType dtype) {
  switch (dtype) {
    case DType::kQ4_0:
      return 288;
    case DType::kQ4_1:
      return 320;
    case DType::kQ5_0:
      return 352;
    case DType::kQ5_1:
      return 384;
    case DType::kQ8_0:
      return 544;
    case DType::kF16:
      return 1024;
    case DType::kQ4_K:
      return 2368 / 8;
    case DType::kQ6_K:
      return 3360 / 8;
    default:
      return 0;
  }
}

}  // namespace

namespace {

void pack_q4_K(const std::byte* src, size_t stride, int64_t cols, std::byte* out) {
  for (int64_t b = 0; b < cols / kQK_K; ++b, out += 2368) {
    for (int j = 0; j < kPackRows; ++j) {
      const auto& x = block_of<BlockQ4_K>(src, stride, j, b);
      std::memcpy(out + 2 * j, &x.d, 2);
      std::memcpy(out + 32 + 2 * j, &x.dmin, 2);
      for (int g = 0; g < 8; ++g) {
        uint8_t sc = 0, m = 0;
        q4_k_scale_min(x.scales, g, &sc, &m);
        out[64 + 16 * g + j] = static_cast<std::byte>(sc);
        out[192 + 16 * g + j] = static_cast<std::byte>(m);
      }
      for (int q = 0; q < 32; ++q) std::memcpy(out + 320 + 64 * q + 4 * j, x.qs + 4 * q, 4);
    }
  }
}

void pack_q6_K(const std::byte* src, size_t stride, int64_t cols, std::byte* out) {
  for (int64_t b = 0; b < cols / kQK_K; ++b, out += 3360) {
    uint64_t high[32][4] = {};
    for (int j = 0; j < kPackRows; ++j) {
      const auto& x = block_of<BlockQ6_K>(src, stride, j, b);
      std::memcpy(out + 2 * j, &x.d, 2);
      for (int g = 0; g < 16; ++g) out[32 + 16 * g + j] = static_cast<std::byte>(x.scales[g]);
      uint8_t q[kQK_K];  // the unsigned 6-bit codes, in element order
      for (int h = 0; h < 2; ++h) {
        for (int s = 0; s < 4; ++s) {
          for (int l = 0; l < 32; ++l) {
            const int lo = (x.ql[64 * h + 32 * (s & 1) + l] >> (s >= 2 ? 4 : 0)) & 0xF;
            const int hi = (x.qh[32 * h + l] >> (2 * s)) & 3;
            q[128 * h + 32 * s + l] = static_cast<uint8_t>(lo | hi << 4);
          }
        }
      }
      for (int c = 0; c < 32; ++c) {
        for (int i = 0; i < 4; ++i) {
          const uint8_t a = q[4 * c + i], z = q[128 + 4 * c + i];
          out[288 + 64 * c + 4 * j + i] = static_cast<std::byte>((a & 0xF) | (z & 0xF) << 4);
          const int bit = 4 * j + i;
          high[c][0] |= uint64_t{(a >> 4) & 1u} << bit;
          high[c][1] |= uint64_t{(a >> 5) & 1u} << bit;
          high[c][2] |= uint64_t{(z >> 4) & 1u} << bit;
          high[c][3] |= uint64_t{(z >> 5) & 1u} << bit;
        }
      }
    }
    std::memcpy(out + 2336, high, sizeof(high));
  }
}

}  // namespace

void pack_group(DType dtype, const std::byte* src, size_t stride, int64_t cols, std::byte* dst) {
  if (dtype == DType::kQ4_K) return pack_q4_K(src, stride, cols, dst);
  if (dtype == DType::kQ6_K) return pack_q6_K(src, stride, cols, dst);
  if (dtype == DType::kF16) {
    for (int64_t e = 0; e < cols; ++e) {
      for (int j = 0; j < kPackRows; ++j) {
        std::memcpy(dst + 2 * (e * kPackRows + j), src + static_cast<size_t>(j) * stride + 2 * e,
                    2);
      }
    }
    return;
  }
  std::byte* out = dst;
  for (int64_t b = 0; b < cols / 32; ++b) {
    switch (dtype) {
      case DType::kQ4_0:
        put_scales<BlockQ4_0>(src, stride, b, out, false);
        put_nibbles<BlockQ4_0>(src, stride, b, out);
        break;
      case DType::kQ4_1:
        put_scales<BlockQ4_1>(src, stride, b, out, true);
        put_nibbles<BlockQ4_1>(src, stride, b, out);
        break;
      case DType::kQ5_0:
        put_scales<BlockQ5_0>(src, stride, b, out, false);
        put_fifth_bits<BlockQ5_0>(src, stride, b, out);
        put_nibbles<BlockQ5_0>(src, stride, b, out);
        break;
      case DType::kQ5_1:
        put_scales<BlockQ5_1>(src, stride, b, out, true);
        put_fifth_bits<BlockQ5_1>(src, stride, b, out);
        put_nibbles<BlockQ5_1>(src, stride, b, out);
        break;
      case DType::kQ8_0:
        put_scales<BlockQ8_0>(src, stride, b, out, false);
        for (int c = 0; c < 8; ++c) {
          for (int j = 0; j < kPackRows; ++j) {
            const int8_t* qs = block_of<BlockQ8_0>(src, stride, j, b).qs + 4 * c;
            for (int i = 0; i < 4; ++i) {
              out[64 * c + 4 * j + i] = static_cast<std::byte>(static_cast<uint8_t>(qs[i]) ^ 0x80u);
            }
          }
        }
        out += 512;
        break;
      default:
        LUZAO_CHECK(false);
    }
  }
}

PackedFormat packed_format(DType dtype, const CpuFeatures& features) {
  PackedFormat f;
  if (!features.avx512_vnni) return f;
  f.gemm = packed_gemm_avx512(dtype);
  if (f.gemm != nullptr) f.block_bytes = block_bytes(dtype);
  return f;
}

PackedMatrix::PackedMatrix(DType dtype, int64_t rows, int64_t cols, const PackedFormat& format)
    : dtype_(dtype),
      rows_(rows),
      cols_(cols),
      group_bytes_(static_cast<size_t>(cols / 32) * format.block_bytes),
      gemm_(format.gemm) {
  const size_t bytes = group_bytes_ * static_cast<size_t>(rows / kPackRows);
  data_ = static_cast<std::byte*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
  if (data_ == nullptr) throw std::bad_alloc();
}

PackedMatrix::~PackedMatrix() {
  std::free(data_);
}

const PackedMatrix* PackedWeightBuffer::packed(const TensorView& w, const CpuFeatures& features) {
  std::lock_guard lock(mutex_);
  const Key key{w.offset, w.dtype, w.rows, w.cols, w.row_stride};
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second.get();
  std::unique_ptr<PackedMatrix> m;
  const PackedFormat format = packed_format(w.dtype, features);
  const int64_t rows = w.rows / kPackRows * kPackRows;
  if (format.gemm != nullptr && rows > 0 && w.cols % 32 == 0) {
    m = std::make_unique<PackedMatrix>(w.dtype, rows, w.cols, format);
    const auto* base = static_cast<const std::byte*>(data_) + w.offset;
    for (int64_t g = 0; g < rows / kPackRows; ++g) {
      pack_group(w.dtype, base + static_cast<size_t>(g) * kPackRows * w.row_stride, w.row_stride,
                 w.cols, m->group(g));
    }
  }
  return cache_.emplace(key, std::move(m)).first->second.get();
}

}  // namespace luzao::cpu
