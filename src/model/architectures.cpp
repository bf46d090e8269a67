// The architecture table: the one place that lists the families luzao can run.
#include <string>

#include "core/error.h"
#include "model/model.h"

namespace luzao {

std::unique_ptr<Model> load_llama(std::shared_ptr<const GgufFile> file, Device& device,
                                  const LoadOptions& options);
std::unique_ptr<Model> load_qwen2(std::shared_ptr<const GgufFile> file, Device& device,
                                  const LoadOptions& options);
std::unique_ptr<Model> load_qwen3(std::shared_ptr<const GgufFile> file, Device& device,
                                  const LoadOptions& options);

namespace {
constexpr ArchitectureEntry kArchitectures[] = {
    {"llama", load_llama},
    {"qwen2", load_qwen2},
    {"qwen3", load_qwen3},
};
}  // namespace

std::span<const ArchitectureEntry> architectures() {
  return kArchitectures;
}

const ArchitectureEntry& find_architecture(std::string_view name) {
  std::string known;
  for (const ArchitectureEntry& entry : kArchitectures) {
    if (entry.name == name) return entry;
    known += known.empty() ? "" : ", ";
    known += entry.name;
  }
  fail(ErrorKind::kUnsupported, "architecture '{}' is not supported (supported: {})", name, known);
}

std::unique_ptr<Model> load_model(std::shared_ptr<const GgufFile> file, Device& device,
                                  const LoadOptions& options) {
  const std::string arch = file->get_string("general.architecture");
  return find_architecture(arch).load(std::move(file), device, options);
}

}  // namespace luzao
