// Device registry, host buffers (alloc, upload/download/copy, zero-copy map_host) and the argument
// checks every op makes before touching memory.
#include "backend/registry.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "backend_test_util.h"
#include "core/error.h"

namespace luzao {
namespace {

using test::make_f32;
using test::read_f32;

template <typename Fn>
void expect_error(ErrorKind kind, std::string_view needle, Fn&& fn) {
  try {
    fn();
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string_view(e.what()).find(needle), std::string_view::npos) << e.what();
  }
}

TEST(Registry, OpensKnownDevices) {
  auto cpu = open_device("cpu", DeviceOptions{.threads = 2});
  EXPECT_EQ(cpu->info().name, "cpu");
  EXPECT_NE(cpu->info().description.find("2 threads"), std::string::npos);
  auto ref = open_device("reference");
  EXPECT_EQ(ref->info().name, "reference");
  EXPECT_GT(ref->info().memory_bytes, 0u);
}

TEST(Registry, UnknownSpecNamesIt) {
  expect_error(ErrorKind::kInvalidArgument, "tpu:3", [] { open_device("tpu:3"); });
  expect_error(ErrorKind::kInvalidArgument, "threads",
               [] { open_device("cpu", DeviceOptions{.threads = -1}); });
}

TEST(Registry, EnumeratesInStableOrder) {
  auto devs = enumerate_devices(DeviceOptions{.threads = 1});
  ASSERT_GE(devs.size(), 2u);
  EXPECT_EQ(devs[0]->info().name, "cpu");
  EXPECT_EQ(devs[1]->info().name, "reference");
}

class HostBuffers : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override { dev_ = open_device(GetParam(), DeviceOptions{.threads = 2}); }
  std::unique_ptr<Device> dev_;
};

TEST_P(HostBuffers, AllocIsAlignedAndZeroed) {
  auto buf = dev_->alloc(100);
  EXPECT_EQ(buf->size(), 100u);
  ASSERT_NE(buf->host_data(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf->host_data()) % 64, 0u);
  const auto* p = static_cast<const uint8_t*>(buf->host_data());
  for (int i = 0; i < 100; ++i) ASSERT_EQ(p[i], 0);
  EXPECT_EQ(dev_->alloc(0)->size(), 0u);
  expect_error(ErrorKind::kOutOfMemory, "bytes", [&] { dev_->alloc(SIZE_MAX / 2); });
}

