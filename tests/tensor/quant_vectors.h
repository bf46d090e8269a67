// Reader for tests/tensor/data/quant_vectors.bin, the golden vectors written by
// scripts/gen_quant_vectors.py (gguf package + llama.cpp reference code).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace luzao::testing {

struct QuantVectors {
  std::map<std::string, std::vector<uint8_t>> entries;

  const std::vector<uint8_t>& bytes(const std::string& name) const {
    auto it = entries.find(name);
    if (it == entries.end()) throw std::runtime_error("quant_vectors.bin has no entry " + name);
    return it->second;
  }
  std::vector<float> floats(const std::string& name) const {
    const std::vector<uint8_t>& b = bytes(name);
    std::vector<float> out(b.size() / sizeof(float));
    if (!out.empty()) std::memcpy(out.data(), b.data(), out.size() * sizeof(float));
    return out;
  }
  std::vector<int64_t> ints(const std::string& name) const {
    const std::vector<uint8_t>& b = bytes(name);
    std::vector<int64_t> out(b.size() / sizeof(int64_t));
    if (!out.empty()) std::memcpy(out.data(), b.data(), out.size() * sizeof(int64_t));
    return out;
  }
};

inline constexpr const char* kQuantVectorsPath =
    LUZAO_SOURCE_DIR "/tests/tensor/data/quant_vectors.bin";

// Throws std::runtime_error on a missing or malformed file (the file is part of the repository).
inline QuantVectors load_quant_vectors(const std::string& path = kQuantVectorsPath) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error("cannot open " + path + " (rerun scripts/gen_quant_vectors.py)");
  const std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  size_t pos = 0;
  auto take = [&](void* dst, size_t n) {
    if (data.size() - pos < n) throw std::runtime_error(path + ": truncated");
    std::memcpy(dst, data.data() + pos, n);
    pos += n;
  };
  char magic[4];
  uint32_t version = 0;
  uint32_t count = 0;
  take(magic, 4);
  take(&version, 4);
  take(&count, 4);
  if (std::memcmp(magic, "LZQV", 4) != 0 || version != 1) {
    throw std::runtime_error(path + ": not a version 1 LZQV file");
  }
  QuantVectors out;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t name_len = 0;
    take(&name_len, 4);
    std::string name(name_len, '\0');
    take(name.data(), name_len);
    uint32_t kind = 0;
    uint64_t size = 0;
    take(&kind, 4);
    take(&size, 8);
    std::vector<uint8_t> payload(size);
    take(payload.data(), size);
    out.entries.emplace(std::move(name), std::move(payload));
  }
  return out;
}

}  // namespace luzao::testing
