// Every op on small inputs whose results are worked out by hand (or by the textbook formula in
// the test), run on both the reference and the cpu backend. Inputs are chosen so that the cpu
// backend's activation quantization is exact (integers with a 127 in each block).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>

#include "backend/registry.h"
#include "backend_test_util.h"
#include "core/half.h"
#include "tensor/blocks.h"

namespace luzao {
namespace {

using test::make_f32;
using test::make_tensor;
using test::read_f32;

class OpsByHand : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    dev_ = open_device(GetParam(), DeviceOptions{.threads = 3});
    stream_ = dev_->create_stream();
  }
  void expect_near_all(const std::vector<float>& got, const std::vector<float>& want,
                       double tol = 1e-5) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::fabs(static_cast<double>(want[i]))))
          << "element " << i;
    }
  }
  std::unique_ptr<Device> dev_;
  std::unique_ptr<Stream> stream_;
};

TEST_P(OpsByHand, GetRowsF32AndF16) {
  auto table = make_f32(*dev_, 3, 2, {1, 2, 3, 4, 5, 6}, /*pad=*/8);
  auto out = make_f32(*dev_, 3, 2, {});
  const std::vector<int32_t> ids = {2, 0, 2};
  stream_->get_rows(table.view, ids, out.view);
  expect_near_all(read_f32(*dev_, out), {5, 6, 1, 2, 5, 6}, 0);

  const std::vector<uint16_t> h = {fp32_to_fp16(1.5f), fp32_to_fp16(-2.25f), fp32_to_fp16(0.0f),
                                   fp32_to_fp16(65504.0f)};
  auto t16 = make_tensor(*dev_, DType::kF16, 2, 2, h.data());
  auto out16 = make_f32(*dev_, 2, 2, {});
  const std::vector<int32_t> ids16 = {1, 0};
  stream_->get_rows(t16.view, ids16, out16.view);
  expect_near_all(read_f32(*dev_, out16), {0.0f, 65504.0f, 1.5f, -2.25f}, 0);
}

TEST_P(OpsByHand, GetRowsQ8_0) {
  BlockQ8_0 rows[2];
  for (int r = 0; r < 2; ++r) {
    rows[r].d = fp32_to_fp16(r == 0 ? 0.5f : -2.0f);
    for (int j = 0; j < 32; ++j) rows[r].qs[j] = static_cast<int8_t>(j - 16);
  }
  auto table = make_tensor(*dev_, DType::kQ8_0, 2, 32, rows);
  auto out = make_f32(*dev_, 1, 32, {});
  const std::vector<int32_t> ids = {1};
  stream_->get_rows(table.view, ids, out.view);
  std::vector<float> want(32);
  for (int j = 0; j < 32; ++j) want[j] = -2.0f * static_cast<float>(j - 16);
  expect_near_all(read_f32(*dev_, out), want, 0);
}

TEST_P(OpsByHand, RmsNorm) {
  // rows: [3, 4] (mean square 12.5), [2, -2] with eps 4 below; weight [1, 2].
  auto x = make_f32(*dev_, 2, 2, {3, 4, 1, 1});
  auto w = make_f32(*dev_, 1, 2, {1, 2});
  auto out = make_f32(*dev_, 2, 2, {});
  stream_->rms_norm(x.view, w.view, 0.0f, out.view);
  const double r = std::sqrt(12.5);
  expect_near_all(read_f32(*dev_, out),
                  {static_cast<float>(3 / r), static_cast<float>(8 / r), 1, 2});

  auto x2 = make_f32(*dev_, 1, 2, {2, -2});
  auto out2 = make_f32(*dev_, 1, 2, {});
  stream_->rms_norm(x2.view, w.view, 4.0f, out2.view);  // 2 / sqrt(4 + 4)
  expect_near_all(read_f32(*dev_, out2), {static_cast<float>(2 / std::sqrt(8.0)),
                                          static_cast<float>(-4 / std::sqrt(8.0))});
}

TEST_P(OpsByHand, RmsNormAndSwiGluInPlace) {
  auto x = make_f32(*dev_, 1, 2, {3, 4});
  auto w = make_f32(*dev_, 1, 2, {1, 2});
  stream_->rms_norm(x.view, w.view, 0.0f, x.view);
  const double r = std::sqrt(12.5);
  expect_near_all(read_f32(*dev_, x), {static_cast<float>(3 / r), static_cast<float>(8 / r)});
  auto g = make_f32(*dev_, 1, 2, {0, 2});
  auto u = make_f32(*dev_, 1, 2, {5, 3});
  stream_->swiglu(g.view, u.view, g.view);
  expect_near_all(read_f32(*dev_, g), {0, static_cast<float>(6 / (1 + std::exp(-2.0)))});
}

