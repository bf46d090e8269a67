// Importance matrices ("imatrix"): per weight matrix, the sum of squared input activations of
// each column and the number of tokens summed. Stored as llama.cpp's GGUF imatrix files do
// (general.type "imatrix"; tensors <weight>.in_sum2 [n_per_row] and <weight>.counts [1]);
// llama.cpp's older .dat files are read too. `luzao imatrix` writes them, `luzao quantize
// --imatrix` reads them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace luzao::cli {

class Imatrix {
 public:
  struct Entry {
    std::vector<double> sum2;  // per column: sum over tokens of x^2
    double count = 0;          // tokens summed
  };

  // Reads a GGUF imatrix or a legacy .dat file. Throws Error(kBadFile / kIo) naming the path and
  // the entry at fault.
  static Imatrix load(const std::filesystem::path& path);
  // Writes GGUF to path.tmp and renames. Throws Error(kIo).
  void save(const std::filesystem::path& path) const;

  // Adds `rows` activation rows of `cols` values to the entry `name` (created on first use;
  // throws Error(kInvalidArgument) when cols differs from the entry's width).
  void accumulate(const std::string& name, const float* rows, int64_t n_rows, int64_t cols);

  // Mean squared activation per column (sum2 / count), or empty when `name` has no entry.
  std::vector<float> importance(const std::string& name) const;

  const std::map<std::string, Entry>& entries() const { return entries_; }
  void set_entry(std::string name, Entry entry) { entries_[std::move(name)] = std::move(entry); }
  std::vector<std::string> datasets;  // text files the statistics came from
  uint32_t chunk_count = 0;
  uint32_t chunk_size = 0;

 private:
  std::map<std::string, Entry> entries_;
};

}  // namespace luzao::cli
