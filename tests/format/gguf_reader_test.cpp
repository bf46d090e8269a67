// GGUF reader on hand-built byte images: valid files parse; each kind of corruption is rejected
// with Error(kBadFile/kUnsupported) whose message names the file, the key or tensor and the offset.
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "format/gguf.h"
#include "gguf_image.h"

namespace luzao {
namespace {

using test::GgufImage;

constexpr uint32_t kF32 = 0;
constexpr uint32_t kQ4_0 = 2;

// Parses `image` expecting failure; returns the message after checking kind and substrings.
std::string parse_error(const GgufImage& image, ErrorKind kind,
                        std::initializer_list<std::string_view> parts) {
  try {
    GgufFile::parse(image.span(), "t.gguf");
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), kind) << msg;
    EXPECT_TRUE(msg.starts_with("t.gguf: ")) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const std::string_view part : parts) {
      EXPECT_NE(msg.find(part), std::string::npos) << "missing '" << part << "' in: " << msg;
    }
    return msg;
  }
  ADD_FAILURE() << "parse succeeded";
  return {};
}

// A valid v3 image: two keys (one an array), one f32 tensor [4, 2] at data offset 0.
GgufImage valid_image(uint32_t version = 3) {
  GgufImage g;
  g.header(1, 2, version);
  g.kv_string("general.architecture", "llama");
  g.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(3).str("a").str("bc").str("");
  g.tensor("w", {4, 2}, kF32, 0);
  g.pad(32);
  for (int i = 0; i < 8; ++i) g.put<float>(static_cast<float>(i) * 0.5f);
  return g;
}

TEST(GgufReader, ParsesValidImage) {
  const GgufImage g = valid_image();
  const GgufFile f = GgufFile::parse(g.span(), "t.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  ASSERT_EQ(f.metadata().size(), 2u);
  EXPECT_EQ(f.metadata()[0].key, "general.architecture");
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "bc", ""}));
  ASSERT_EQ(f.tensors().size(), 1u);
  const GgufTensorInfo& t = f.tensors()[0];
  EXPECT_EQ(t.name, "w");
  EXPECT_EQ(t.dtype, DType::kF32);
  EXPECT_EQ(t.shape, (std::vector<uint64_t>{4, 2}));
  EXPECT_EQ(t.elements(), 8u);
  EXPECT_EQ(t.bytes, 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  EXPECT_EQ(f.data_offset() + 32, g.size());
  const auto data = f.tensor_data(t);
  ASSERT_EQ(data.size(), 32u);
  float third = 0;
  std::memcpy(&third, data.data() + 3 * sizeof(float), sizeof(float));
  EXPECT_EQ(third, 1.5f);
  EXPECT_EQ(f.find_tensor("w"), &t);
  EXPECT_EQ(f.find_tensor("x"), nullptr);
}

TEST(GgufReader, ParsesVersion2) {
  const GgufImage g = valid_image(2);
  EXPECT_EQ(GgufFile::parse(g.span(), "t.gguf").version(), 2u);
}

TEST(GgufReader, TruncationAtEveryOffsetIsBadFile) {
  const GgufImage g = valid_image();
  for (size_t n = 0; n < g.size(); ++n) {
    GgufImage cut;
    cut.bytes.assign(g.bytes.begin(), g.bytes.begin() + static_cast<std::ptrdiff_t>(n));
    try {
      GgufFile::parse(cut.span(), "t.gguf");
      ADD_FAILURE() << "truncated at " << n << " parsed";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.kind(), ErrorKind::kBadFile) << n << ": " << msg;
      EXPECT_TRUE(msg.starts_with("t.gguf: ")) << msg;
      if (n >= 4) {
        EXPECT_NE(msg.find("past end of file"), std::string::npos) << n << ": " << msg;
      }
    }
  }
}