TEST_P(OpsByHand, MatMulF32) {
  auto x = make_f32(*dev_, 2, 3, {1, 2, 3, 4, 5, 6});
  auto w = make_f32(*dev_, 2, 3, {1, 0, -1, 0.5f, 0.5f, 0.5f}, /*pad=*/4);
  auto out = make_f32(*dev_, 2, 2, {});
  stream_->matmul(x.view, w.view, out.view);
  expect_near_all(read_f32(*dev_, out), {-2, 3, -2, 7.5f});
}

// x = [127, 1, 2, ..., 31] per block: exact in Q8_0/Q8_1 (d = 1).
std::vector<float> exact_activation(int64_t k) {
  std::vector<float> x(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) x[j] = (j % 32 == 0) ? 127.0f : static_cast<float>(j % 32);
  return x;
}

TEST_P(OpsByHand, MatMulLegacyQuants) {
  const std::vector<float> xs = exact_activation(64);
  const double sum_x = std::accumulate(xs.begin(), xs.end(), 0.0);  // 2 * (127 + 465)
  auto x = make_f32(*dev_, 1, 64, xs);

  // Q4_0: d = 0.5, every nibble 11 -> each weight is 0.5 * (11 - 8) = 1.5.
  BlockQ4_0 q40[2];
  for (auto& b : q40) {
    b.d = fp32_to_fp16(0.5f);
    std::memset(b.qs, 0xBB, sizeof(b.qs));
  }
  // Q4_1: d = 0.25, m = -1, low nibble 4 (elements 0..15) -> 0, high nibble 12 (16..31) -> 2.
  BlockQ4_1 q41[2];
  for (auto& b : q41) {
    b.d = fp32_to_fp16(0.25f);
    b.m = fp32_to_fp16(-1.0f);
    std::memset(b.qs, 0xC4, sizeof(b.qs));
  }
  // Q5_0: d = 1, nibble 0, high bit set for elements 0..15 only -> 16 - 16 = 0, else -16.
  BlockQ5_0 q50[2];
  for (auto& b : q50) {
    b.d = fp32_to_fp16(1.0f);
    const uint32_t qh = 0x0000FFFFu;
    std::memcpy(b.qh, &qh, 4);
    std::memset(b.qs, 0, sizeof(b.qs));
  }
  // Q5_1: d = 1, m = 0.5, q = 1 for every element (low nibble 1, high nibble 1, no high bits).
  BlockQ5_1 q51[2];
  for (auto& b : q51) {
    b.d = fp32_to_fp16(1.0f);
    b.m = fp32_to_fp16(0.5f);
    std::memset(b.qh, 0, 4);
    std::memset(b.qs, 0x11, sizeof(b.qs));
  }
  // Q8_0: d = 0.125, q = 8 -> 1.
  BlockQ8_0 q80[2];
  for (auto& b : q80) {
    b.d = fp32_to_fp16(0.125f);
    std::memset(b.qs, 8, sizeof(b.qs));
  }

  // Per-block sums of x over the first and second half of a block.
  double lo = 0, hi = 0;
  for (int j = 0; j < 64; ++j) ((j % 32) < 16 ? lo : hi) += xs[j];
  struct Case {
    DType type;
    const void* data;
    double want;
  };
  const Case cases[] = {
      {DType::kQ4_0, q40, 1.5 * sum_x}, {DType::kQ4_1, q41, 2.0 * hi},
      {DType::kQ5_0, q50, -16.0 * hi},  {DType::kQ5_1, q51, 1.5 * sum_x},
      {DType::kQ8_0, q80, sum_x},
  };
  for (const Case& c : cases) {
    auto w = make_tensor(*dev_, c.type, 1, 64, c.data);
    auto out = make_f32(*dev_, 1, 1, {});
    stream_->matmul(x.view, w.view, out.view);
    EXPECT_NEAR(read_f32(*dev_, out)[0], c.want, 1e-4 * std::fabs(c.want)) << dtype_name(c.type);
  }
}

TEST_P(OpsByHand, MatMulQ4_K) {
  // d = dmin = 1; every group has scale 1 and min 1; qs bytes 0x53 -> even groups (low nibbles)
  // hold 3 - 1 = 2, odd groups (high nibbles) hold 5 - 1 = 4.
  BlockQ4_K b{};
  b.d = fp32_to_fp16(1.0f);
  b.dmin = fp32_to_fp16(1.0f);
  const uint8_t scales[12] = {1, 1, 1, 1, 1, 1, 1, 1, 0x11, 0x11, 0x11, 0x11};
  std::memcpy(b.scales, scales, 12);
  std::memset(b.qs, 0x53, sizeof(b.qs));
  auto w = make_tensor(*dev_, DType::kQ4_K, 1, 256, &b);
  std::vector<float> xs(256, 1.0f);
  for (int j = 0; j < 256; ++j) {
    if ((j / 32) % 2 == 1) xs[j] = -1.0f;  // odd groups; +-1 is exact in Q8_K
  }
  auto x = make_f32(*dev_, 1, 256, xs);
  auto out = make_f32(*dev_, 1, 1, {});
  stream_->matmul(x.view, w.view, out.view);
  EXPECT_NEAR(read_f32(*dev_, out)[0], 128 * 2.0 - 128 * 4.0, 1e-3);
  std::fill(xs.begin(), xs.end(), 1.0f);
  auto x2 = make_f32(*dev_, 1, 256, xs);
  stream_->matmul(x2.view, w.view, out.view);
  EXPECT_NEAR(read_f32(*dev_, out)[0], 128 * 2.0 + 128 * 4.0, 1e-3);
}

