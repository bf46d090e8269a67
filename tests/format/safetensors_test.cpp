// Safetensors reader: hand-built files (header bytes written out here, not by a library) and the
// corruption cases a converter must reject with a message naming the file, tensor or field.
#include "format/safetensors.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"

namespace luzao {
namespace {

// 8-byte little-endian length, the header text, then the payload.
std::vector<std::byte> image(const std::string& header, const std::vector<uint8_t>& payload,
                             uint64_t claimed_len = UINT64_MAX) {
  const uint64_t len = claimed_len == UINT64_MAX ? header.size() : claimed_len;
  std::vector<std::byte> out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>((len >> (8 * i)) & 0xff));
  for (char c : header) out.push_back(static_cast<std::byte>(c));
  for (uint8_t b : payload) out.push_back(static_cast<std::byte>(b));
  return out;
}

std::vector<uint8_t> f32_bytes(std::initializer_list<float> values) {
  std::vector<uint8_t> out;
  for (float v : values) {
    uint8_t b[4];
    std::memcpy(b, &v, 4);  // the test machine is little-endian, like the format
    out.insert(out.end(), b, b + 4);
  }
  return out;
}

// Expects parse() to throw Error(kind) whose message contains every one of `needles`.
void expect_error(const std::vector<std::byte>& bytes, ErrorKind kind,
                  std::initializer_list<const char*> needles) {
  try {
    SafetensorsFile::parse(bytes, "bad.safetensors");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
    for (const char* needle : needles) EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(Safetensors, ReadsTensorsAndMetadata) {
  // a: F32 [2, 2] at [0, 16); b: F16 [3] at [16, 22); c: BF16 [1] at [22, 24).
  std::vector<uint8_t> payload = f32_bytes({1.0f, -2.0f, 0.5f, 3.25f});
  for (uint8_t b : {0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38}) payload.push_back(b);  // 1, -2, 0.5
  for (uint8_t b : {0x40, 0x40}) payload.push_back(b);                          // bf16 3.0
  const std::string header = R"({"__metadata__":{"format":"pt"},)"
                             R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                             R"("b":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},)"
                             R"("c":{"dtype":"BF16","shape":[1],"data_offsets":[22,24]}})";
  const std::vector<std::byte> bytes = image(header, payload);
  const SafetensorsFile file = SafetensorsFile::parse(bytes, "ok.safetensors");
  ASSERT_EQ(file.tensors().size(), 3u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  const SafetensorsTensor* a = file.find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, SafetensorsDType::kF32);
  EXPECT_EQ(a->shape, (std::vector<uint64_t>{2, 2}));
  EXPECT_EQ(a->elements(), 4u);
  std::vector<float> out(4);
  safetensors_to_f32(file, *a, out);
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, 0.5f, 3.25f}));
  out.resize(3);
  safetensors_to_f32(file, *file.find("b"), out);
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, 0.5f}));
  out.resize(1);
  safetensors_to_f32(file, *file.find("c"), out);
  EXPECT_EQ(out[0], 3.0f);
  EXPECT_EQ(file.find("missing"), nullptr);
  EXPECT_EQ(file.data(*file.find("b")).size(), 6u);
}

TEST(Safetensors, OpensFromDisk) {
  const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                     ("luzao_st_" + std::to_string(::getpid()) + ".safetensors");
  const std::vector<std::byte> bytes =
      image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", f32_bytes({7.0f, 8.0f}));
  {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  }
  const SafetensorsFile file = SafetensorsFile::open(path);
  std::vector<float> out(2);
  safetensors_to_f32(file, file.tensors().at(0), out);
  EXPECT_EQ(out, (std::vector<float>{7.0f, 8.0f}));
  std::filesystem::remove(path);
  EXPECT_THROW(SafetensorsFile::open(path), Error);
}

TEST(Safetensors, ScalarAndEmptyTensors) {
  const std::vector<std::byte> bytes =
      image(R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
            R"("e":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]}})",
            f32_bytes({42.0f}));
  const SafetensorsFile file = SafetensorsFile::parse(bytes, "x");
  EXPECT_EQ(file.find("s")->elements(), 1u);
  EXPECT_EQ(file.find("e")->elements(), 0u);
}

TEST(Safetensors, RejectsShortFile) {
  expect_error({std::byte{1}, std::byte{0}}, ErrorKind::kBadFile, {"truncated"});
}

TEST(Safetensors, RejectsHeaderLengthPastTheFile) {
  expect_error(image(R"({})", {}, 1000), ErrorKind::kBadFile, {"header length 1000", "past"});
  // An absurd length (a corrupt or non-safetensors file) must not overflow.
  expect_error(image(R"({})", {}, UINT64_MAX - 1), ErrorKind::kBadFile, {"header length"});
}

TEST(Safetensors, RejectsBadJson) {
  expect_error(image(R"({"a":{"dtype":"F32",)", {}), ErrorKind::kBadFile, {"not valid JSON"});
  expect_error(image(R"([1,2])", {}), ErrorKind::kBadFile, {"not a JSON object"});
}

TEST(Safetensors, RejectsTruncatedData) {
  // Header promises 16 bytes of data; the file holds 8.
  expect_error(
      image(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", f32_bytes({1, 2})),
      ErrorKind::kBadFile, {"'w'", "outside", "truncated"});
}

TEST(Safetensors, RejectsSizeMismatch) {
  expect_error(
      image(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f32_bytes({1, 2})),
      ErrorKind::kBadFile, {"'w'", "needs 12"});
}

TEST(Safetensors, RejectsUnknownDtype) {
  expect_error(image(R"({"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", {0}),
               ErrorKind::kUnsupported, {"'w'", "F4"});
}

TEST(Safetensors, RejectsMalformedFields) {
  expect_error(image(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", f32_bytes({1, 2})),
               ErrorKind::kBadFile, {"'w'", "dtype"});
  expect_error(
      image(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", f32_bytes({1, 2})),
      ErrorKind::kBadFile, {"'w'", "shape"});
  expect_error(
      image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", f32_bytes({1, 2})),
      ErrorKind::kBadFile, {"'w'", "data_offsets"});
  expect_error(image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", f32_bytes({1, 2})),
               ErrorKind::kBadFile, {"'w'", "data_offsets"});
  expect_error(image(R"({"__metadata__":{"format":1}})", {}), ErrorKind::kBadFile,
               {"__metadata__", "format"});
}

TEST(Safetensors, RejectsShapeOverflow) {
  expect_error(image(R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],)"
                     R"("data_offsets":[0,8]}})",
                     f32_bytes({1, 2})),
               ErrorKind::kBadFile, {"'w'", "overflow"});
}

TEST(Safetensors, RejectsOverlappingTensors) {
  expect_error(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                     f32_bytes({1, 2, 3})),
               ErrorKind::kBadFile, {"overlap"});
}

TEST(Safetensors, ConversionRejectsNonFloatDtypes) {
  const std::vector<std::byte> bytes =
      image(R"({"ids":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", f32_bytes({1, 2}));
  const SafetensorsFile file = SafetensorsFile::parse(bytes, "ints.safetensors");
  std::vector<float> out(2);
  try {
    safetensors_to_f32(file, *file.find("ids"), out);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("'ids'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("I32"), std::string::npos);
  }
}

}  // namespace
}  // namespace luzao