TEST(GgufReader, TruncatedStringNamesKeyAndOffset) {
  GgufImage g;
  g.header(0, 1);
  const size_t len_at = g.size() + 8 + std::string_view("general.name").size() + 4;
  g.str("general.name").u32(8).u64(1000).zeros(10);
  parse_error(g, ErrorKind::kBadFile,
              {"key 'general.name'", "length 1000", fmt::format("offset {}", len_at),
               "runs past end of file (size 66)"});
}

TEST(GgufReader, KeyLengthPastEndNamesEntry) {
  GgufImage g;
  g.header(0, 2).kv_u32("a", 1).u64(1ull << 40).zeros(20);
  parse_error(g, ErrorKind::kBadFile,
              {"metadata entry 1", "key length 1099511627776 at offset 41"});
}

TEST(GgufReader, RejectsTinyAndBadMagic) {
  GgufImage empty;
  parse_error(empty, ErrorKind::kBadFile, {"too small", "0 bytes"});
  GgufImage g = valid_image();
  g.bytes[0] = std::byte{'X'};
  parse_error(g, ErrorKind::kBadFile, {"bad magic \"XGUF\"", "offset 0"});
}

TEST(GgufReader, RejectsUnsupportedVersions) {
  parse_error(valid_image(99), ErrorKind::kUnsupported, {"version 99", "offset 4"});
  parse_error(valid_image(1), ErrorKind::kUnsupported, {"version 1 "});
  GgufImage be = valid_image();
  be.bytes[4] = std::byte{0};
  be.bytes[7] = std::byte{3};
  parse_error(be, ErrorKind::kUnsupported, {"big-endian"});
}

TEST(GgufReader, RejectsAbsurdCountsBeforeAllocating) {
  GgufImage g;
  g.header(1ull << 62, 0).zeros(64);
  parse_error(g, ErrorKind::kBadFile, {"tensor count 4611686018427387904", "offset 8"});
  GgufImage h;
  h.header(0, std::numeric_limits<uint64_t>::max()).zeros(64);
  parse_error(h, ErrorKind::kBadFile, {"metadata key count 18446744073709551615", "offset 16"});
  GgufImage a;  // array length 2^61 of uint64
  a.header(0, 1).str("k").u32(9).u32(10).u64(1ull << 61).zeros(16);
  parse_error(a, ErrorKind::kBadFile,
              {"key 'k'", "array of 2305843009213693952 uint64", "offset 41"});
}

TEST(GgufReader, CapsTotalArrayItems) {
  // 2^24 + 1 uint8 items (present in the file) exceed the cap on metadata array items.
  constexpr uint64_t kItems = (uint64_t{1} << 24) + 1;
  GgufImage g;
  g.header(0, 1).str("blob").u32(9).u32(0).u64(kItems).zeros(kItems);
  parse_error(g, ErrorKind::kUnsupported, {"key 'blob'", "16777217 items at offset 44", "limit"});
}

TEST(GgufReader, RejectsUnknownValueTypeAndBadBool) {
  GgufImage g;
  g.header(0, 1).str("k").u32(13).u32(0);
  parse_error(g, ErrorKind::kBadFile, {"key 'k'", "unknown value type 13", "offset 33"});
  GgufImage b;
  b.header(0, 1).str("flag").u32(7).u8(2);
  parse_error(b, ErrorKind::kBadFile, {"key 'flag'", "bool value 2", "offset 40"});
  GgufImage e;  // unknown array element type
  e.header(0, 1).str("k").u32(9).u32(77).u64(0);
  parse_error(e, ErrorKind::kBadFile, {"key 'k'", "unknown value type 77", "offset 37"});
}

