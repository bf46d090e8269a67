// Finding and loading backend plugins (shared libraries exporting luzao_plugin_entry, see
// include/luzao/plugin.h) and turning their devices into luzao::Device objects.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

struct luzao_plugin;

namespace luzao {

// One loaded plugin library. Devices opened from it keep it loaded. Thread-safe (immutable).
class PluginLibrary {
 public:
  // dlopen()s `path`, calls its entry point and validates the table (ABI version, size, name,
  // no null slots). Throws Error naming the path: kIo when it cannot be loaded, kUnsupported for
  // another ABI version, kBadFile for a malformed table.
  static std::shared_ptr<PluginLibrary> load(const std::filesystem::path& path);
  ~PluginLibrary();
  PluginLibrary(const PluginLibrary&) = delete;
  PluginLibrary& operator=(const PluginLibrary&) = delete;

  const luzao_plugin& api() const { return *api_; }
  const std::string& name() const { return name_; }
  const std::filesystem::path& path() const { return path_; }
  // The plugin's probe score: > 0 when it can run on this machine.
  int32_t probe() const;
  // Number of devices it offers here (0 when probe() <= 0). Throws Error on a plugin failure.
  int device_count() const;

 private:
  PluginLibrary(void* handle, const luzao_plugin* api, std::filesystem::path path);
  void* handle_;
  const luzao_plugin* api_;
  std::filesystem::path path_;
  std::string name_;
};

// A plugin found on the search path, loaded, or the reason it could not be.
struct PluginCandidate {
  std::filesystem::path path;
  std::shared_ptr<PluginLibrary> library;  // null when `error` says why
  std::string error;
};

// Where plugins are looked for, in order: each entry of $LUZAO_PLUGIN_PATH (':'-separated
// directories or library files), then default_plugin_dirs().
std::vector<std::filesystem::path> plugin_search_path();
// <directory of the running executable>/../lib/luzao/plugins and the install-time directory.
std::vector<std::filesystem::path> default_plugin_dirs();

// Loads every plugin on `search`: in a directory, files named libluzao-*.so; a file entry is
// loaded whatever its name. A directory that does not exist is skipped. When two plugins share a
// name the first wins and later ones carry an error. Never throws for a bad plugin.
std::vector<PluginCandidate> discover_plugins(const std::vector<std::filesystem::path>& search);

// Device `index` of a loaded plugin, named "<plugin>:<index>". Arguments are validated as for the
// host backends before they cross the C ABI; plugin failures become Error with the plugin's own
// message. Throws Error(kInvalidArgument) for an index out of range.
std::unique_ptr<Device> open_plugin_device(std::shared_ptr<PluginLibrary> library, int index);

}  // namespace luzao
