// HTTP(S) downloads for `luzao pull` through libcurl: redirects, one-line errors, resumable
// .part files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "cli/pull_progress.h"

namespace luzao::cli {

struct DownloadResult {
  uint64_t size = 0;     // bytes in the file afterwards
  bool resumed = false;  // the server continued an existing partial file
};

// Downloads `url` into `part`. If `part` exists it asks for the rest with a Range request; a
// server that answers with the whole file instead restarts it. A part that is already complete
// (HTTP 416 with a matching total) is kept as is. Throws Error(kIo) with one line naming the URL
// on network and HTTP errors (4xx/5xx), and naming the file on write errors. `progress` may be
// empty. Thread-compatible: no shared state beyond libcurl's global initialisation.
DownloadResult http_download(const std::string& url, const std::filesystem::path& part,
                             const ProgressFn& progress, std::string_view label);

// GETs a small document (a package index page) with the given Accept header. Returns nullopt
// when the server answers 404 or 410 (no such document); throws Error(kIo) naming the URL on
// other failures and when the body exceeds `max_bytes`.
std::optional<std::string> http_get_text(const std::string& url, const std::string& accept,
                                         size_t max_bytes);

}  // namespace luzao::cli