TEST_P(OpsByHand, RopeNormalAndNeox) {
  const double c1 = std::cos(1.0), s1 = std::sin(1.0);
  const double c2 = std::cos(0.01), s2 = std::sin(0.01);  // 1 * 10000^(-2/4)
  {
    auto x = make_f32(*dev_, 2, 4, {1, 0, 1, 0, 1, 2, 3, 4});
    const std::vector<int32_t> pos = {1, 0};
    stream_->rope(x.view, pos, RopeParams{.n_heads = 1, .head_dim = 4, .rot_dim = 4});
    expect_near_all(read_f32(*dev_, x),
                    {static_cast<float>(c1), static_cast<float>(s1), static_cast<float>(c2),
                     static_cast<float>(s2), 1, 2, 3, 4});
  }
  {
    auto x = make_f32(*dev_, 1, 4, {1, 1, 0, 0});
    const std::vector<int32_t> pos = {1};
    stream_->rope(x.view, pos, RopeParams{.n_heads = 1, .head_dim = 4, .rot_dim = 4, .neox = true});
    expect_near_all(read_f32(*dev_, x), {static_cast<float>(c1), static_cast<float>(c2),
                                         static_cast<float>(s1), static_cast<float>(s2)});
  }
  {
    // Two heads of 6 with rot_dim 4: the last two elements of each head do not move; pos 2.
    auto x = make_f32(*dev_, 1, 12, {0, 1, 0, 1, 7, 8, 1, 0, 1, 0, 9, 10});
    const std::vector<int32_t> pos = {2};
    stream_->rope(x.view, pos, RopeParams{.n_heads = 2, .head_dim = 6, .rot_dim = 4});
    const double c = std::cos(2.0), s = std::sin(2.0), cc = std::cos(0.02), ss = std::sin(0.02);
    std::vector<double> want = {-s, c, -ss, cc, 7, 8, c, s, cc, ss, 9, 10};
    expect_near_all(read_f32(*dev_, x), std::vector<float>(want.begin(), want.end()));
  }
}

// One sequence, two cached tokens: K = [1,0], [0,1]; V = [1,2], [3,4]; page_size 1 and pages
// 3 and 1 of a 4-page pool. Query [ln 3, 0] at position 1 weighs the tokens 3:1.
TEST_P(OpsByHand, AttentionPagedWithGqa) {
  for (DType pool_type : {DType::kF32, DType::kF16}) {
    const float kv_k[4][2] = {{9, 9}, {0, 1}, {9, 9}, {1, 0}};  // rows 3 (t0) and 1 (t1)
    const float kv_v[4][2] = {{9, 9}, {3, 4}, {9, 9}, {1, 2}};
    std::vector<uint16_t> k16(8), v16(8);
    for (int i = 0; i < 8; ++i) {
      k16[i] = fp32_to_fp16((&kv_k[0][0])[i]);
      v16[i] = fp32_to_fp16((&kv_v[0][0])[i]);
    }
    const bool f16 = pool_type == DType::kF16;
    auto k = make_tensor(*dev_, pool_type, 4, 2, f16 ? static_cast<const void*>(k16.data()) : kv_k);
    auto v = make_tensor(*dev_, pool_type, 4, 2, f16 ? static_cast<const void*>(v16.data()) : kv_v);
    const float l3 = std::log(3.0f);
    // rows: (head0, head1) at position 1, then at position 0.
    auto q = make_f32(*dev_, 2, 4, {l3, 0, 0, l3, l3, 0, 0, l3});
    auto out = make_f32(*dev_, 2, 4, {});
    const std::vector<int32_t> seq = {0, 0}, pos = {1, 0}, table = {3, 1};
    AttentionParams p{.n_heads = 2,
                      .n_kv_heads = 1,
                      .head_dim = 2,
                      .page_size = 1,
                      .max_blocks = 2,
                      .scale = 1.0f,
                      .token_seq = seq,
                      .token_pos = pos,
                      .block_table = table};
    stream_->attention(q.view, k.view, v.view, p, out.view);
    // head 0: 0.75 * [1,2] + 0.25 * [3,4]; head 1: 0.25 * [1,2] + 0.75 * [3,4]; pos 0: V0.
    expect_near_all(read_f32(*dev_, out), {1.5f, 2.5f, 2.5f, 3.5f, 1, 2, 1, 2}, f16 ? 2e-3 : 1e-5);
  }
}