TEST(GgufReader, ParsesNestedArraysAndBoundsDepth) {
  GgufImage g;  // [[1, 2], [], [3]] as int16
  g.header(0, 1).str("nested").u32(9).u32(9).u64(3);
  g.u32(3).u64(2).put<int16_t>(1).put<int16_t>(2);
  g.u32(3).u64(0);
  g.u32(3).u64(1).put<int16_t>(-3);
  const GgufFile f = GgufFile::parse(g.span(), "t.gguf");
  const GgufValue* v = f.find("nested");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(gguf_value_to_string(*v), "[[1, 2], [], [-3]]");
  const auto& outer = std::get<std::shared_ptr<GgufArray>>(v->value);
  EXPECT_EQ(outer->element_type, GgufType::kArray);
  ASSERT_EQ(outer->items.size(), 3u);
  const auto& first = std::get<std::shared_ptr<GgufArray>>(outer->items[0].value);
  EXPECT_EQ(first->element_type, GgufType::kInt16);
  EXPECT_EQ(std::get<int16_t>(first->items[1].value), 2);

  GgufImage deep;
  deep.header(0, 1).str("deep").u32(9);
  for (int i = 0; i < 40; ++i) deep.u32(9).u64(1);
  deep.u32(0).u64(0);
  parse_error(deep, ErrorKind::kBadFile, {"key 'deep'", "nested deeper than 16"});
}

TEST(GgufReader, DuplicateKeyAndTensorNames) {
  GgufImage g;
  g.header(0, 2).kv_u32("k", 1).kv_u32("k", 2);
  parse_error(g, ErrorKind::kBadFile, {"key 'k'", "duplicate key at offset 41"});
  GgufImage t;
  t.header(2, 0).tensor("w", {32}, kF32, 0).tensor("w", {32}, kF32, 128).pad(32).zeros(256);
  parse_error(t, ErrorKind::kBadFile, {"tensor 'w'", "duplicate tensor name at offset 57"});
}

TEST(GgufReader, TensorDataPastEndHasExactMessage) {
  GgufImage g;
  g.header(1, 0).tensor("blk.0.attn_q.weight", {1024}, kF32, 0).pad(32).zeros(100);
  const size_t data_at = 96;  // 24 header + 8+19 name + 4 + 8 + 4 + 8 = 75, aligned to 32
  ASSERT_EQ(g.size(), data_at + 100);
  const std::string msg = parse_error(g, ErrorKind::kBadFile, {});
  EXPECT_EQ(msg,
            "t.gguf: tensor 'blk.0.attn_q.weight': data [offset 96, 4096 bytes] runs past end of "
            "file (size 196)");
  GgufImage huge;  // offset + size overflows uint64
  huge.header(1, 0).tensor("w", {32}, kF32, std::numeric_limits<uint64_t>::max() - 63).pad(32);
  parse_error(huge, ErrorKind::kBadFile, {"tensor 'w'", "runs past end of file"});
}

TEST(GgufReader, MisalignedTensorOffset) {
  GgufImage g;
  g.header(1, 0).tensor("w", {4}, kF32, 8).pad(32).zeros(64);
  parse_error(g, ErrorKind::kBadFile,
              {"tensor 'w'", "data offset 8 (file offset 72)", "multiple of the alignment 32"});
}

TEST(GgufReader, UnknownAndUnsupportedDtypes) {
  GgufImage g;
  g.header(1, 0).tensor("w", {4}, 200, 0).pad(32).zeros(64);
  parse_error(g, ErrorKind::kBadFile, {"tensor 'w'", "unknown dtype id 200 at offset 45"});
  GgufImage iq;
  iq.header(1, 0).tensor("w", {256}, 16, 0).pad(32).zeros(128);
  parse_error(iq, ErrorKind::kUnsupported, {"tensor 'w'", "iq2_xxs (id 16)", "not supported"});
}

