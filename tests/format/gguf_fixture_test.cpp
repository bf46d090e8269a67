// Reads tests/format/data/fixture.gguf, written by the reference `gguf` Python package
// (tests/format/make_gguf_fixture.py), and checks every key, value and tensor that script wrote.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/half.h"
#include "format/gguf.h"

namespace luzao {
namespace {

constexpr const char* kFixture = LUZAO_SOURCE_DIR "/tests/format/data/fixture.gguf";

std::string show(const GgufFile& f, std::string_view key) {
  const GgufValue* v = f.find(key);
  return v == nullptr ? "<missing>" : gguf_value_to_string(*v, 16);
}

TEST(GgufFixture, MetadataWrittenByPythonGguf) {
  const GgufFile f = GgufFile::open(kFixture);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);

  const std::vector<std::string> keys = {"general.architecture",
                                         "general.alignment",
                                         "general.name",
                                         "test.u8",
                                         "test.i8",
                                         "test.u16",
                                         "test.i16",
                                         "test.u32",
                                         "test.i32",
                                         "test.f32",
                                         "test.u64",
                                         "test.i64",
                                         "test.f64",
                                         "test.bool",
                                         "test.string",
                                         "test.arr_int",
                                         "test.arr_float",
                                         "test.arr_str",
                                         "test.arr_bool",
                                         "test.arr_nested",
                                         "test.arr_nested_str"};
  ASSERT_EQ(f.metadata().size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(f.metadata()[i].key, keys[i]);

  const auto type_of = [&](std::string_view key) { return f.find(key)->type; };
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(type_of("general.alignment"), GgufType::kUint32);
  EXPECT_EQ(f.get_uint("general.alignment"), 64u);
  EXPECT_EQ(f.get_string("general.name"), "luzao fixture");
  EXPECT_EQ(type_of("test.u8"), GgufType::kUint8);
  EXPECT_EQ(f.get_uint("test.u8"), 200u);
  EXPECT_EQ(type_of("test.i8"), GgufType::kInt8);
  EXPECT_EQ(f.get_int("test.i8"), -100);
  EXPECT_EQ(type_of("test.u16"), GgufType::kUint16);
  EXPECT_EQ(f.get_uint("test.u16"), 60000u);
  EXPECT_EQ(type_of("test.i16"), GgufType::kInt16);
  EXPECT_EQ(f.get_int("test.i16"), -30000);
  EXPECT_EQ(type_of("test.u32"), GgufType::kUint32);
  EXPECT_EQ(f.get_uint("test.u32"), 4000000000u);
  EXPECT_EQ(type_of("test.i32"), GgufType::kInt32);
  EXPECT_EQ(f.get_int("test.i32"), -2000000000);
  EXPECT_EQ(type_of("test.f32"), GgufType::kFloat32);
  EXPECT_EQ(f.get_float("test.f32"), 0.15625f);
  EXPECT_EQ(type_of("test.u64"), GgufType::kUint64);
  EXPECT_EQ(f.get_uint("test.u64"), (1ull << 63) + 5);
  EXPECT_EQ(type_of("test.i64"), GgufType::kInt64);
  EXPECT_EQ(f.get_int("test.i64"), -(1ll << 62));
  EXPECT_EQ(type_of("test.f64"), GgufType::kFloat64);
  EXPECT_EQ(std::get<double>(f.find("test.f64")->value), 2.718281828459045);
  EXPECT_EQ(type_of("test.bool"), GgufType::kBool);
  EXPECT_TRUE(f.get_bool_or("test.bool", false));
  EXPECT_EQ(f.get_string("test.string"), "爐灶 — stove");
  EXPECT_EQ(f.get_int_array("test.arr_int"), (std::vector<int32_t>{1, -2, 3}));
  EXPECT_EQ(f.get_float_array("test.arr_float"), (std::vector<float>{0.5f, -1.25f}));
  EXPECT_EQ(f.get_string_array("test.arr_str"), (std::vector<std::string>{"a", "bb", ""}));
  EXPECT_EQ(show(f, "test.arr_bool"), "[true, false]");
  EXPECT_EQ(show(f, "test.arr_nested"), "[[1, 2], [3]]");
  EXPECT_EQ(show(f, "test.arr_nested_str"), R"([["x"], ["y", "z"]])");
  const auto& nested = std::get<std::shared_ptr<GgufArray>>(f.find("test.arr_nested")->value);
  EXPECT_EQ(nested->element_type, GgufType::kArray);
  EXPECT_EQ(std::get<std::shared_ptr<GgufArray>>(nested->items[0].value)->element_type,
            GgufType::kInt32);
}

TEST(GgufFixture, TensorsWrittenByPythonGguf) {
  const GgufFile f = GgufFile::open(kFixture);
  ASSERT_EQ(f.tensors().size(), 3u);

  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dtype, DType::kF32);
  EXPECT_EQ(embd->shape, (std::vector<uint64_t>{8, 4}));  // numpy (4, 8) reversed
  EXPECT_EQ(embd->bytes, 128u);
  const auto embd_bytes = f.tensor_data(*embd);
  for (size_t i = 0; i < 32; ++i) {
    float x = 0;
    std::memcpy(&x, embd_bytes.data() + 4 * i, 4);
    EXPECT_EQ(x, static_cast<float>(i) * 0.25f - 4.0f) << i;
  }

