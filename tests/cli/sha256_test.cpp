// SHA-256 against the FIPS 180-2 example vectors; hex and base64url encodings.
#include "cli/sha256.h"

#include <cstdio>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"

namespace luzao::cli {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // One million 'a', fed in uneven pieces through the incremental interface.
  Sha256 hasher;
  const std::string piece(999, 'a');
  size_t fed = 0;
  while (fed + piece.size() <= 1000000) {
    hasher.update(piece);
    fed += piece.size();
  }
  hasher.update(std::string(1000000 - fed, 'a'));
  EXPECT_EQ(to_hex(hasher.finish()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, FileHash) {
  const auto path = std::filesystem::temp_directory_path() / "luzao_sha256_test.txt";
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fputs("abc", f);
    std::fclose(f);
  }
  EXPECT_EQ(sha256_file_hex(path), sha256_hex("abc"));
  std::filesystem::remove(path);
  EXPECT_THROW(sha256_file_hex(path), Error);
}

TEST(Sha256, Base64Url) {
  // RFC 4648 test vectors, in the URL-safe alphabet without padding.
  auto enc = [](std::string s) {
    return to_base64url(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  };
  EXPECT_EQ(enc(""), "");
  EXPECT_EQ(enc("f"), "Zg");
  EXPECT_EQ(enc("fo"), "Zm8");
  EXPECT_EQ(enc("foo"), "Zm9v");
  EXPECT_EQ(enc("foob"), "Zm9vYg");
  EXPECT_EQ(enc("fooba"), "Zm9vYmE");
  EXPECT_EQ(enc("foobar"), "Zm9vYmFy");
  EXPECT_EQ(enc("\xfb\xff\xbf"), "-_-_");  // '+' and '/' become '-' and '_'
  // SHA-256("") as a wheel RECORD writes it (standard base64: 47DEQpj8HBSa+/TImW+5JCeu...=).
  Sha256 hasher;
  EXPECT_EQ(to_base64url(hasher.finish()), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
  const uint8_t bytes[] = {0x00, 0xab, 0xff};
  EXPECT_EQ(to_hex(bytes), "00abff");
}

}  // namespace
}  // namespace luzao::cli
