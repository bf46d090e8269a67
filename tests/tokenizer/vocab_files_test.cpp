// The real vocabularies in ../shared/tokenizers against llama.cpp: the shared .inp/.out vectors
// (llama.cpp's test-tokenizer-0: no BOS, no special parsing), the vectors that gen_vectors.py
// recorded with llama-cpp-python for every vocabulary (both modes, token pieces, EOG ids), and
// detokenize(tokenize(text)) == text on chunks of ../shared/data.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

namespace luzao {
namespace {

namespace fs = std::filesystem;

const fs::path kShared = fs::path(LUZAO_SOURCE_DIR) / ".." / "shared";
const fs::path kData = fs::path(LUZAO_SOURCE_DIR) / "tests" / "tokenizer" / "data";
constexpr std::string_view kSep = "\n__ggml_vocab_test__\n";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Texts of an .inp file: each is followed by the separator line.
std::vector<std::string> read_inputs(const fs::path& path) {
  const std::string all = read_file(path);
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < all.size();) {
    const size_t sep = all.find(kSep, pos);
    if (sep == std::string::npos) break;
    texts.push_back(all.substr(pos, sep - pos));
    pos = sep + kSep.size();
  }
  return texts;
}

// One line of space-separated ids per input.
std::vector<std::vector<int32_t>> read_outputs(const fs::path& path) {
  std::istringstream in(read_file(path));
  std::vector<std::vector<int32_t>> lines;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ids(line);
    lines.emplace_back();
    for (int32_t id; ids >> id;) lines.back().push_back(id);
  }
  return lines;
}

std::vector<fs::path> vocab_files() {
  std::vector<fs::path> files;
  const fs::path dir = kShared / "tokenizers";
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".gguf") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// "ggml-vocab-qwen2.gguf" -> "qwen2"
std::string vocab_name(const fs::path& file) {
  std::string stem = file.stem().string();
  return stem.substr(std::string_view("ggml-vocab-").size());
}

// Each vocabulary is loaded once for the whole binary.
const Tokenizer& load(const fs::path& file) {
  static std::map<fs::path, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[file];
  if (!slot) slot = Tokenizer::from_gguf(GgufFile::open(file));
  return *slot;
}

#define SKIP_WITHOUT_SHARED() \
  if (vocab_files().empty())  \
  GTEST_SKIP() << "no vocabularies in " << kShared.string() << "/tokenizers (../shared is absent)"

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

// Tokenizes every input and counts exact matches; reports the first few mismatches.
int check_vectors(const Tokenizer& tok, const std::vector<std::string>& texts,
                  const std::vector<std::vector<int32_t>>& expected, bool special,
                  const std::string& what) {
  EXPECT_EQ(texts.size(), expected.size()) << what;
  int passed = 0, reported = 0;
  for (size_t i = 0; i < std::min(texts.size(), expected.size()); ++i) {
    const std::vector<int32_t> got = tok.tokenize(texts[i], special, special);
    if (got == expected[i]) {
      ++passed;
    } else if (reported++ < 5) {
      ADD_FAILURE() << what << " input " << i << " '" << texts[i] << "'\n  got:     " << show(got)
                    << "\n  expected:" << show(expected[i]);
    }
  }
  return passed;
}

TEST(VocabFiles, EveryVocabularyLoads) {
  SKIP_WITHOUT_SHARED();
  for (const fs::path& file : vocab_files()) {
    const Tokenizer& tok = load(file);
    EXPECT_GT(tok.n_vocab(), 1000) << file;
    EXPECT_GE(tok.eos(), 0) << file;
    EXPECT_TRUE(tok.is_end_of_generation(tok.eos())) << file;
  }
}

TEST(VocabFiles, SharedVectors) {
  SKIP_WITHOUT_SHARED();
  int files = 0;
  for (const fs::path& file : vocab_files()) {
    const fs::path inp = file.string() + ".inp", out = file.string() + ".out";
    if (!fs::exists(inp) || !fs::exists(out)) continue;
    const auto texts = read_inputs(inp);
    const int passed = check_vectors(load(file), texts, read_outputs(out), false, file.filename());
    std::printf("  %-16s %d/%zu shared vectors\n", vocab_name(file).c_str(), passed, texts.size());
    EXPECT_EQ(passed, static_cast<int>(texts.size())) << file;
    ++files;
  }
  EXPECT_GE(files, 1) << "no .inp/.out pairs in ../shared/tokenizers";
}

TEST(VocabFiles, RecordedVectors) {
  SKIP_WITHOUT_SHARED();
  const auto texts = read_inputs(kData / "extra.inp");
  ASSERT_GT(texts.size(), 40u);
  for (const fs::path& file : vocab_files()) {
    const std::string name = vocab_name(file);
    for (bool special : {false, true}) {
      const fs::path out = kData / (name + (special ? ".special.out" : ".out"));
      ASSERT_TRUE(fs::exists(out)) << out << " missing: run tests/tokenizer/gen_vectors.py";
      const int passed = check_vectors(load(file), texts, read_outputs(out), special,
                                       name + (special ? " (special)" : ""));
      std::printf("  %-16s %d/%zu recorded vectors%s\n", name.c_str(), passed, texts.size(),
                  special ? " with add_special + parse_special" : "");
      EXPECT_EQ(passed, static_cast<int>(texts.size())) << name;
    }
  }
}

