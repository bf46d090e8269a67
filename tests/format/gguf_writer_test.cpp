// GgufWriter: byte layout against a hand-packed image, round trips of every value type, nested
// arrays and tensors of several dtypes through a real file, and the writer's argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

#include "core/error.h"
#include "format/gguf.h"
#include "gguf_image.h"

namespace luzao {
namespace {

std::filesystem::path temp_path(std::string_view name) {
  return std::filesystem::temp_directory_path() /
         fmt::format("luzao_format_test_{}_{}", ::getpid(), name);
}

std::vector<std::byte> pattern(size_t n, uint8_t seed) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  return v;
}

bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.value.index() != b.value.index()) return false;
  if (a.type == GgufType::kArray) {
    const auto& x = std::get<std::shared_ptr<GgufArray>>(a.value);
    const auto& y = std::get<std::shared_ptr<GgufArray>>(b.value);
    if (x->element_type != y->element_type || x->items.size() != y->items.size()) return false;
    for (size_t i = 0; i < x->items.size(); ++i) {
      if (!same_value(x->items[i], y->items[i])) return false;
    }
    return true;
  }
  if (a.type == GgufType::kFloat32) {  // compare bits so NaN round trips count
    return std::bit_cast<uint32_t>(std::get<float>(a.value)) ==
           std::bit_cast<uint32_t>(std::get<float>(b.value));
  }
  if (a.type == GgufType::kFloat64) {
    return std::bit_cast<uint64_t>(std::get<double>(a.value)) ==
           std::bit_cast<uint64_t>(std::get<double>(b.value));
  }
  return a.value == b.value;
}

std::vector<GgufKeyValue> every_value_type() {
  std::vector<GgufKeyValue> kv;
  kv.push_back({"u8", {GgufType::kUint8, uint8_t{255}}});
  kv.push_back({"i8", {GgufType::kInt8, int8_t{-128}}});
  kv.push_back({"u16", {GgufType::kUint16, uint16_t{65535}}});
  kv.push_back({"i16", {GgufType::kInt16, int16_t{-32768}}});
  kv.push_back({"u32", gguf_uint32(4000000000u)});
  kv.push_back({"i32", gguf_int32(std::numeric_limits<int32_t>::min())});
  kv.push_back({"f32", gguf_float32(-1.5e-7f)});
  kv.push_back({"f32_nan", gguf_float32(std::numeric_limits<float>::quiet_NaN())});
  kv.push_back({"bool_t", gguf_bool(true)});
  kv.push_back({"bool_f", gguf_bool(false)});
  kv.push_back({"str", gguf_string("爐灶 \n\t\"quoted\"")});
  kv.push_back({"empty", gguf_string("")});
  kv.push_back({"u64", gguf_uint64(std::numeric_limits<uint64_t>::max())});
  kv.push_back({"i64", {GgufType::kInt64, std::numeric_limits<int64_t>::min()}});
  kv.push_back({"f64", {GgufType::kFloat64, 3.141592653589793}});
  kv.push_back({"arr_bool", gguf_array(GgufType::kBool, {gguf_bool(true), gguf_bool(false)})});
  kv.push_back({"arr_empty", gguf_array(GgufType::kFloat64, {})});
  kv.push_back({"arr_str", gguf_array(GgufType::kString, {gguf_string("a"), gguf_string("")})});
  kv.push_back(
      {"arr_nested", gguf_array(GgufType::kArray,
                                {gguf_array(GgufType::kString, {gguf_string("x")}),
                                 gguf_array(GgufType::kUint16, {{GgufType::kUint16, uint16_t{7}}}),
                                 gguf_array(GgufType::kArray,
                                            {gguf_array(GgufType::kInt32, {gguf_int32(-9)})})})});
  return kv;
}

struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  size_t bytes;
};

const std::vector<TensorSpec>& tensor_specs() {
  // Byte sizes from ggml's block layouts: q8_0 34 bytes / 32, q4_0 18 / 32, q4_K 144 / 256.
  static const std::vector<TensorSpec> specs = {
      {"f32", DType::kF32, {3, 2}, 24},      {"f16", DType::kF16, {5}, 10},
      {"q8_0", DType::kQ8_0, {64, 2}, 136},  {"q4_0", DType::kQ4_0, {32, 1, 3}, 54},
      {"q4_K", DType::kQ4_K, {256, 2}, 288}, {"bf16", DType::kBF16, {1, 1, 1, 7}, 14},
  };
  return specs;
}

TEST(GgufWriter, MatchesHandPackedImage) {
  GgufWriter w;
  w.set_uint32("n", 5);
  const std::vector<std::byte> data = pattern(16, 1);
  w.add_tensor("t", DType::kF32, {4}, data);
  test::GgufImage g;
  g.header(1, 1).kv_u32("n", 5).tensor("t", {4}, 0, 0).pad(32);
  g.bytes.insert(g.bytes.end(), data.begin(), data.end());
  g.pad(32);
  EXPECT_EQ(w.to_bytes(), g.bytes);
}

