// cpu attention on long contexts (F16 and F32 KV cache) against a double-precision model of
// llama.cpp's arithmetic, written out here: query rounded to F16 for an F16 K cache, softmax
// normalised and, for an F16 V cache, each probability rounded to F16 before weighting V.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include <fmt/format.h>

#include "backend/registry.h"
#include "backend_test_util.h"
#include "core/half.h"

namespace luzao {
namespace {

using test::make_f32;
using test::make_tensor;
using test::nmse;
using test::random_floats;
using test::read_f32;

float round_f16(float x) {
  return fp16_to_fp32(fp32_to_fp16(x));
}

struct Case {
  int head_dim;
  int n_kv;
  int group;
  int len;
  DType pool;
};

// Expected outputs (one row per query position in `positions`), with or without the rounding of
// the probabilities to F16.
std::vector<float> expected(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                            const std::vector<float>& v, const std::vector<int32_t>& positions,
                            bool round_probs) {
  const int heads = c.n_kv * c.group, hd = c.head_dim, kv_cols = c.n_kv * hd;
  const bool f16 = c.pool == DType::kF16;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<float> out(positions.size() * static_cast<size_t>(heads * hd));
  for (size_t r = 0; r < positions.size(); ++r) {
    const int pos = positions[r];
    for (int h = 0; h < heads; ++h) {
      const int kvh = h / c.group;
      const float* qh = q.data() + (r * heads + h) * hd;
      std::vector<double> s(static_cast<size_t>(pos) + 1);
      double mx = -INFINITY;
      for (int t = 0; t <= pos; ++t) {
        double d = 0;
        for (int j = 0; j < hd; ++j) {
          const float kq = f16 ? round_f16(qh[j]) : qh[j];
          const float kk = k[static_cast<size_t>(t) * kv_cols + kvh * hd + j];
          d += static_cast<double>(kq) * (f16 ? round_f16(kk) : kk);
        }
        s[t] = d * scale;
        mx = std::max(mx, s[t]);
      }
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int j = 0; j < hd; ++j) {
        double acc = 0;
        for (int t = 0; t <= pos; ++t) {
          const float p = static_cast<float>(s[t] / sum);
          const float vv = v[static_cast<size_t>(t) * kv_cols + kvh * hd + j];
          acc += static_cast<double>(f16 && round_probs ? round_f16(p) : p) *
                 (f16 ? round_f16(vv) : vv);
        }
        out[(r * heads + h) * hd + j] = static_cast<float>(acc);
      }
    }
  }
  return out;
}

constexpr int kPage = 16;

// One sequence of c.len tokens with random K and V, written (set_rows) into pools of c.pool on the
// cpu in 16-token pages handed out in reverse order, so that the page table matters.
struct PagedSequence {
  int n_pages = 0;
  std::vector<int32_t> pages;  // page of tokens [16i, 16i + 16)
  std::vector<float> k, v;     // [len][n_kv * head_dim]
  test::DeviceTensor kpool, vpool;

  PagedSequence(Device& dev, Stream& s, const Case& c, std::mt19937& rng)
      : n_pages((c.len + kPage - 1) / kPage), pages(static_cast<size_t>(n_pages)) {
    const int kv_cols = c.n_kv * c.head_dim;
    std::iota(pages.rbegin(), pages.rend(), 0);
    std::vector<int32_t> rows(static_cast<size_t>(c.len));
    for (int t = 0; t < c.len; ++t) rows[t] = pages[t / kPage] * kPage + t % kPage;
    k = random_floats(rng, static_cast<size_t>(c.len) * kv_cols, -2, 2);
    v = random_floats(rng, static_cast<size_t>(c.len) * kv_cols, -2, 2);
    kpool = make_tensor(dev, c.pool, n_pages * kPage, kv_cols, nullptr);
    vpool = make_tensor(dev, c.pool, n_pages * kPage, kv_cols, nullptr);
    auto ksrc = make_f32(dev, c.len, kv_cols, k);
    auto vsrc = make_f32(dev, c.len, kv_cols, v);
    s.set_rows(ksrc.view, rows, kpool.view);
    s.set_rows(vsrc.view, rows, vpool.view);
    s.synchronize();
  }