TEST(GgufReader, BadShapes) {
  GgufImage over;
  over.header(1, 0).tensor("w", {1ull << 32, 1ull << 32}, kF32, 0).pad(32).zeros(32);
  parse_error(over, ErrorKind::kBadFile, {"tensor 'w'", "4294967296x4294967296", "overflows"});
  GgufImage bytes_over;  // element count fits int64 but bytes do not fit uint64
  bytes_over.header(1, 0).tensor("w", {1ull << 31, 1ull << 31}, kF32, 0).pad(32).zeros(32);
  parse_error(bytes_over, ErrorKind::kBadFile, {"tensor 'w'", "byte size", "overflows"});
  GgufImage five;
  five.header(1, 0).tensor("w", {1, 1, 1, 1, 1}, kF32, 0).pad(32).zeros(32);
  parse_error(five, ErrorKind::kBadFile, {"tensor 'w'", "n_dims 5 at offset 33", "1 to 4"});
  GgufImage none;
  none.header(1, 0).tensor("w", {}, kF32, 0).zeros(64);
  parse_error(none, ErrorKind::kBadFile, {"tensor 'w'", "n_dims 0"});
  GgufImage zero;
  zero.header(1, 0).tensor("w", {4, 0}, kF32, 0).pad(32).zeros(32);
  parse_error(zero, ErrorKind::kBadFile, {"tensor 'w'", "dimension 1 at offset 45 is zero"});
  GgufImage block;
  block.header(1, 0).tensor("w", {33, 2}, kQ4_0, 0).pad(32).zeros(64);
  parse_error(block, ErrorKind::kBadFile,
              {"tensor 'w'", "row of 33 elements", "q4_0 block size 32"});
}

TEST(GgufReader, OverlappingTensors) {
  GgufImage g;
  g.header(2, 0).tensor("a", {16}, kF32, 0).tensor("b", {8}, kF32, 32).pad(32).zeros(128);
  parse_error(g, ErrorKind::kBadFile, {"tensor 'b'", "overlaps tensor 'a'", "64 bytes"});
}

TEST(GgufReader, Alignment) {
  GgufImage g;
  g.header(1, 1).kv_u32("general.alignment", 64).tensor("w", {4}, kF32, 64).pad(64).zeros(128);
  const GgufFile f = GgufFile::parse(g.span(), "t.gguf");
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset(), 128u);
  GgufImage bad;
  bad.header(0, 1).kv_u32("general.alignment", 48);
  parse_error(bad, ErrorKind::kBadFile, {"key 'general.alignment'", "48", "power of two"});
  GgufImage zero;
  zero.header(0, 1).kv_u32("general.alignment", 0);
  parse_error(zero, ErrorKind::kBadFile, {"key 'general.alignment'", "alignment 0"});
  GgufImage str;
  str.header(0, 1).kv_string("general.alignment", "32");
  parse_error(str, ErrorKind::kBadFile, {"key 'general.alignment'", "type string"});
}