TEST(GgufWriter, RoundTripsEveryValueTypeAndTensors) {
  GgufWriter w;
  const auto kvs = every_value_type();
  for (const GgufKeyValue& kv : kvs) w.set(kv.key, kv.value);
  for (size_t i = 0; i < tensor_specs().size(); ++i) {
    const TensorSpec& s = tensor_specs()[i];
    w.add_tensor(s.name, s.dtype, s.shape, pattern(s.bytes, static_cast<uint8_t>(i)));
  }
  const auto path = temp_path("roundtrip.gguf");
  w.write(path);
  {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::vector<std::byte> mem = w.to_bytes();
    ASSERT_EQ(raw.size(), mem.size());
    EXPECT_EQ(std::memcmp(raw.data(), mem.data(), mem.size()), 0);
  }
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.name(), path.string());
  ASSERT_EQ(f.metadata().size(), kvs.size());
  for (size_t i = 0; i < kvs.size(); ++i) {
    EXPECT_EQ(f.metadata()[i].key, kvs[i].key);
    EXPECT_TRUE(same_value(f.metadata()[i].value, kvs[i].value))
        << kvs[i].key << ": " << gguf_value_to_string(f.metadata()[i].value);
  }
  EXPECT_EQ(f.get_string("str"), "爐灶 \n\t\"quoted\"");
  EXPECT_EQ(f.get_int("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(gguf_value_to_string(*f.find("arr_nested")), R"([["x"], [7], [[-9]]])");
  ASSERT_EQ(f.tensors().size(), tensor_specs().size());
  EXPECT_EQ(f.data_offset() % 32, 0u);
  for (size_t i = 0; i < tensor_specs().size(); ++i) {
    const TensorSpec& s = tensor_specs()[i];
    const GgufTensorInfo& t = f.tensors()[i];
    EXPECT_EQ(t.name, s.name);
    EXPECT_EQ(t.dtype, s.dtype);
    EXPECT_EQ(t.shape, s.shape);
    EXPECT_EQ(t.bytes, s.bytes);
    EXPECT_EQ(t.offset % 32, 0u) << s.name;
    const auto data = f.tensor_data(t);
    const auto expected = pattern(s.bytes, static_cast<uint8_t>(i));
    ASSERT_EQ(data.size(), expected.size());
    EXPECT_EQ(std::memcmp(data.data(), expected.data(), expected.size()), 0) << s.name;
  }
  std::filesystem::remove(path);
}

TEST(GgufWriter, CustomAlignment) {
  GgufWriter w;
  w.set_alignment(128);
  w.add_tensor("a", DType::kF32, {3}, pattern(12, 1));
  w.add_tensor("b", DType::kF16, {2}, pattern(4, 2));
  const std::vector<std::byte> bytes = w.to_bytes();
  const GgufFile f = GgufFile::parse(bytes, "mem");
  EXPECT_EQ(f.alignment(), 128u);
  EXPECT_EQ(f.data_offset() % 128, 0u);
  EXPECT_EQ(f.find_tensor("b")->offset, 128u);
  EXPECT_EQ(bytes.size(), f.data_offset() + 256);
  EXPECT_THROW(w.set_alignment(96), Error);
}

TEST(GgufWriter, SetReplacesAndHelpers) {
  GgufWriter w;
  w.set_string("a", "one");
  w.set_uint32("b", 2);
  w.set_string("a", "two");
  const std::vector<float> floats = {0.5f, -2.0f};
  const std::vector<int32_t> ints = {3, -4};
  w.set_float32_array("fs", floats);
  w.set_int32_array("is", ints);
  w.set_string_array("ss", {"x", "y"});
  w.set_bool("flag", true);
  w.set_int32("neg", -1);
  w.set_uint64("big", 1ull << 40);
  w.set_float32("f", 0.25f);
  const std::vector<std::byte> bytes = w.to_bytes();
  const GgufFile f = GgufFile::parse(bytes, "mem");
  ASSERT_EQ(f.metadata().size(), 9u);
  EXPECT_EQ(f.metadata()[0].key, "a");
  EXPECT_EQ(f.get_string("a"), "two");
  EXPECT_EQ(f.get_float_array("fs"), floats);
  EXPECT_EQ(f.get_int_array("is"), ints);
  EXPECT_EQ(f.get_string_array("ss"), (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(f.get_bool_or("flag", false));
  EXPECT_EQ(f.get_int("neg"), -1);
  EXPECT_EQ(f.get_uint("big"), 1ull << 40);
  EXPECT_EQ(f.get_float("f"), 0.25f);
  EXPECT_TRUE(f.tensors().empty());
}

TEST(GgufWriter, RejectsBadArguments) {
  const auto expect_kind = [](auto fn, ErrorKind kind, std::string_view part) {
    try {
      fn();
      ADD_FAILURE() << "no throw for " << part;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  GgufWriter w;
  w.add_tensor("t", DType::kF32, {2}, pattern(8, 0));
  expect_kind([&] { w.add_tensor("t", DType::kF32, {2}, pattern(8, 0)); },
              ErrorKind::kInvalidArgument, "duplicate tensor 't'");
  expect_kind([&] { w.add_tensor("u", DType::kF32, {2}, pattern(7, 0)); },
              ErrorKind::kInvalidArgument, "needs 8 bytes but 7 were given");
  expect_kind([&] { w.add_tensor("v", DType::kQ4_0, {33}, pattern(18, 0)); },
              ErrorKind::kInvalidArgument, "tensor 'v'");
  expect_kind([&] { w.add_tensor("z", DType::kF32, {}, {}); }, ErrorKind::kInvalidArgument,
              "0 dimensions");

  GgufWriter bad_variant;
  bad_variant.set("k", GgufValue{GgufType::kUint32, int32_t{1}});
  expect_kind([&] { bad_variant.to_bytes(); }, ErrorKind::kInvalidArgument,
              "key 'k': value does not hold a uint32");
  GgufWriter bad_item;
  bad_item.set("k", gguf_array(GgufType::kString, {gguf_int32(1)}));
  expect_kind([&] { bad_item.to_bytes(); }, ErrorKind::kInvalidArgument,
              "array of string holds an item of type int32");

  const auto nowhere = std::filesystem::path("/nonexistent-dir/x.gguf");
  expect_kind([&] { w.write(nowhere); }, ErrorKind::kIo, "/nonexistent-dir/x.gguf");
}

}  // namespace
}  // namespace luzao
