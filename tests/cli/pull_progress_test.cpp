// Tests of the pull progress formatting and the non-interactive progress output.
#include "cli/pull_progress.h"

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

namespace luzao::cli {
namespace {

TEST(PullProgress, FormatsBytes) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(98362432), "93.8 MiB");  // 98362432 / 2^20 = 93.805...
  EXPECT_EQ(format_bytes(uint64_t{3} << 40), "3.0 TiB");
}

TEST(PullProgress, FormatsALine) {
  const std::string line = format_progress("downloading x", 512, 2048, 1024.0, 10);
  EXPECT_NE(line.find("downloading x"), std::string::npos) << line;
  EXPECT_NE(line.find("[##........]"), std::string::npos) << line;
  EXPECT_NE(line.find("25.0%"), std::string::npos) << line;
  EXPECT_NE(line.find("1.0 KiB/s"), std::string::npos) << line;
  const std::string unknown = format_progress("d", 512, 0, 0.0, 10);
  EXPECT_EQ(unknown, "d 512 B");
}

TEST(PullProgress, PlainOutputPrintsTheEndOfEachTask) {
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  ProgressBar bar(out, false);
  for (uint64_t done = 0; done <= 1000; done += 100) bar("task", done, 1000, false);
  bar("task", 1000, 1000, true);
  std::rewind(out);
  std::string text(4096, '\0');
  text.resize(std::fread(text.data(), 1, text.size(), out));
  std::fclose(out);
  EXPECT_EQ(text.find('\r'), std::string::npos) << text;  // no redrawing in a log file
  EXPECT_NE(text.find("task"), std::string::npos) << text;
  EXPECT_NE(text.find("100.0%"), std::string::npos) << text;
  EXPECT_EQ(text.back(), '\n');
}

}  // namespace
}  // namespace luzao::cli