  // Attention of query rows (sequence, position) over pages `table` ([sequences][n_pages]).
  AttentionParams params(const Case& c, std::span<const int32_t> seq, std::span<const int32_t> pos,
                         std::span<const int32_t> table) const {
    return {.n_heads = c.n_kv * c.group,
            .n_kv_heads = c.n_kv,
            .head_dim = c.head_dim,
            .page_size = kPage,
            .max_blocks = n_pages,
            .scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
            .token_seq = seq,
            .token_pos = pos,
            .block_table = table};
  }
};

TEST(CpuAttention, LongContextsMatchLlamaCppArithmetic) {
  std::mt19937 rng(77);
  auto cpu = open_device("cpu", DeviceOptions{.threads = 2});
  auto s = cpu->create_stream();
  for (const Case& c : {Case{64, 3, 3, 517, DType::kF16}, Case{128, 2, 7, 200, DType::kF16},
                        Case{80, 1, 2, 33, DType::kF16}, Case{64, 2, 1, 16, DType::kF16},
                        Case{40, 2, 2, 70, DType::kF16}, Case{64, 3, 3, 300, DType::kF32}}) {
    SCOPED_TRACE(fmt::format("head_dim={} kv={} group={} len={} {}", c.head_dim, c.n_kv, c.group,
                             c.len, dtype_name(c.pool)));
    const int heads = c.n_kv * c.group, hd = c.head_dim;
    const PagedSequence kv(*cpu, *s, c, rng);
    const std::vector<float>&k = kv.k, &v = kv.v;
    std::vector<int32_t> positions = {0, c.len / 2, c.len - 1};
    if (c.len > 20) positions.insert(positions.end(), {15, 16, 17});
    const std::vector<int32_t> seq(positions.size(), 0);
    const std::vector<float> q =
        random_floats(rng, positions.size() * static_cast<size_t>(heads * hd), -2, 2);
    const AttentionParams p = kv.params(c, seq, positions, kv.pages);
    const auto nq = static_cast<int64_t>(positions.size());
    auto qt = make_f32(*cpu, nq, heads * hd, q);
    auto out = make_f32(*cpu, nq, heads * hd, {});
    s->attention(qt.view, kv.kpool.view, kv.vpool.view, p, out.view);
    const std::vector<float> got = read_f32(*cpu, out);
    const std::vector<float> want = expected(c, q, k, v, positions, true);
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i)
      worst = std::max(worst, std::fabs(double{got[i]} - want[i]));
    // F32 sums against double; a probability may land on the other side of an F16 rounding tie.
    EXPECT_LT(worst, 2e-3);
    EXPECT_LT(nmse(got, want), 1e-9);
    if (c.pool == DType::kF16 && c.len > 100) {
      // Without the F16 rounding of probabilities the outputs are measurably elsewhere.
      const std::vector<float> unrounded = expected(c, q, k, v, positions, false);
      EXPECT_LT(nmse(got, want) * 20, nmse(got, unrounded));
    }
  }
}

}  // namespace

// A decode batch (one query row per sequence) goes through the cpu's row kernel, rows of one
// sequence through its block kernel. Both must give the same bits for the same query: the same
// batch is run once with every query alone in its sequence and once with every query doubled
// into a two-row block. Head sizes and group sizes cover query heads split over several passes of
// the row kernel (its 16-register budget), lengths cover partial key chunks and pages, and F16
// results are checked against the double model above as well.
TEST(CpuAttention, DecodeRowsMatchPrefillBlocksBitForBit) {
  std::mt19937 rng(5);
  auto cpu = open_device("cpu", DeviceOptions{.threads = 2});
  auto s = cpu->create_stream();
  for (const DType pool : {DType::kF16, DType::kQ8_0}) {
    for (const Case& c :
         {Case{64, 3, 3, 200, pool}, Case{64, 2, 7, 40, pool}, Case{128, 2, 4, 70, pool},
          Case{256, 1, 2, 33, pool}, Case{96, 2, 3, 50, pool}, Case{32, 1, 8, 17, pool}}) {
      SCOPED_TRACE(fmt::format("head_dim={} kv={} group={} len={} {}", c.head_dim, c.n_kv, c.group,
                               c.len, dtype_name(c.pool)));
      const int heads = c.n_kv * c.group, hd = c.head_dim;
      const PagedSequence kv(*cpu, *s, c, rng);
      // Positions: the first key, the end of a page, partial chunks, the last key.
      std::vector<int32_t> positions = {0, std::min(15, c.len - 1), c.len / 2, c.len - 1};
      const auto n = static_cast<int64_t>(positions.size());
      // Every sequence has the same pages (a shared prompt).
      std::vector<int32_t> table;
      for (int64_t i = 0; i < n; ++i) table.insert(table.end(), kv.pages.begin(), kv.pages.end());
      const std::vector<float> q = random_floats(rng, static_cast<size_t>(n) * heads * hd, -2, 2);
      const auto run = [&](int copies) {
        std::vector<int32_t> seq, pos;
        std::vector<float> rows_q;
        for (int64_t i = 0; i < n; ++i) {
          for (int r = 0; r < copies; ++r) {
            seq.push_back(static_cast<int32_t>(i));
            pos.push_back(positions[i]);
            rows_q.insert(rows_q.end(), q.begin() + i * heads * hd,
                          q.begin() + (i + 1) * heads * hd);
          }
        }
        const AttentionParams p = kv.params(c, seq, pos, table);
        auto qt = make_f32(*cpu, n * copies, heads * hd, rows_q);
        auto out = make_f32(*cpu, n * copies, heads * hd, {});
        s->attention(qt.view, kv.kpool.view, kv.vpool.view, p, out.view);
        const std::vector<float> all = read_f32(*cpu, out);
        std::vector<float> first;  // the first copy of each query
        for (int64_t i = 0; i < n; ++i) {
          const auto at = all.begin() + i * copies * heads * hd;
          first.insert(first.end(), at, at + heads * hd);
        }
        return first;
      };
      const std::vector<float> decode = run(1), block = run(2);
      ASSERT_EQ(decode.size(), block.size());
      size_t differ = 0;
      for (size_t i = 0; i < decode.size(); ++i) differ += decode[i] != block[i];
      EXPECT_EQ(differ, 0u) << "of " << decode.size();
      if (c.pool == DType::kF16) {
        const std::vector<float> want = expected(c, q, kv.k, kv.v, positions, true);
        EXPECT_LT(nmse(decode, want), 1e-9);
      }
    }
  }
}

}  // namespace luzao
