// The dtype table, name/id lookups, row_bytes overflow checks and the errors of the generic
// quantize_row/dequantize_row entry points. Sizes are ggml's (see ggml-common.h block structs).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "tensor/dtype.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

struct Expected {
  uint32_t id;
  const char* name;
  int64_t block;
  size_t bytes;
};

// Hand-written from the GGUF spec / ggml: e.g. Q4_K = fp16 d, fp16 dmin, 12 scale bytes, 128 quant
// bytes = 144; Q8_K = fp32 d + 256 int8 + 16 int16 = 292.
constexpr Expected kExpected[] = {
    {0, "f32", 1, 4},       {1, "f16", 1, 2},       {2, "q4_0", 32, 18},    {3, "q4_1", 32, 20},
    {6, "q5_0", 32, 22},    {7, "q5_1", 32, 24},    {8, "q8_0", 32, 34},    {10, "q2_K", 256, 84},
    {11, "q3_K", 256, 110}, {12, "q4_K", 256, 144}, {13, "q5_K", 256, 176}, {14, "q6_K", 256, 210},
    {15, "q8_K", 256, 292}, {30, "bf16", 1, 2},
};

TEST(DType, TableMatchesGguf) {
  for (const Expected& e : kExpected) {
    const std::optional<DType> type = dtype_from_id(e.id);
    ASSERT_TRUE(type.has_value()) << e.name;
    EXPECT_EQ(static_cast<uint32_t>(*type), e.id);
    const DTypeInfo& info = dtype_info(*type);
    EXPECT_EQ(info.type, *type);
    EXPECT_EQ(info.name, e.name);
    EXPECT_EQ(dtype_name(*type), e.name);
    EXPECT_EQ(info.block_size, e.block) << e.name;
    EXPECT_EQ(info.block_bytes, e.bytes) << e.name;
  }
}

TEST(DType, UnknownIdsAreRejected) {
  // 4/5 were the removed Q4_2/Q4_3, 9 is Q8_1 (never stored in files), 16+ are IQ/TQ formats.
  for (uint32_t id : {4u, 5u, 9u, 16u, 20u, 29u, 31u, 39u, 1000u, 0xffffffffu}) {
    EXPECT_FALSE(dtype_from_id(id).has_value()) << id;
  }
}

TEST(DType, NamesAreCaseInsensitive) {
  EXPECT_EQ(dtype_from_name("q4_K"), DType::kQ4_K);
  EXPECT_EQ(dtype_from_name("Q4_K"), DType::kQ4_K);
  EXPECT_EQ(dtype_from_name("q4_k"), DType::kQ4_K);
  EXPECT_EQ(dtype_from_name("Q8_0"), DType::kQ8_0);
  EXPECT_EQ(dtype_from_name("BF16"), DType::kBF16);
  EXPECT_EQ(dtype_from_name("F32"), DType::kF32);
  EXPECT_EQ(dtype_from_name("q6_K"), DType::kQ6_K);
  for (const char* bad :
       {"", "q4", "q4_0 ", " q4_0", "q8_1", "fp16", "float32", "q4_00", "iq4_nl"}) {
    EXPECT_FALSE(dtype_from_name(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(DType, RowBytes) {
  EXPECT_EQ(row_bytes(DType::kF32, 576), 576u * 4);
  EXPECT_EQ(row_bytes(DType::kF16, 0), 0u);
  EXPECT_EQ(row_bytes(DType::kBF16, 7), 14u);
  EXPECT_EQ(row_bytes(DType::kQ4_0, 32 * 7), 7u * 18);
  EXPECT_EQ(row_bytes(DType::kQ8_0, 576), 18u * 34);
  EXPECT_EQ(row_bytes(DType::kQ4_K, 4096), 16u * 144);
  EXPECT_EQ(row_bytes(DType::kQ6_K, 256 * 3), 3u * 210);
  EXPECT_EQ(row_bytes(DType::kQ8_K, 256), 292u);
}

TEST(DType, RowBytesRejectsPartialBlocks) {
  EXPECT_FALSE(row_bytes(DType::kQ4_0, 33).has_value());
  EXPECT_FALSE(row_bytes(DType::kQ4_0, 16).has_value());
  EXPECT_FALSE(row_bytes(DType::kQ4_K, 576).has_value());  // 576 = 2.25 super-blocks
  EXPECT_FALSE(row_bytes(DType::kQ8_K, 1).has_value());
}

TEST(DType, RowBytesRejectsOverflow) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  EXPECT_FALSE(row_bytes(DType::kF32, uint64_t{1} << 62).has_value());
  EXPECT_EQ(row_bytes(DType::kF32, uint64_t{1} << 61), uint64_t{1} << 63);
  EXPECT_FALSE(row_bytes(DType::kF16, uint64_t{1} << 63).has_value());
  // 2^64 - 256 elements of Q8_K = (2^56 - 1) blocks of 292 bytes, about 2.1e19: does not fit.
  EXPECT_FALSE(row_bytes(DType::kQ8_K, kMax - 255).has_value());
  // 2^64 - 32 elements of Q4_0 = (2^59 - 1) blocks of 18 bytes, about 1.04e19: fits.
  EXPECT_EQ(row_bytes(DType::kQ4_0, kMax - 31), ((uint64_t{1} << 59) - 1) * 18);
  // The largest Q8_0 row that fits: floor((2^64 - 1) / 34) blocks.
  const uint64_t blocks = kMax / 34;
  EXPECT_EQ(row_bytes(DType::kQ8_0, blocks * 32), blocks * 34);
  EXPECT_FALSE(row_bytes(DType::kQ8_0, (blocks + 1) * 32).has_value());
  EXPECT_FALSE(row_bytes(static_cast<DType>(9), 32).has_value());  // not a DType value
}

TEST(DType, CanQuantize) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0,
                  DType::kQ5_1, DType::kQ8_0, DType::kQ2_K, DType::kQ3_K, DType::kQ4_K,
                  DType::kQ5_K, DType::kQ6_K, DType::kQ8_K}) {
    EXPECT_TRUE(can_quantize(t)) << dtype_name(t);
  }
  EXPECT_FALSE(can_quantize(static_cast<DType>(9)));  // Q8_1 is not a storage type
  for (DType t : {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ2_K,
                  DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    EXPECT_TRUE(uses_importance(t)) << dtype_name(t);
  }
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ8_K}) {
    EXPECT_FALSE(uses_importance(t)) << dtype_name(t);
  }
}