TEST_P(OpsByHand, SwiGlu) {
  auto g = make_f32(*dev_, 1, 3, {0, 1, -1});
  auto u = make_f32(*dev_, 1, 3, {2, 2, 3});
  auto out = make_f32(*dev_, 1, 3, {});
  stream_->swiglu(g.view, u.view, out.view);
  const double e = std::exp(1.0);
  expect_near_all(read_f32(*dev_, out),
                  {0, static_cast<float>(2 / (1 + 1 / e)), static_cast<float>(-3 / (1 + e))});
}

TEST_P(OpsByHand, AddMulScaleWithBroadcast) {
  auto a = make_f32(*dev_, 2, 3, {1, 2, 3, 4, 5, 6});
  auto b1 = make_f32(*dev_, 1, 3, {10, 20, 30});
  auto b2 = make_f32(*dev_, 2, 3, {1, 1, 1, 2, 2, 2});
  auto out = make_f32(*dev_, 2, 3, {});
  stream_->add(a.view, b1.view, out.view);
  expect_near_all(read_f32(*dev_, out), {11, 22, 33, 14, 25, 36}, 0);
  stream_->mul(a.view, b2.view, out.view);
  expect_near_all(read_f32(*dev_, out), {1, 2, 3, 8, 10, 12}, 0);
  stream_->mul(a.view, b1.view, a.view);  // in place
  expect_near_all(read_f32(*dev_, a), {10, 40, 90, 40, 100, 180}, 0);
  stream_->scale(a.view, 0.5f, out.view);
  expect_near_all(read_f32(*dev_, out), {5, 20, 45, 20, 50, 90}, 0);
}

TEST_P(OpsByHand, Softmax) {
  auto x = make_f32(*dev_, 2, 3, {0, std::log(2.0f), std::log(5.0f), 1000, 1000, -INFINITY});
  stream_->softmax(x.view);
  expect_near_all(read_f32(*dev_, x), {0.125f, 0.25f, 0.625f, 0.5f, 0.5f, 0.0f});
}

TEST_P(OpsByHand, SetRowsF32AndF16) {
  auto src = make_f32(*dev_, 2, 2, {1, 2, 0.1f, -1.25f});
  auto dst = make_f32(*dev_, 4, 2, {});
  const std::vector<int32_t> ids = {3, 1};
  stream_->set_rows(src.view, ids, dst.view);
  expect_near_all(read_f32(*dev_, dst), {0, 0, 0.1f, -1.25f, 0, 0, 1, 2}, 0);

  auto dst16 = make_tensor(*dev_, DType::kF16, 4, 2, nullptr, /*pad=*/2);
  stream_->set_rows(src.view, ids, dst16.view);
  const std::vector<uint8_t> raw = test::read_raw(*dev_, dst16);
  std::vector<uint16_t> h(8);
  std::memcpy(h.data(), raw.data(), 16);
  // 1.0 = 0x3C00, 2.0 = 0x4000, 0.1 rounds to 0x2E66, -1.25 = 0xBD00.
  EXPECT_EQ(h, (std::vector<uint16_t>{0, 0, 0x2E66, 0xBD00, 0, 0, 0x3C00, 0x4000}));
}

TEST_P(OpsByHand, SupportsMatchesOpSet) {
  EXPECT_TRUE(dev_->supports(OpKind::kMatMul, DType::kQ4_1));
  EXPECT_TRUE(dev_->supports(OpKind::kMatMul, DType::kQ6_K));
  EXPECT_TRUE(dev_->supports(OpKind::kAttention, DType::kF16));
  EXPECT_TRUE(dev_->supports(OpKind::kAttention, DType::kQ8_0));  // the Q8_0 KV cache
  EXPECT_FALSE(dev_->supports(OpKind::kAttention, DType::kQ4_0));
  EXPECT_TRUE(dev_->supports(OpKind::kSetRows, DType::kF16));
  // set_rows can store exactly the types that have a quantizer.
  EXPECT_EQ(dev_->supports(OpKind::kSetRows, DType::kQ4_K), can_quantize(DType::kQ4_K));
  EXPECT_FALSE(dev_->supports(OpKind::kRmsNorm, DType::kF16));
}

INSTANTIATE_TEST_SUITE_P(Backends, OpsByHand, ::testing::Values("reference", "cpu"));

}  // namespace
}  // namespace luzao