  const GgufTensorInfo* norm = f.find_tensor("blk.0.attn_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->dtype, DType::kF16);
  EXPECT_EQ(norm->shape, (std::vector<uint64_t>{8}));
  EXPECT_EQ(norm->bytes, 16u);
  const float expected_norm[8] = {1.0f, -2.0f, 0.5f, 0.0f, 65504.0f, -0.25f, 3.0f, 1e-3f};
  const auto norm_bytes = f.tensor_data(*norm);
  for (size_t i = 0; i < 8; ++i) {
    uint16_t h = 0;
    std::memcpy(&h, norm_bytes.data() + 2 * i, 2);
    EXPECT_NEAR(fp16_to_fp32(h), expected_norm[i], 1e-6f) << i;  // 1e-3 is not exact in fp16
  }

  // Q8_0: blocks of 32 values, each an fp16 scale followed by 32 int8 quants (34 bytes).
  const GgufTensorInfo* ffn = f.find_tensor("blk.0.ffn_down.weight");
  ASSERT_NE(ffn, nullptr);
  EXPECT_EQ(ffn->dtype, DType::kQ8_0);
  EXPECT_EQ(ffn->shape, (std::vector<uint64_t>{64, 2}));
  EXPECT_EQ(ffn->bytes, 4u * 34u);
  const auto q = f.tensor_data(*ffn);
  for (size_t block = 0; block < 4; ++block) {
    uint16_t d_bits = 0;
    std::memcpy(&d_bits, q.data() + 34 * block, 2);
    const float d = fp16_to_fp32(d_bits);
    float amax = 0;
    for (size_t j = 0; j < 32; ++j) {
      amax = std::max(amax, std::fabs(3.0f * std::sin(static_cast<float>(block * 32 + j))));
    }
    EXPECT_NEAR(d, amax / 127.0f, 1e-3f * amax / 127.0f) << block;
    for (size_t j = 0; j < 32; ++j) {
      const auto qj = static_cast<int8_t>(q[34 * block + 2 + j]);
      const float x = 3.0f * std::sin(static_cast<float>(block * 32 + j));
      EXPECT_NEAR(d * static_cast<float>(qj), x, 0.51f * d + 1e-3f) << block << "," << j;
    }
  }

  // Tensors sit at 64-byte aligned offsets, in the order written.
  EXPECT_EQ(embd->offset, 0u);
  EXPECT_EQ(norm->offset, 128u);
  EXPECT_EQ(ffn->offset, 192u);
  EXPECT_EQ(f.data_offset() + ffn->offset + 192, f.file_size());  // 136 bytes padded to 192
}

}  // namespace
}  // namespace luzao
