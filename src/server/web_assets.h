// The web chat page's static files, compiled into the binary (no CDN, no files on disk).
#pragma once

#include <span>
#include <string_view>

namespace luzao::server {

struct WebAsset {
  std::string_view path;  // URL path, e.g. "/app.js"
  std::string_view content_type;
  std::string_view body;
};

std::span<const WebAsset> web_assets();

}  // namespace luzao::server
