// The Q8_0 KV cache: pools laid out as Q8_0 rows, a forward pass that stays close to the F32
// cache on cpu and reference (and agrees between them), and clear errors where it cannot work.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/registry.h"
#include "core/error.h"
#include "model/model.h"
#include "runtime/kv_cache.h"
#include "tiny_model.h"

namespace luzao {
namespace {

std::filesystem::path temp_file(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         (name + "_" + std::to_string(::getpid()) + ".gguf");
}

KvCacheConfig config_for(const HParams& hp, DType dtype) {
  KvCacheConfig c;
  c.n_layer = hp.n_layer;
  c.kv_dim = hp.kv_dim();
  c.page_size = 4;
  c.n_pages = 32;
  c.max_seq_len = 64;
  c.dtype = dtype;
  return c;
}

// Last-token logits of `tokens` fed as one prefill then one decode step per remaining token.
std::vector<float> run(const std::filesystem::path& path, const std::string& device_name,
                       DType kv_type, const std::vector<int32_t>& tokens) {
  auto file = std::make_shared<const GgufFile>(GgufFile::open(path));
  DeviceOptions options;
  options.threads = 2;
  std::unique_ptr<Device> device = open_device(device_name, options);
  std::unique_ptr<Model> model = load_model(file, *device);
  PagedKvCache kv(*device, config_for(model->hparams(), kv_type));
  const int32_t seq = kv.open_sequence();
  std::vector<float> logits(static_cast<size_t>(model->hparams().n_vocab));
  const size_t prefill = tokens.size() / 2;
  for (size_t begin = 0; begin < tokens.size();) {
    const size_t end = begin == 0 ? prefill : begin + 1;
    kv.reserve(seq, static_cast<int32_t>(end));
    std::vector<int32_t> toks(tokens.begin() + begin, tokens.begin() + end), pos, rows, slots;
    for (size_t i = begin; i < end; ++i) {
      pos.push_back(static_cast<int32_t>(i));
      rows.push_back(seq);
      slots.push_back(kv.slot(seq, static_cast<int32_t>(i)));
    }
    const int32_t out_row[1] = {static_cast<int32_t>(toks.size()) - 1};
    Batch b{toks, pos, rows, slots, kv.block_table(), kv.max_blocks(), out_row};
    model->forward(b, kv.view(), logits);
    begin = end;
  }
  return logits;
}

double rel_rms(const std::vector<float>& got, const std::vector<float>& ref) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err += (got[i] - ref[i]) * double(got[i] - ref[i]);
    norm += ref[i] * double(ref[i]);
  }
  return std::sqrt(err / std::max(norm, 1e-30));
}

const std::vector<int32_t> kTokens = {1, 17, 42, 5, 63, 8, 29, 77, 3, 11, 40, 2, 9, 55};

// 32-wide heads (Q8_0 blocks), GQA 2.
testing::TinyLlama q8_friendly_model() {
  testing::TinyLlama m;
  m.n_embd = 128;
  m.n_head = 4;
  m.n_head_kv = 2;
  return m;
}

TEST(KvCacheQ8, PoolsAreQ8_0Rows) {
  std::unique_ptr<Device> device = open_device("reference");
  KvCacheConfig c;
  c.n_layer = 2;
  c.kv_dim = 64;
  c.n_pages = 3;
  c.page_size = 4;
  c.max_seq_len = 12;
  c.dtype = DType::kQ8_0;
  PagedKvCache kv(*device, c);
  const KvView v = kv.view();
  ASSERT_EQ(v.layers.size(), 2u);
  EXPECT_EQ(v.layers[0].k.dtype, DType::kQ8_0);
  EXPECT_EQ(v.layers[1].v.dtype, DType::kQ8_0);
  EXPECT_EQ(v.layers[0].k.row_stride, 2u * 34u);  // two blocks of 32 per row
  EXPECT_EQ(v.layers[0].k.rows, 12);
}

