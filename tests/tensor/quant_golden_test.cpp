// luzao's quantizers and dequantizers against golden vectors from the gguf Python package and
// llama.cpp's reference code (scripts/gen_quant_vectors.py): bytes and floats must match exactly.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "quant_vectors.h"
#include "tensor/blocks.h"
#include "tensor/dtype.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

using testing::load_quant_vectors;
using testing::QuantVectors;

const QuantVectors& vectors() {
  static const QuantVectors v = load_quant_vectors();
  return v;
}

// Index of the first differing byte, or -1.
int64_t first_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  }
  return a.size() == b.size() ? -1 : static_cast<int64_t>(std::min(a.size(), b.size()));
}

// Bit-exact float comparison (0.0 and -0.0 differ; the references produce the same zeros).
void expect_same_floats(const std::vector<float>& want, const std::vector<float>& got,
                        const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  int64_t mismatches = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::bit_cast<uint32_t>(want[i]) != std::bit_cast<uint32_t>(got[i])) {
      if (++mismatches <= 5) {
        ADD_FAILURE() << what << ": element " << i << " want " << want[i] << " got " << got[i];
      }
    }
  }
  EXPECT_EQ(mismatches, 0) << what;
}

TEST(QuantGolden, TableMatchesGgml) {
  const std::vector<int64_t> table = vectors().ints("table");
  const std::vector<uint8_t>& names_raw = vectors().bytes("names");
  std::vector<std::string> names;
  std::string cur;
  for (uint8_t c : names_raw) {
    if (c == '\n') {
      names.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(static_cast<char>(c));
    }
  }
  names.push_back(cur);
  ASSERT_EQ(table.size(), names.size() * 3);
  int public_types = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const auto id = static_cast<uint32_t>(table[3 * i]);
    const int64_t block = table[3 * i + 1];
    const auto bytes = static_cast<uint64_t>(table[3 * i + 2]);
    if (names[i] == "q8_1") {  // internal activation format, not a DType
      EXPECT_FALSE(dtype_from_id(id).has_value());
      EXPECT_EQ(block, kQK8_1);
      EXPECT_EQ(bytes, sizeof(BlockQ8_1));
      continue;
    }
    const std::optional<DType> type = dtype_from_id(id);
    ASSERT_TRUE(type.has_value()) << names[i];
    ++public_types;
    EXPECT_EQ(dtype_info(*type).name, names[i]);
    EXPECT_EQ(dtype_info(*type).block_size, block) << names[i];
    EXPECT_EQ(dtype_info(*type).block_bytes, bytes) << names[i];
    EXPECT_EQ(dtype_from_name(names[i]), type);
  }
  EXPECT_EQ(public_types, 14);
}

struct QuantCase {
  std::string name;
  DType type;
};

// gtest looks this name up. NOLINTNEXTLINE(readability-identifier-naming)
void PrintTo(const QuantCase& c, std::ostream* os) {
  *os << c.name;
}

class QuantizeGolden : public ::testing::TestWithParam<QuantCase> {};

TEST_P(QuantizeGolden, BytesIdenticalToReference) {
  const QuantCase& c = GetParam();
  const std::vector<float> x = vectors().floats("input");
  const std::vector<uint8_t>& want = vectors().bytes("quant/" + c.name);
  const auto n = static_cast<int64_t>(x.size());
  ASSERT_EQ(want.size(), row_bytes(c.type, static_cast<uint64_t>(n)).value());
  std::vector<uint8_t> got(want.size(), 0xAB);
  quantize_row(c.type, x.data(), got.data(), n);
  const int64_t diff = first_diff(want, got);
  EXPECT_EQ(diff, -1) << c.name << ": first differing byte " << diff << " (block "
                      << diff / static_cast<int64_t>(dtype_info(c.type).block_bytes) << ")";
}

TEST_P(QuantizeGolden, DequantizeIdenticalToReference) {
  const QuantCase& c = GetParam();
  const std::vector<uint8_t>& q = vectors().bytes("quant/" + c.name);
  const std::vector<float> want = vectors().floats("dequant/" + c.name);
  std::vector<float> got(want.size());
  dequantize_row(c.type, q.data(), got.data(), static_cast<int64_t>(want.size()));
  expect_same_floats(want, got, c.name);
}