TEST_P(HostBuffers, UploadDownloadCopyAreBoundsChecked) {
  auto a = dev_->alloc(16);
  auto b = dev_->alloc(16);
  const uint8_t src[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  dev_->upload(*a, 4, src, 8);
  dev_->copy(*a, 4, *b, 8, 8);
  uint8_t dst[16] = {};
  dev_->download(*b, 0, dst, 16);
  EXPECT_EQ(std::memcmp(dst + 8, src, 8), 0);
  EXPECT_EQ(dst[0], 0);
  expect_error(ErrorKind::kInvalidArgument, "upload", [&] { dev_->upload(*a, 9, src, 8); });
  expect_error(ErrorKind::kInvalidArgument, "download", [&] { dev_->download(*a, 16, dst, 1); });
  expect_error(ErrorKind::kInvalidArgument, "copy", [&] { dev_->copy(*a, 0, *b, SIZE_MAX, 2); });
}

TEST_P(HostBuffers, MapHostIsZeroCopy) {
  alignas(64) static const float weights[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f};
  auto mapped = dev_->map_host(weights, sizeof(weights));
  ASSERT_NE(mapped, nullptr);
  EXPECT_EQ(mapped->host_data(), static_cast<const void*>(weights));
  auto stream = dev_->create_stream();
  auto x = make_f32(*dev_, 1, 3, {1, 2, 3});
  auto out = make_f32(*dev_, 1, 2, {});
  const TensorView w{mapped.get(), 0, DType::kF32, 2, 3, 12};
  stream->matmul(x.view, w, out.view);
  EXPECT_EQ(read_f32(*dev_, out), (std::vector<float>{-2, 3}));
}

TEST_P(HostBuffers, OpsRejectBadArguments) {
  auto s = dev_->create_stream();
  auto x = make_f32(*dev_, 2, 4, {1, 2, 3, 4, 5, 6, 7, 8});
  auto w = make_f32(*dev_, 3, 4, std::vector<float>(12, 1.0f));
  auto out = make_f32(*dev_, 2, 3, {});
  auto bad_out = make_f32(*dev_, 2, 2, {});
  expect_error(ErrorKind::kInvalidArgument, "matmul: out",
               [&] { s->matmul(x.view, w.view, bad_out.view); });
  TensorView overrun = x.view;
  overrun.rows = 3;
  expect_error(ErrorKind::kInvalidArgument, "overruns",
               [&] { s->matmul(overrun, w.view, out.view); });
  TensorView misaligned = x.view;
  misaligned.offset = 2;
  misaligned.rows = 1;
  expect_error(ErrorKind::kInvalidArgument, "aligned",
               [&] { s->scale(misaligned, 1, misaligned); });
  TensorView no_buffer = x.view;
  no_buffer.buffer = nullptr;
  expect_error(ErrorKind::kInvalidArgument, "no buffer", [&] { s->softmax(no_buffer); });
  TensorView q4 = w.view;
  q4.dtype = DType::kQ4_0;  // 4 columns are not a whole Q4_0 block
  expect_error(ErrorKind::kInvalidArgument, "block", [&] { s->matmul(x.view, q4, out.view); });

  const std::vector<int32_t> bad_ids = {0, 3};
  auto rows_out = make_f32(*dev_, 2, 4, {});
  expect_error(ErrorKind::kInvalidArgument, "ids[1] = 3",
               [&] { s->get_rows(w.view, bad_ids, rows_out.view); });
  expect_error(ErrorKind::kInvalidArgument, "row_ids[1] = 3",
               [&] { s->set_rows(x.view, bad_ids, w.view); });
  const std::vector<int32_t> one_pos = {0};
  expect_error(ErrorKind::kInvalidArgument, "positions", [&] {
    s->rope(x.view, one_pos, RopeParams{.n_heads = 1, .head_dim = 4, .rot_dim = 4});
  });
  expect_error(ErrorKind::kInvalidArgument, "rot_dim", [&] {
    const std::vector<int32_t> pos = {0, 1};
    s->rope(x.view, pos, RopeParams{.n_heads = 1, .head_dim = 4, .rot_dim = 3});
  });
  auto b_bad = make_f32(*dev_, 2, 3, std::vector<float>(6, 0.0f));
  expect_error(ErrorKind::kInvalidArgument, "add: b", [&] { s->add(x.view, b_bad.view, x.view); });
}

TEST_P(HostBuffers, AttentionRejectsBadPages) {
  auto s = dev_->create_stream();
  auto q = make_f32(*dev_, 1, 4, {1, 0, 0, 1});
  auto pool = make_f32(*dev_, 8, 2, std::vector<float>(16, 0.0f));  // 2 pages of 4
  auto out = make_f32(*dev_, 1, 4, {});
  const std::vector<int32_t> seq = {0}, pos = {5}, good = {1, 0}, bad = {1, 2};
  AttentionParams p{.n_heads = 2,
                    .n_kv_heads = 1,
                    .head_dim = 2,
                    .page_size = 4,
                    .max_blocks = 2,
                    .scale = 1.0f,
                    .token_seq = seq,
                    .token_pos = pos,
                    .block_table = good};
  s->attention(q.view, pool.view, pool.view, p, out.view);  // fine
  p.block_table = bad;
  expect_error(ErrorKind::kInvalidArgument, "block_table[0][1] = 2",
               [&] { s->attention(q.view, pool.view, pool.view, p, out.view); });
  p.block_table = good;
  const std::vector<int32_t> far = {8};
  p.token_pos = far;
  expect_error(ErrorKind::kInvalidArgument, "token_pos[0] = 8",
               [&] { s->attention(q.view, pool.view, pool.view, p, out.view); });
  p.token_pos = pos;
  p.n_kv_heads = 3;
  expect_error(ErrorKind::kInvalidArgument, "n_kv_heads",
               [&] { s->attention(q.view, pool.view, pool.view, p, out.view); });
}

INSTANTIATE_TEST_SUITE_P(Backends, HostBuffers, ::testing::Values("reference", "cpu"));

}  // namespace
}  // namespace luzao
