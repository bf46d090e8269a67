// SHA-256 through OpenSSL's EVP interface, with the hex and base64url encodings pull needs.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace luzao::cli {

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental hasher. Not thread-safe; finish() may be called once.
class Sha256 {
 public:
  Sha256();  // throws Error(kInternal) if OpenSSL cannot provide SHA-256
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::span<const std::byte> data);
  void update(std::string_view data) { update(std::as_bytes(std::span(data.data(), data.size()))); }
  Sha256Digest finish();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

// Lower-case hex of bytes.
std::string to_hex(std::span<const uint8_t> bytes);
// URL-safe base64 without padding, as in a wheel's RECORD file.
std::string to_base64url(std::span<const uint8_t> bytes);

std::string sha256_hex(std::string_view data);
// Hashes a whole file; throws Error(kIo) naming the path when it cannot be read.
std::string sha256_file_hex(const std::filesystem::path& path);

}  // namespace luzao::cli
