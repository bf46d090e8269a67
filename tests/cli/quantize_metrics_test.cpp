// The measuring side of compression: perplexity and KL statistics (against hand-computed values
// and llama-perplexity's formulas), the saved-logits file, and imatrix files (GGUF and legacy).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli/perplexity.h"
#include "cli/quantize_imatrix.h"
#include "core/error.h"

namespace luzao::cli {
namespace {

namespace fs = std::filesystem;

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() /
         ("luzao_quantize_metrics_" + std::to_string(getpid()) + "_" + name);
}

TEST(QuantizeMetrics, TokenNllIsMinusLogSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  // -log(e^2 / (e + e^2 + e^3)) = log(1 + e + e^2) - 1... computed by hand:
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(token_nll(logits, 1), -(2.0 - std::log(z)), 1e-6);
  EXPECT_NEAR(token_nll(logits, 2), -(3.0 - std::log(z)), 1e-6);
  // Shift invariance and large logits (no overflow: the maximum is subtracted first).
  const std::vector<float> big = {1001.0f, 1002.0f, 1003.0f};
  EXPECT_NEAR(token_nll(big, 1), token_nll(logits, 1), 1e-4);
  EXPECT_THROW(token_nll(logits, 3), Error);
  std::vector<double> lp(3);
  log_softmax(logits, lp);
  EXPECT_NEAR(std::exp(lp[0]) + std::exp(lp[1]) + std::exp(lp[2]), 1.0, 1e-12);
}

TEST(QuantizeMetrics, PerplexityAndItsErrorAsLlamaCpp) {
  NllStats s;
  const std::vector<double> nll = {1.0, 2.0, 3.0, 4.0};
  for (double v : nll) s.add(v);
  // mean 2.5, mean of squares 7.5, variance 7.5 - 6.25 = 1.25; error sqrt(1.25 / 3) * e^2.5.
  EXPECT_DOUBLE_EQ(s.mean(), 2.5);
  EXPECT_NEAR(s.ppl(), std::exp(2.5), 1e-12);
  EXPECT_NEAR(s.ppl_stderr(), std::sqrt(1.25 / 3.0) * std::exp(2.5), 1e-9);
  NllStats one;
  one.add(1.0);
  EXPECT_EQ(one.ppl_stderr(), 0.0);
}

TEST(QuantizeMetrics, KlStatistics) {
  KlStats k;
  for (int i = 0; i <= 100; ++i) k.add(i * 0.01, i % 4 != 0);  // 0.00 .. 1.00
  EXPECT_NEAR(k.mean(), 0.5, 1e-12);
  EXPECT_NEAR(k.percentile(0.99), 0.99, 1e-12);    // order statistic 99 of 0..100
  EXPECT_NEAR(k.percentile(0.995), 0.995, 1e-12);  // interpolated
  EXPECT_NEAR(k.percentile(1.0), 1.0, 1e-12);
  EXPECT_NEAR(k.top1_agreement(), 75.0 / 101.0, 1e-12);
  // Sample std of 0..1 step 0.01 is sqrt(101 * 102 / 12) / 100; divided by sqrt(101).
  EXPECT_NEAR(k.mean_stderr(), std::sqrt(101.0 * 102.0 / 12.0) / 100.0 / std::sqrt(101.0), 1e-9);
}

TEST(QuantizeMetrics, LogitsFileRoundTripAndErrors) {
  const fs::path path = temp_path("logits.lzl");
  const std::vector<int32_t> tokens = {5, 6, 7};
  LogitsHeader h{4, 8, 4, 2, hash_tokens(tokens)};
  {
    LogitsWriter w(path, h);
    w.add_row(std::vector<double>{-0.5, -1.0, -2.0, -80000.0});
    EXPECT_FALSE(fs::exists(path)) << "written under a temporary name until finish()";
    w.finish();
  }
  LogitsReader r(path);
  EXPECT_EQ(r.header().n_vocab, 4u);
  EXPECT_EQ(r.header().tokens_hash, hash_tokens(tokens));
  EXPECT_NE(r.header().tokens_hash, hash_tokens(std::vector<int32_t>{5, 6, 8}));
  std::vector<double> row(4);
  r.next_row(row);
  EXPECT_EQ(row[0], -0.5);
  EXPECT_EQ(row[2], -2.0);
  EXPECT_EQ(row[3], -65504.0);           // clamped to fp16's range
  EXPECT_THROW(r.next_row(row), Error);  // the header promised more rows than were written
  {
    LogitsWriter abandoned(temp_path("abandoned.lzl"), h);  // destroyed without finish()
  }
  EXPECT_FALSE(fs::exists(temp_path("abandoned.lzl.tmp")));
  EXPECT_FALSE(fs::exists(temp_path("abandoned.lzl")));
  std::ofstream(temp_path("junk.lzl")) << "not logits";
  EXPECT_THROW(LogitsReader junk(temp_path("junk.lzl")), Error);
  fs::remove(path);
  fs::remove(temp_path("junk.lzl"));
}

TEST(QuantizeMetrics, ImatrixGgufRoundTrip) {
  Imatrix m;
  const std::vector<float> rows = {1, 2, 3, -1, 0, 1};  // 2 rows of 3
  m.accumulate("blk.0.attn_q.weight", rows.data(), 2, 3);
  EXPECT_THROW(m.accumulate("blk.0.attn_q.weight", rows.data(), 1, 2), Error);
  m.datasets = {"calib.txt"};
  m.chunk_count = 1;
  m.chunk_size = 2;
  const fs::path path = temp_path("imatrix.gguf");
  m.save(path);
  const Imatrix back = Imatrix::load(path);
  ASSERT_EQ(back.entries().size(), 1u);
  EXPECT_EQ(back.datasets, std::vector<std::string>{"calib.txt"});
  EXPECT_EQ(back.chunk_count, 1u);
  const std::vector<float> imp = back.importance("blk.0.attn_q.weight");
  ASSERT_EQ(imp.size(), 3u);
  EXPECT_FLOAT_EQ(imp[0], (1 + 1) / 2.0f);  // mean of squares per column
  EXPECT_FLOAT_EQ(imp[1], (4 + 0) / 2.0f);
  EXPECT_FLOAT_EQ(imp[2], (9 + 1) / 2.0f);
  EXPECT_TRUE(back.importance("blk.1.attn_q.weight").empty());
  fs::remove(path);
}

TEST(QuantizeMetrics, ImatrixLegacyDatFormat) {
  // llama-imatrix's old layout: entries, then (name, ncall, nval, values = mean * ncall).
  const fs::path path = temp_path("imatrix.dat");
  {
    std::ofstream out(path, std::ios::binary);
    auto i32 = [&out](int32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
    i32(1);
    const std::string name = "blk.3.ffn_down.weight";
    i32(static_cast<int32_t>(name.size()));
    out.write(name.data(), static_cast<std::streamsize>(name.size()));
    i32(4);  // ncall
    i32(2);  // nval
    const float values[2] = {8.0f, 2.0f};
    out.write(reinterpret_cast<const char*>(values), sizeof(values));
  }
  const Imatrix m = Imatrix::load(path);
  const std::vector<float> imp = m.importance("blk.3.ffn_down.weight");
  ASSERT_EQ(imp.size(), 2u);
  EXPECT_FLOAT_EQ(imp[0], 2.0f);  // divided by ncall, as llama-quantize does
  EXPECT_FLOAT_EQ(imp[1], 0.5f);
  // Truncated: the values are cut short.
  fs::resize_file(path, fs::file_size(path) - 3);
  EXPECT_THROW(Imatrix::load(path), Error);
  fs::remove(path);
}

}  // namespace
}  // namespace luzao::cli
