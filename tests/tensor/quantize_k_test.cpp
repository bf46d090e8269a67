// K-quant and importance-weighted quantizers against llama.cpp's own output
// (tests/tensor/gen_kquant_vectors.py), plus round-trip error bounds and the quantize_rows
// contract.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "quant_vectors.h"
#include "tensor/dtype.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

constexpr int64_t kRows = 8;
constexpr int64_t kCols = 512;

const testing::QuantVectors& vectors() {
  static const testing::QuantVectors v =
      testing::load_quant_vectors(LUZAO_SOURCE_DIR "/tests/tensor/data/kquant_vectors.bin");
  return v;
}

struct Case {
  const char* name;
  DType type;
};

const Case kKQuants[] = {{"q2_K", DType::kQ2_K},
                         {"q3_K", DType::kQ3_K},
                         {"q4_K", DType::kQ4_K},
                         {"q5_K", DType::kQ5_K},
                         {"q6_K", DType::kQ6_K}};
const Case kWeighted[] = {{"q2_K", DType::kQ2_K}, {"q3_K", DType::kQ3_K}, {"q4_K", DType::kQ4_K},
                          {"q5_K", DType::kQ5_K}, {"q6_K", DType::kQ6_K}, {"q4_0", DType::kQ4_0},
                          {"q4_1", DType::kQ4_1}, {"q5_0", DType::kQ5_0}, {"q5_1", DType::kQ5_1}};

// Reports the first differing block (row, block index) to make a mismatch easy to locate.
void expect_same_bytes(const std::vector<uint8_t>& want, const std::vector<uint8_t>& got,
                       DType type, const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  const size_t block = dtype_info(type).block_bytes;
  int mismatched_blocks = 0;
  for (size_t b = 0; b < want.size() / block; ++b) {
    for (size_t i = 0; i < block; ++i) {
      if (want[b * block + i] != got[b * block + i]) {
        if (++mismatched_blocks <= 3) {
          ADD_FAILURE() << what << ": block " << b << " byte " << i << " want "
                        << int{want[b * block + i]} << " got " << int{got[b * block + i]};
        }
        break;
      }
    }
  }
  EXPECT_EQ(mismatched_blocks, 0) << what;
}

TEST(KQuant, ReferenceMatchesLlamaCpp) {
  const std::vector<float> x = vectors().floats("input");
  ASSERT_EQ(x.size(), static_cast<size_t>(kRows * kCols));
  for (const Case& c : kKQuants) {
    const size_t rb = *row_bytes(c.type, kCols);
    std::vector<uint8_t> got(rb * kRows);
    for (int64_t r = 0; r < kRows; ++r) {
      quantize_row(c.type, x.data() + r * kCols, got.data() + r * rb, kCols);
    }
    expect_same_bytes(vectors().bytes(std::string("ref/") + c.name), got, c.type, c.name);
  }
}

TEST(KQuant, WeightedMatchesLlamaCppImatrixPath) {
  const std::vector<float> x = vectors().floats("input");
  const std::vector<float> qw = vectors().floats("importance");
  ASSERT_EQ(qw.size(), static_cast<size_t>(kCols));
  for (const Case& c : kWeighted) {
    std::vector<uint8_t> got(*row_bytes(c.type, kCols) * kRows);
    quantize_rows(c.type, x.data(), got.data(), kRows, kCols, qw);
    expect_same_bytes(vectors().bytes(std::string("imat/") + c.name), got, c.type,
                      std::string("imatrix ") + c.name);
  }
}

// Relative RMS error of a round trip on Gaussian data; bounds sit well above what each format
// achieves (about 2^-bits) and well below what a broken packer produces (~1).
TEST(KQuant, RoundTripErrorShrinksWithBits) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(4096);
  for (float& v : x) v = normal(rng);
  const std::pair<DType, double> bounds[] = {{DType::kQ2_K, 0.45},
                                             {DType::kQ3_K, 0.22},
                                             {DType::kQ4_K, 0.11},
                                             {DType::kQ5_K, 0.055},
                                             {DType::kQ6_K, 0.03}};
  double previous = 1.0;
  for (const auto& [type, bound] : bounds) {
    std::vector<uint8_t> q(*row_bytes(type, x.size()));
    std::vector<float> y(x.size());
    quantize_row(type, x.data(), q.data(), static_cast<int64_t>(x.size()));
    dequantize_row(type, q.data(), y.data(), static_cast<int64_t>(x.size()));
    double err = 0;
    double norm = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      err += (x[i] - y[i]) * (x[i] - y[i]);
      norm += x[i] * x[i];
    }
    const double rel = std::sqrt(err / norm);
    EXPECT_LT(rel, bound) << dtype_name(type);
    EXPECT_LT(rel, previous) << dtype_name(type) << " is not better than the format below it";
    previous = rel;
  }
}

// Importance weights move error away from the columns that matter: the weighted error with the
// imatrix path is lower than with the plain reference path, for every weighted format.
TEST(KQuant, ImportanceLowersWeightedError) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::exponential_distribution<float> expo(1.0f);
  const int64_t cols = 1024;
  const int64_t rows = 16;
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (float& v : x) v = normal(rng);
  std::vector<float> qw(static_cast<size_t>(cols));
  for (float& v : qw) v = std::pow(expo(rng), 3.0f);  // a few columns dominate
  for (const Case& c : kWeighted) {
    std::vector<uint8_t> q(*row_bytes(c.type, cols) * rows);
    std::vector<float> y(x.size());
    auto weighted_error = [&](std::span<const float> importance) {
      quantize_rows(c.type, x.data(), q.data(), rows, cols, importance);
      const size_t rb = *row_bytes(c.type, cols);
      double e = 0;
      for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(c.type, q.data() + r * rb, y.data() + r * cols, cols);
      }
      for (size_t i = 0; i < x.size(); ++i) e += qw[i % cols] * (x[i] - y[i]) * (x[i] - y[i]);
      return e;
    };
    const double plain = weighted_error({});
    const double weighted = weighted_error(qw);
    EXPECT_LT(weighted, plain) << c.name;
  }
}

TEST(KQuant, QuantizeRowsChecksItsArguments) {
  std::vector<float> x(256, 1.0f);
  std::vector<uint8_t> q(1024);
  std::vector<float> qw(128, 1.0f);
  EXPECT_THROW(quantize_rows(DType::kQ4_K, x.data(), q.data(), 1, 128, {}), Error);  // < 256
  EXPECT_THROW(quantize_rows(DType::kQ4_K, x.data(), q.data(), 1, 256, qw), Error);  // 128 != 256
  // Formats without a weighted path ignore the importance vector.
  std::vector<uint8_t> a(*row_bytes(DType::kQ8_0, 256));
  std::vector<uint8_t> b(a.size());
  std::vector<float> qw256(256, 2.0f);
  quantize_rows(DType::kQ8_0, x.data(), a.data(), 1, 256, qw256);
  quantize_row(DType::kQ8_0, x.data(), b.data(), 256);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace luzao
