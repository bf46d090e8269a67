// Plugin discovery and loading: dlopen, entry point, table validation, search path.
#include "backend/plugin/plugin_loader.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <system_error>

#include "core/error.h"
#include "luzao/plugin.h"

namespace luzao {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kReservedNames[] = {"cpu", "reference", "opencl", "cuda"};

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 31) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  for (std::string_view r : kReservedNames) {
    if (name == r) return false;
  }
  return true;
}

// Names of the slots that are null, empty when the table is complete.
std::string missing_slots(const luzao_plugin& p) {
  std::string out;
  const auto need = [&out](const void* fn, const char* name) {
    if (fn == nullptr) out += fmt::format("{}{}", out.empty() ? "" : ", ", name);
  };
#define LUZAO_NEED(part, slot) need(reinterpret_cast<const void*>(p.part.slot), #part "." #slot)
  LUZAO_NEED(device, probe);
  LUZAO_NEED(device, count);
  LUZAO_NEED(device, open);
  LUZAO_NEED(device, close);
  LUZAO_NEED(device, info);
  LUZAO_NEED(device, supports);
  LUZAO_NEED(buffer, alloc);
  LUZAO_NEED(buffer, free);
  LUZAO_NEED(buffer, map_host);
  LUZAO_NEED(buffer, upload);
  LUZAO_NEED(buffer, download);
  LUZAO_NEED(buffer, copy);
  LUZAO_NEED(stream, create);
  LUZAO_NEED(stream, destroy);
  LUZAO_NEED(stream, get_rows);
  LUZAO_NEED(stream, rms_norm);
  LUZAO_NEED(stream, matmul);
  LUZAO_NEED(stream, rope);
  LUZAO_NEED(stream, attention);
  LUZAO_NEED(stream, swiglu);
  LUZAO_NEED(stream, add);
  LUZAO_NEED(stream, mul);
  LUZAO_NEED(stream, scale);
  LUZAO_NEED(stream, softmax);
  LUZAO_NEED(stream, set_rows);
  LUZAO_NEED(stream, synchronize);
#undef LUZAO_NEED
  return out;
}

// dlerror() text, or a fallback.
std::string dl_message() {
  const char* e = dlerror();
  return e != nullptr ? e : "unknown dynamic-loader error";
}

}  // namespace

PluginLibrary::PluginLibrary(void* handle, const luzao_plugin* api, fs::path path)
    : handle_(handle), api_(api), path_(std::move(path)), name_(api->name) {}

PluginLibrary::~PluginLibrary() {
  if (handle_ != nullptr) dlclose(handle_);
}

std::shared_ptr<PluginLibrary> PluginLibrary::load(const fs::path& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    fail(ErrorKind::kIo, "plugin {}: cannot load: {}", path.string(), dl_message());
  }
  // Closes the library again on every failure below.
  std::unique_ptr<void, int (*)(void*)> guard(handle, dlclose);
  void* sym = dlsym(handle, LUZAO_PLUGIN_ENTRY_SYMBOL);
  if (sym == nullptr) {
    fail(ErrorKind::kBadFile, "plugin {}: no {} symbol (not a luzao plugin)", path.string(),
         LUZAO_PLUGIN_ENTRY_SYMBOL);
  }
  auto entry = reinterpret_cast<luzao_plugin_entry_fn>(sym);
  const luzao_plugin* api = entry(LUZAO_PLUGIN_ABI_VERSION);
  if (api == nullptr) {
    fail(ErrorKind::kUnsupported, "plugin {}: declines plugin ABI version {}", path.string(),
         LUZAO_PLUGIN_ABI_VERSION);
  }
  if (api->abi_version != LUZAO_PLUGIN_ABI_VERSION) {
    fail(ErrorKind::kUnsupported, "plugin {}: built for plugin ABI version {}, luzao speaks {}",
         path.string(), api->abi_version, LUZAO_PLUGIN_ABI_VERSION);
  }
  if (api->struct_size < sizeof(luzao_plugin)) {
    fail(ErrorKind::kBadFile, "plugin {}: function table of {} bytes, ABI {} needs {}",
         path.string(), api->struct_size, LUZAO_PLUGIN_ABI_VERSION, sizeof(luzao_plugin));
  }
  if (api->op_set_version < 1) {
    fail(ErrorKind::kBadFile, "plugin {}: op set version 0", path.string());
  }
  if (api->name == nullptr || !valid_name(api->name)) {
    fail(ErrorKind::kBadFile,
         "plugin {}: name '{}' is not 1-31 characters of [a-z0-9_] or is reserved (cpu, "
         "reference, opencl, cuda)",
         path.string(), api->name == nullptr ? "" : api->name);
  }
  if (const std::string missing = missing_slots(*api); !missing.empty()) {
    fail(ErrorKind::kBadFile, "plugin {}: null function slots: {}", path.string(), missing);
  }
  guard.release();
  return std::shared_ptr<PluginLibrary>(new PluginLibrary(handle, api, path));
}

int32_t PluginLibrary::probe() const {
  return api_->device.probe();
}

int PluginLibrary::device_count() const {
  if (probe() <= 0) return 0;
  luzao_error err{};
  int32_t n = 0;
  if (api_->device.count(&n, &err) != LUZAO_STATUS_OK) {
    err.message[sizeof(err.message) - 1] = '\0';
    fail(ErrorKind::kIo, "plugin {}: cannot count devices: {}", name_, err.message);
  }
  return n < 0 ? 0 : n;
}

std::vector<fs::path> default_plugin_dirs() {
  std::vector<fs::path> dirs;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    dirs.push_back((exe.parent_path() / ".." / "lib" / "luzao" / "plugins").lexically_normal());
#ifdef LUZAO_PLUGIN_DIR
  const fs::path installed = LUZAO_PLUGIN_DIR;
  if (dirs.empty() || dirs.front() != installed) dirs.push_back(installed);
#endif
  return dirs;
}

std::vector<fs::path> plugin_search_path() {
  std::vector<fs::path> out;
  if (const char* env = std::getenv("LUZAO_PLUGIN_PATH"); env != nullptr) {
    std::string_view rest = env;
    while (!rest.empty()) {
      const size_t colon = rest.find(':');
      const std::string_view entry = rest.substr(0, colon);
      if (!entry.empty()) out.emplace_back(entry);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  for (fs::path& d : default_plugin_dirs()) out.push_back(std::move(d));
  return out;
}

std::vector<PluginCandidate> discover_plugins(const std::vector<fs::path>& search) {
  std::vector<fs::path> files;
  for (const fs::path& entry : search) {
    std::error_code ec;
    if (fs::is_directory(entry, ec)) {
      std::vector<fs::path> found;
      for (const auto& f : fs::directory_iterator(entry, ec)) {
        const std::string name = f.path().filename().string();
        if (name.starts_with("libluzao-") && name.ends_with(".so")) found.push_back(f.path());
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(entry, ec)) {
      files.push_back(entry);
    }
  }
  std::vector<PluginCandidate> out;
  std::set<std::string> names;
  std::set<fs::path> seen;
  for (const fs::path& f : files) {
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(f, ec);
    if (!seen.insert(ec ? f : canonical).second) continue;  // the same file twice on the path
    PluginCandidate c{f, nullptr, {}};
    try {
      c.library = PluginLibrary::load(f);
      if (!names.insert(c.library->name()).second) {
        c.error = fmt::format("plugin {}: name '{}' is already taken by an earlier plugin",
                              f.string(), c.library->name());
        c.library.reset();
      }
    } catch (const Error& e) {
      c.error = e.what();
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace luzao