TEST(DType, DotActivationPairsAsLlamaCpp) {
  EXPECT_EQ(dot_activation(DType::kQ4_0), DotActivation::kQ8_0);
  EXPECT_EQ(dot_activation(DType::kQ5_0), DotActivation::kQ8_0);
  EXPECT_EQ(dot_activation(DType::kQ8_0), DotActivation::kQ8_0);
  EXPECT_EQ(dot_activation(DType::kQ4_1), DotActivation::kQ8_1);
  EXPECT_EQ(dot_activation(DType::kQ5_1), DotActivation::kQ8_1);
  for (DType t : {DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    EXPECT_EQ(dot_activation(t), DotActivation::kQ8_K) << dtype_name(t);
  }
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_K}) {
    EXPECT_EQ(dot_activation(t), DotActivation::kFloat) << dtype_name(t);
  }
}

ErrorKind kind_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.kind();
  }
  return ErrorKind::kInternal;  // no throw: the callers expect another kind and fail
}

TEST(DType, ConversionErrors) {
  std::vector<float> x(512, 1.0f);
  std::vector<uint8_t> out(4096);
  EXPECT_EQ(kind_of([&] { quantize_row(static_cast<DType>(9), x.data(), out.data(), 256); }),
            ErrorKind::kUnsupported);  // Q8_1: no storage quantizer
  EXPECT_EQ(kind_of([&] { quantize_row(DType::kQ4_K, x.data(), out.data(), 128); }),
            ErrorKind::kInvalidArgument);
  EXPECT_EQ(kind_of([&] { quantize_row(DType::kQ4_0, x.data(), out.data(), 33); }),
            ErrorKind::kInvalidArgument);
  EXPECT_EQ(kind_of([&] { quantize_row(DType::kQ8_K, x.data(), out.data(), 32); }),
            ErrorKind::kInvalidArgument);
  EXPECT_EQ(kind_of([&] { quantize_row(DType::kF16, x.data(), out.data(), -2); }),
            ErrorKind::kInvalidArgument);
  std::vector<float> y(512);
  EXPECT_EQ(kind_of([&] { dequantize_row(DType::kQ6_K, out.data(), y.data(), 100); }),
            ErrorKind::kInvalidArgument);
  EXPECT_EQ(kind_of([&] { dequantize_row(DType::kQ5_1, out.data(), y.data(), 48); }),
            ErrorKind::kInvalidArgument);
  try {
    quantize_row(DType::kQ4_0, x.data(), out.data(), 33);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q4_0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("33"), std::string::npos) << e.what();
  }
}

TEST(DType, FloatTypesRoundTripRows) {
  const std::vector<float> x = {1.0f, -2.5f, 0.0f, 65504.0f, 1e-8f, -3.14159f, 1e20f};
  std::vector<float> back(x.size());
  std::vector<uint8_t> buf(x.size() * 4);
  quantize_row(DType::kF32, x.data(), buf.data(), static_cast<int64_t>(x.size()));
  dequantize_row(DType::kF32, buf.data(), back.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(back, x);
  quantize_row(DType::kF16, x.data(), buf.data(), static_cast<int64_t>(x.size()));
  dequantize_row(DType::kF16, buf.data(), back.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], -2.5f);
  EXPECT_EQ(back[3], 65504.0f);
  EXPECT_EQ(back[4], 0.0f);  // below half the smallest fp16 subnormal (2^-25)
  EXPECT_NEAR(back[5], -3.14159f, 1e-3f);
  EXPECT_TRUE(std::isinf(back[6]));
  quantize_row(DType::kBF16, x.data(), buf.data(), static_cast<int64_t>(x.size()));
  dequantize_row(DType::kBF16, buf.data(), back.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(back[1], -2.5f);
  EXPECT_EQ(back[3], 65536.0f);  // 65504 has more bits than bf16's 8; nearest is 2^16
  EXPECT_NEAR(back[6], 1e20f, 1e20f / 128);
  EXPECT_NEAR(back[4], 1e-8f, 1e-8f / 128);
}

}  // namespace
}  // namespace luzao