INSTANTIATE_TEST_SUITE_P(
    Formats, QuantizeGolden,
    ::testing::Values(QuantCase{"f16", DType::kF16}, QuantCase{"bf16", DType::kBF16},
                      QuantCase{"q4_0", DType::kQ4_0}, QuantCase{"q4_1", DType::kQ4_1},
                      QuantCase{"q5_0", DType::kQ5_0}, QuantCase{"q5_1", DType::kQ5_1},
                      QuantCase{"q8_0", DType::kQ8_0}, QuantCase{"q8_K", DType::kQ8_K}),
    [](const ::testing::TestParamInfo<QuantCase>& info) { return info.param.name; });

TEST(QuantGolden, Q8_1IdenticalToReference) {
  const std::vector<float> x = vectors().floats("input");
  const std::vector<uint8_t>& want = vectors().bytes("quant/q8_1");
  const auto n = static_cast<int64_t>(x.size());
  std::vector<BlockQ8_1> blocks(static_cast<size_t>(n / kQK8_1));
  ASSERT_EQ(want.size(), blocks.size() * sizeof(BlockQ8_1));
  quantize_row_q8_1(x.data(), blocks.data(), n);
  std::vector<uint8_t> got(want.size());
  std::memcpy(got.data(), blocks.data(), got.size());
  EXPECT_EQ(first_diff(want, got), -1);

  std::vector<float> deq(x.size());
  dequantize_row_q8_1(blocks.data(), deq.data(), n);
  expect_same_floats(vectors().floats("dequant/q8_1"), deq, "q8_1");
}

class BlocksGolden : public ::testing::TestWithParam<QuantCase> {};

// Random but valid blocks (every bit pattern of the quants, random fp16 scales): the scalar
// dequantizer must reproduce the references exactly, K-quants included.
TEST_P(BlocksGolden, DequantizeIdenticalToReference) {
  const QuantCase& c = GetParam();
  const std::vector<uint8_t>& data = vectors().bytes("blocks/" + c.name);
  const std::vector<float> want = vectors().floats("blocks_dequant/" + c.name);
  const auto n = static_cast<int64_t>(want.size());
  ASSERT_EQ(data.size(), row_bytes(c.type, static_cast<uint64_t>(n)).value());
  std::vector<float> got(want.size());
  dequantize_row(c.type, data.data(), got.data(), n);
  expect_same_floats(want, got, c.name);
}

INSTANTIATE_TEST_SUITE_P(
    Formats, BlocksGolden,
    ::testing::Values(QuantCase{"q4_0", DType::kQ4_0}, QuantCase{"q4_1", DType::kQ4_1},
                      QuantCase{"q5_0", DType::kQ5_0}, QuantCase{"q5_1", DType::kQ5_1},
                      QuantCase{"q8_0", DType::kQ8_0}, QuantCase{"q2_K", DType::kQ2_K},
                      QuantCase{"q3_K", DType::kQ3_K}, QuantCase{"q4_K", DType::kQ4_K},
                      QuantCase{"q5_K", DType::kQ5_K}, QuantCase{"q6_K", DType::kQ6_K},
                      QuantCase{"q8_K", DType::kQ8_K}),
    [](const ::testing::TestParamInfo<QuantCase>& info) { return info.param.name; });

TEST(QuantGolden, Q8_1BlocksDequantize) {
  const std::vector<uint8_t>& data = vectors().bytes("blocks/q8_1");
  const std::vector<float> want = vectors().floats("blocks_dequant/q8_1");
  std::vector<BlockQ8_1> blocks(data.size() / sizeof(BlockQ8_1));
  std::memcpy(blocks.data(), data.data(), data.size());
  std::vector<float> got(want.size());
  dequantize_row_q8_1(blocks.data(), got.data(), static_cast<int64_t>(got.size()));
  expect_same_floats(want, got, "q8_1");
}

}  // namespace
}  // namespace luzao
