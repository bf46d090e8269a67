// libcurl download with resume: the response status decides whether bytes append to the partial
// file (206) or replace it (200).
#include "cli/pull_http.h"

#include <curl/curl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>

#include <unistd.h>

#include "core/error.h"

namespace luzao::cli {
namespace {

struct Transfer {
  CURL* curl = nullptr;
  std::FILE* file = nullptr;
  const std::filesystem::path* path = nullptr;
  const ProgressFn* progress = nullptr;
  std::string_view label;
  uint64_t requested_from = 0;  // Range start asked for (0: whole file)
  uint64_t base = 0;            // bytes in the file before this response's body
  uint64_t written = 0;         // body bytes written by this response
  bool body_started = false;
  long status = 0;
  std::optional<uint64_t> range_start;  // from Content-Range of the final response
  std::optional<uint64_t> range_total;
  std::optional<std::string> error;  // a failure inside a callback, reported after curl returns
};

// Parses "bytes a-b/total" or "bytes */total".
void parse_content_range(std::string_view value, Transfer& t) {
  if (value.substr(0, 6) != "bytes ") return;
  value.remove_prefix(6);
  const size_t slash = value.find('/');
  if (slash == std::string_view::npos) return;
  const std::string first(value.substr(0, value.find('-')));
  const std::string total(value.substr(slash + 1));
  char* end = nullptr;
  if (first != "*" && !first.empty()) {
    const unsigned long long v = std::strtoull(first.c_str(), &end, 10);
    if (end != first.c_str()) t.range_start = v;
  }
  if (!total.empty() && total != "*") {
    const unsigned long long v = std::strtoull(total.c_str(), &end, 10);
    if (end != total.c_str()) t.range_total = v;
  }
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  Transfer& t = *static_cast<Transfer*>(user);
  std::string_view line(data, size * count);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.substr(0, 5) == "HTTP/") {  // a new response (after a redirect or 100-continue)
    t.range_start.reset();
    t.range_total.reset();
  } else if (line.size() > 14 && strncasecmp(line.data(), "content-range:", 14) == 0) {
    std::string_view value = line.substr(14);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    parse_content_range(value, t);
  }
  return size * count;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  Transfer& t = *static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (!t.body_started) {
    t.body_started = true;
    curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &t.status);
    if (t.requested_from > 0 && t.status == 206) {
      if (t.range_start.value_or(t.requested_from) != t.requested_from) {
        t.error = "the server resumed at the wrong offset";
        return 0;
      }
      t.base = t.requested_from;
    } else {
      // A whole file (200): start the partial file over.
      if (std::fflush(t.file) != 0 || ::ftruncate(::fileno(t.file), 0) != 0 ||
          std::fseek(t.file, 0, SEEK_SET) != 0) {
        t.error = fmt::format("{}: cannot truncate: {}", t.path->string(), std::strerror(errno));
        return 0;
      }
      t.base = 0;
    }
  }
  if (std::fwrite(data, 1, n, t.file) != n) {
    t.error = fmt::format("{}: write failed: {}", t.path->string(), std::strerror(errno));
    return 0;
  }
  t.written += n;
  return n;
}

int on_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  Transfer& t = *static_cast<Transfer*>(user);
  if (t.progress != nullptr && *t.progress && t.body_started) {
    const uint64_t base = t.base;
    try {  // nothing may unwind through libcurl's C frames
      (*t.progress)(t.label, base + static_cast<uint64_t>(now),
                    total > 0 ? base + static_cast<uint64_t>(total) : 0, false);
    } catch (const std::exception& e) {
      t.error = fmt::format("progress report failed: {}", e.what());
      return 1;  // aborts the transfer
    }
  }
  return 0;
}

void init_curl_once() {
  // curl_global_init is not thread-safe; a function-local static runs it exactly once.
  static const CURLcode init_status = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (init_status != CURLE_OK)
    fail(ErrorKind::kIo, "libcurl initialisation failed: {}", curl_easy_strerror(init_status));
}