// FNV-1a 64 over (little-endian u32 length, bytes) of each chunk, as gen_vectors.py computes it.
class Fnv {
 public:
  void add(std::string_view chunk) {
    for (int k = 0; k < 4; ++k) eat(static_cast<uint8_t>(chunk.size() >> (8 * k)));
    for (char c : chunk) eat(static_cast<uint8_t>(c));
  }
  std::string hex() const {
    char s[32];
    std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(h_));
    return s;
  }

 private:
  void eat(uint8_t b) {
    h_ ^= b;
    h_ *= 0x100000001B3ull;
  }
  uint64_t h_ = 0xCBF29CE484222325ull;
};

std::string pieces_digest(const Tokenizer& tok, bool render_special) {
  Fnv fnv;
  for (int32_t id = 0; id < tok.n_vocab(); ++id) fnv.add(tok.token_to_piece(id, render_special));
  return fnv.hex();
}

TEST(VocabFiles, PiecesAndSpecialIds) {
  SKIP_WITHOUT_SHARED();
  for (const fs::path& file : vocab_files()) {
    const std::string name = vocab_name(file);
    const Tokenizer& tok = load(file);
    std::istringstream meta(read_file(kData / (name + ".meta")));
    std::map<std::string, std::string> fields;
    for (std::string line; std::getline(meta, line);) {
      const size_t space = line.find(' ');
      fields[line.substr(0, space)] = space == std::string::npos ? "" : line.substr(space + 1);
    }
    ASSERT_FALSE(fields.empty()) << name << ".meta missing: run tests/tokenizer/gen_vectors.py";
    EXPECT_EQ(std::to_string(tok.n_vocab()), fields["n_vocab"]) << name;
    EXPECT_EQ(std::to_string(tok.bos()), fields["bos"]) << name;
    EXPECT_EQ(std::to_string(tok.eos()), fields["eos"]) << name;
    std::string eog;
    for (int32_t id = 0; id < tok.n_vocab(); ++id) {
      if (tok.is_end_of_generation(id)) eog += (eog.empty() ? "" : " ") + std::to_string(id);
    }
    EXPECT_EQ(eog, fields["eog"]) << name;
    EXPECT_EQ(pieces_digest(tok, true), fields["pieces_special"]) << name;
    EXPECT_EQ(pieces_digest(tok, false), fields["pieces_plain"]) << name;
  }
}

// Chunks of the shared text files, cut at line ends.
std::vector<std::string> text_chunks(size_t max_bytes, size_t chunk) {
  std::vector<std::string> chunks;
  for (const char* name : {"tinyshakespeare.txt", "hongloumeng.txt"}) {
    std::string all = read_file(kShared / "data" / name);
    all.resize(std::min(all.size(), all.rfind('\n', max_bytes) + 1));  // whole lines only
    for (size_t pos = 0; pos < all.size();) {
      size_t end = all.find('\n', std::min(all.size(), pos + chunk));
      end = end == std::string::npos ? all.size() : end + 1;
      chunks.push_back(all.substr(pos, end - pos));
      pos = end;
    }
  }
  return chunks;
}

TEST(VocabFiles, RealTextMatchesLlamaCpp) {
  SKIP_WITHOUT_SHARED();
  const auto chunks = text_chunks(48 * 1024, 4096);
  ASSERT_FALSE(chunks.empty()) << "../shared/data has no text";
  for (const fs::path& file : vocab_files()) {
    const std::string name = vocab_name(file);
    std::istringstream recorded(read_file(kData / (name + ".chunks")));
    int passed = 0;
    size_t i = 0;
    for (std::string line; std::getline(recorded, line) && i < chunks.size(); ++i) {
      const std::vector<int32_t> ids = load(file).tokenize(chunks[i], false, false);
      Fnv fnv;
      fnv.add(std::string_view(reinterpret_cast<const char*>(ids.data()), ids.size() * 4));
      if (line == std::to_string(ids.size()) + " " + fnv.hex()) {
        ++passed;
      } else {
        ADD_FAILURE() << name << " chunk " << i << ": " << ids.size() << " " << fnv.hex()
                      << ", llama.cpp: " << line;
      }
    }
    std::printf("  %-16s %d/%zu text chunks as llama.cpp\n", name.c_str(), passed, chunks.size());
    EXPECT_EQ(passed, static_cast<int>(chunks.size())) << name;
  }
}

TEST(VocabFiles, DetokenizeInvertsTokenize) {
  SKIP_WITHOUT_SHARED();
  const auto chunks = text_chunks(48 * 1024, 4096);
  ASSERT_FALSE(chunks.empty()) << "../shared/data has no text";
  for (const fs::path& file : vocab_files()) {
    const Tokenizer& tok = load(file);
    // SPM vocabularies put a space before the text (add_space_prefix, on for all of these).
    const bool spm = tok.find_token("<0x0A>") >= 0;
    int passed = 0;
    for (const std::string& chunk : chunks) {
      const std::string back = tok.detokenize(tok.tokenize(chunk, false, false), false);
      if (back == (spm ? " " + chunk : chunk)) ++passed;
    }
    std::printf("  %-16s %d/%zu chunks round-trip\n", vocab_name(file).c_str(), passed,
                chunks.size());
    EXPECT_EQ(passed, static_cast<int>(chunks.size())) << file;
  }
}

}  // namespace
}  // namespace luzao
