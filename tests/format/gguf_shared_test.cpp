// Reads the llama.cpp vocabulary GGUFs in ../shared/tokenizers (written by llama.cpp's converter)
// and checks their internal consistency; skipped where that folder is absent.
#include <gtest/gtest.h>

#include <filesystem>

#include "format/gguf.h"

namespace luzao {
namespace {

const std::filesystem::path kTokenizers = LUZAO_SOURCE_DIR "/../shared/tokenizers";

size_t array_length(const GgufFile& f, std::string_view key) {
  const GgufValue* v = f.find(key);
  if (v == nullptr) return 0;
  return std::get<std::shared_ptr<GgufArray>>(v->value)->items.size();
}

TEST(GgufShared, VocabularyFilesParseConsistently) {
  if (!std::filesystem::is_directory(kTokenizers)) {
    GTEST_SKIP() << "no " << kTokenizers << " (the shared tokenizer GGUFs are not checked out)";
  }
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kTokenizers)) {
    if (entry.path().extension() != ".gguf") continue;
    SCOPED_TRACE(entry.path().string());
    ++files;
    const GgufFile f = GgufFile::open(entry.path());
    EXPECT_TRUE(f.version() == 2 || f.version() == 3);
    EXPECT_FALSE(f.get_string("general.architecture").empty());
    const std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
    EXPECT_GT(tokens.size(), 1000u);
    if (f.find("tokenizer.ggml.token_type") != nullptr) {
      EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type").size(), tokens.size());
    }
    if (f.find("tokenizer.ggml.scores") != nullptr) {
      EXPECT_EQ(f.get_float_array("tokenizer.ggml.scores").size(), tokens.size());
    }
    for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"}) {
      if (const auto id = f.find_uint(key)) {
        EXPECT_LT(*id, tokens.size()) << key;
      }
    }
    if (f.find("tokenizer.ggml.merges") != nullptr) {
      EXPECT_GT(array_length(f, "tokenizer.ggml.merges"), 0u);
    }
    // Every tensor (vocab-only files usually have none) lies inside the file.
    for (const GgufTensorInfo& t : f.tensors()) EXPECT_EQ(f.tensor_data(t).size(), t.bytes);
  }
  EXPECT_GT(files, 0u);
}

}  // namespace
}  // namespace luzao