DownloadResult download_once(const std::string& url, const std::filesystem::path& part,
                             const ProgressFn& progress, std::string_view label) {
  std::error_code ec;
  const uint64_t existing =
      std::filesystem::is_regular_file(part, ec) ? std::filesystem::file_size(part, ec) : 0;
  std::FILE* file = std::fopen(part.c_str(), existing > 0 ? "r+b" : "wb");
  if (file == nullptr)
    fail(ErrorKind::kIo, "{}: cannot open for writing: {}", part.string(), std::strerror(errno));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file_closer(file, &std::fclose);
  if (std::fseek(file, 0, SEEK_END) != 0)
    fail(ErrorKind::kIo, "{}: cannot seek: {}", part.string(), std::strerror(errno));

  CURL* curl = curl_easy_init();
  if (curl == nullptr) fail(ErrorKind::kIo, "libcurl: cannot create a transfer");
  std::unique_ptr<CURL, void (*)(CURL*)> curl_closer(curl, &curl_easy_cleanup);

  Transfer t;
  t.curl = curl;
  t.file = file;
  t.path = &part;
  t.progress = &progress;
  t.label = label;
  t.requested_from = existing;
  const std::string range = fmt::format("{}-", existing);
  char error_buffer[CURL_ERROR_SIZE] = {};

  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "luzao/0.1");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);  // abort when stalled for a minute
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  if (existing > 0) curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());

  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (t.error) fail(ErrorKind::kIo, "download of {}: {}", url, *t.error);
  if (rc == CURLE_HTTP_RETURNED_ERROR && status == 416 && existing > 0) {
    // Nothing left to send: complete when the server's total matches what we hold.
    if (t.range_total && *t.range_total == existing) {
      if (progress) progress(label, existing, existing, true);
      return {existing, true};
    }
    // The partial file does not belong to the server's copy (larger, or the file changed).
    file_closer.reset();
    std::filesystem::remove(part, ec);
    if (ec)
      fail(ErrorKind::kIo, "{}: cannot remove a stale partial download: {}", part.string(),
           ec.message());
    return download_once(url, part, progress, label);  // existing is 0 now: no further recursion
  }
  if (rc == CURLE_HTTP_RETURNED_ERROR) fail(ErrorKind::kIo, "download of {}: HTTP {}", url, status);
  if (rc != CURLE_OK) {
    fail(ErrorKind::kIo, "download of {}: {}", url,
         error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc));
  }
  if (!t.body_started && existing > 0 && status != 206) {
    // An empty whole-file answer: the old partial content is not part of it.
    if (::ftruncate(::fileno(file), 0) != 0) {
      fail(ErrorKind::kIo, "{}: cannot truncate: {}", part.string(), std::strerror(errno));
    }
    t.body_started = true;
  }
  if (std::fclose(file_closer.release()) != 0) {
    fail(ErrorKind::kIo, "{}: write failed: {}", part.string(), std::strerror(errno));
  }
  const uint64_t size = t.body_started ? t.base + t.written : existing;
  if (progress) progress(label, size, size, true);
  return {size, t.body_started && t.base > 0};
}

struct TextTransfer {
  std::string body;
  size_t max_bytes = 0;
  bool too_large = false;
};

size_t on_text(char* data, size_t size, size_t count, void* user) {
  TextTransfer& t = *static_cast<TextTransfer*>(user);
  const size_t n = size * count;
  if (t.body.size() + n > t.max_bytes) {
    t.too_large = true;
    return 0;
  }
  t.body.append(data, n);
  return n;
}

}  // namespace

std::optional<std::string> http_get_text(const std::string& url, const std::string& accept,
                                         size_t max_bytes) {
  init_curl_once();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) fail(ErrorKind::kIo, "libcurl: cannot create a transfer");
  std::unique_ptr<CURL, void (*)(CURL*)> curl_closer(curl, &curl_easy_cleanup);
  curl_slist* headers = curl_slist_append(nullptr, ("Accept: " + accept).c_str());
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> headers_closer(headers, &curl_slist_free_all);
  TextTransfer t;
  t.max_bytes = max_bytes;
  char error_buffer[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "luzao/0.1");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");  // whatever libcurl can decode
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &on_text);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (t.too_large) fail(ErrorKind::kIo, "{}: the answer is larger than {} bytes", url, max_bytes);
  if (rc == CURLE_HTTP_RETURNED_ERROR && (status == 404 || status == 410)) return std::nullopt;
  if (rc == CURLE_HTTP_RETURNED_ERROR) fail(ErrorKind::kIo, "{}: HTTP {}", url, status);
  if (rc != CURLE_OK) {
    fail(ErrorKind::kIo, "{}: {}", url,
         error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc));
  }
  return std::move(t.body);
}

DownloadResult http_download(const std::string& url, const std::filesystem::path& part,
                             const ProgressFn& progress, std::string_view label) {
  init_curl_once();
  try {
    return download_once(url, part, progress, label);
  } catch (const Error&) {
    // Keep a partial file for the next attempt to resume, but not an empty one.
    std::error_code ec;
    if (std::filesystem::is_regular_file(part, ec) && std::filesystem::file_size(part, ec) == 0) {
      std::filesystem::remove(part, ec);
    }
    throw;
  }
}

}  // namespace luzao::cli