TEST(GgufReader, NamesInMessagesAreEscaped) {
  GgufImage g;
  g.header(0, 1).str("bad\nkey").u32(8).u64(99);
  const std::string msg = parse_error(g, ErrorKind::kBadFile, {"key 'bad\\nkey'"});
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(GgufReader, TypedGetters) {
  GgufImage g;
  g.header(0, 7).kv_u32("u", 7).kv_string("s", "x");
  g.str("neg").u32(5).put<int32_t>(-2);
  g.str("f").u32(12).put<double>(0.25);
  g.str("b").u32(7).u8(1);
  g.str("ints").u32(9).u32(11).u64(2).put<int64_t>(-5).put<int64_t>(1ll << 40);
  g.str("big").u32(10).put<uint64_t>(std::numeric_limits<uint64_t>::max());
  const GgufFile f = GgufFile::parse(g.span(), "t.gguf");
  EXPECT_EQ(f.get_uint("u"), 7u);
  EXPECT_EQ(f.get_int("u"), 7);
  EXPECT_EQ(f.get_int("neg"), -2);
  EXPECT_EQ(f.find_uint("missing"), std::nullopt);
  EXPECT_EQ(f.get_float("f"), 0.25f);
  EXPECT_EQ(f.find_float("missing"), std::nullopt);
  EXPECT_TRUE(f.get_bool_or("b", false));
  EXPECT_TRUE(f.get_bool_or("missing", true));
  EXPECT_EQ(f.find_string("s"), "x");
  EXPECT_EQ(f.get_uint("big"), std::numeric_limits<uint64_t>::max());
  const auto expect_throw = [&](auto fn, std::string_view part) {
    try {
      fn();
      ADD_FAILURE() << "no throw for " << part;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBadFile);
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_throw([&] { f.get_uint("missing"); }, "t.gguf: missing key 'missing'");
  expect_throw([&] { f.get_uint("neg"); }, "key 'neg' has type int32 (value -2)");
  expect_throw([&] { f.get_int("big"); }, "key 'big'");
  expect_throw([&] { f.get_string("u"); }, "key 'u' has type uint32");
  expect_throw([&] { f.get_float("s"); }, "expected float32 or float64");
  expect_throw([&] { f.get_string_array("ints"); }, "array of int64");
  expect_throw([&] { f.get_int_array("ints"); }, "item 1 (1099511627776) does not fit int32");
  expect_throw([&] { f.get_bool_or("u", false); }, "expected bool");
}

TEST(GgufReader, ParsesLargeVocabulary) {
  // 150k strings (a Qwen-sized vocabulary) plus scores; checks content, not time.
  constexpr uint64_t kN = 150000;
  GgufImage g;
  g.header(0, 2).str("tokenizer.ggml.tokens").u32(9).u32(8).u64(kN);
  for (uint64_t i = 0; i < kN; ++i) g.str("tok" + std::to_string(i));
  g.str("tokenizer.ggml.scores").u32(9).u32(6).u64(kN);
  for (uint64_t i = 0; i < kN; ++i) g.put<float>(-static_cast<float>(i));
  const GgufFile f = GgufFile::parse(g.span(), "t.gguf");
  const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), kN);
  EXPECT_EQ(tokens[149999], "tok149999");
  const auto scores = f.get_float_array("tokenizer.ggml.scores");
  ASSERT_EQ(scores.size(), kN);
  EXPECT_EQ(scores[12345], -12345.0f);
}

TEST(GgufValue, DisplayFormatting) {
  std::vector<GgufValue> items;
  for (int i = 0; i < 5; ++i) items.push_back(gguf_string("t" + std::to_string(i)));
  const GgufValue arr = gguf_array(GgufType::kString, items);
  EXPECT_EQ(gguf_value_to_string(arr, 8), R"(["t0", "t1", "t2", "t3", "t4"])");
  EXPECT_EQ(gguf_value_to_string(arr, 2), R"([5 strings: "t0", "t1", ...])");
  EXPECT_EQ(gguf_value_to_string(arr, 0), "[5 strings]");
  EXPECT_EQ(gguf_value_to_string(gguf_array(GgufType::kInt32, {gguf_int32(1), gguf_int32(2)}), 1),
            "[2 int32 values: 1, ...]");
  EXPECT_EQ(gguf_value_to_string(gguf_string("a\"b\n\x01")), R"("a\"b\n\x01")");
  EXPECT_EQ(gguf_value_to_string(gguf_string("abcdefgh"), 8, 3), R"x("abc...(8 bytes)")x");
  EXPECT_EQ(gguf_value_to_string(gguf_bool(true)), "true");
  EXPECT_EQ(gguf_value_to_string(GgufValue{GgufType::kInt8, int8_t{-7}}), "-7");
  EXPECT_EQ(gguf_value_to_string(gguf_float32(0.5f)), "0.5");
  // UTF-8 kept whole (never cut inside a character); invalid bytes escaped.
  EXPECT_EQ(escape_for_display("\xe7\x88\x90\xe7\x81\xb6"), "\xe7\x88\x90\xe7\x81\xb6");
  EXPECT_EQ(escape_for_display("\xe7\x88\x90\xe7\x81\xb6", 4), "\xe7\x88\x90...(6 bytes)");
  EXPECT_EQ(escape_for_display("a\xff\xc3"), "a\\xff\\xc3");
  EXPECT_EQ(escape_for_display("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate
}

}  // namespace
}  // namespace luzao