TEST(KvCacheQ8, KvWidthMustHoldWholeBlocks) {
  std::unique_ptr<Device> device = open_device("reference");
  KvCacheConfig c;
  c.n_layer = 1;
  c.kv_dim = 48;
  c.n_pages = 1;
  c.max_seq_len = 16;
  c.dtype = DType::kQ8_0;
  try {
    PagedKvCache kv(*device, c);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("48"), std::string::npos) << e.what();
  }
}

// A device that delegates to the reference one but, like opencl/cuda/plugins, has no Q8_0
// attention: the cache must refuse it by name instead of producing wrong results.
class NoQ8Device final : public Device {
 public:
  NoQ8Device() : inner_(open_device("reference")) { info_.name = "fake:0"; }
  const DeviceInfo& info() const override { return info_; }
  bool supports(OpKind op, DType dtype) const override {
    return dtype != DType::kQ8_0 && inner_->supports(op, dtype);
  }
  std::unique_ptr<Buffer> alloc(size_t bytes) override { return inner_->alloc(bytes); }
  void upload(Buffer& dst, size_t offset, const void* src, size_t bytes) override {
    inner_->upload(dst, offset, src, bytes);
  }
  void download(const Buffer& src, size_t offset, void* dst, size_t bytes) override {
    inner_->download(src, offset, dst, bytes);
  }
  void copy(const Buffer& src, size_t so, Buffer& dst, size_t d, size_t bytes) override {
    inner_->copy(src, so, dst, d, bytes);
  }
  std::unique_ptr<Stream> create_stream() override { return inner_->create_stream(); }

 private:
  std::unique_ptr<Device> inner_;
  DeviceInfo info_;
};

TEST(KvCacheQ8, DeviceWithoutQ8AttentionIsRefusedByName) {
  NoQ8Device device;
  KvCacheConfig c;
  c.n_layer = 1;
  c.kv_dim = 64;
  c.n_pages = 1;
  c.max_seq_len = 16;
  c.dtype = DType::kQ8_0;
  try {
    PagedKvCache kv(device, c);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_STREQ(e.what(), "device fake:0 does not support a q8_0 KV cache");
  }
  c.dtype = DType::kF16;
  EXPECT_NO_THROW(PagedKvCache(device, c));
}

TEST(KvCacheQ8, ForwardStaysCloseToF32CacheOnCpuAndReference) {
  const auto path = temp_file("tiny_q8kv");
  testing::write_tiny_llama(path, q8_friendly_model());
  const std::vector<float> ref_f32 = run(path, "reference", DType::kF32, kTokens);
  const std::vector<float> ref_q8 = run(path, "reference", DType::kQ8_0, kTokens);
  const std::vector<float> cpu_q8 = run(path, "cpu", DType::kQ8_0, kTokens);
  const double q8_cost = rel_rms(ref_q8, ref_f32);
  EXPECT_GT(q8_cost, 0.0);  // the Q8_0 pools really are used
  // 8-bit K/V rounds each value by up to 0.4% of its block's maximum; this random model amplifies
  // that to 3.3e-2 (measured). Misread blocks (a wrong offset or scale) give errors of order 1.
  EXPECT_LT(q8_cost, 1e-1);
  EXPECT_LT(rel_rms(cpu_q8, ref_q8), 1e-4);  // same Q8_0 data, F32 vs double arithmetic
  std::filesystem::remove(path);
}

TEST(KvCacheQ8, NarrowHeadsGetAClearError) {
  const auto path = temp_file("tiny_q8kv_narrow");
  testing::TinyLlama m;  // 16-wide heads
  m.n_embd = 64;
  m.n_head = 4;
  m.n_head_kv = 4;  // kv_dim 64 fits the blocks, but each head is half a block
  testing::write_tiny_llama(path, m);
  for (const char* device : {"cpu", "reference"}) {
    try {
      run(path, device, DType::kQ8_0, kTokens);
      ADD_FAILURE() << device << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
      EXPECT_NE(std::string(e.what()).find("multiple of 32"), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace luzao
