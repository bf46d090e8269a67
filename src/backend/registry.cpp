// The device table: the in-tree backends (cpu, reference, and opencl / cuda when built) and the
// plugins found on the plugin search path.
#include "backend/registry.h"

#include <charconv>

#include "backend/cpu/cpu_backend.h"
#include "backend/plugin/plugin_loader.h"
#include "backend/reference/reference_backend.h"
#include "core/error.h"
#ifdef LUZAO_HAVE_OPENCL
#include "backend/opencl/opencl_backend.h"
#endif
#ifdef LUZAO_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace luzao {
namespace {

// An in-tree backend: how many devices it has here and how to open one.
struct Backend {
  std::string_view name;
  int (*count)();  // throws when the driver is present but broken
  std::unique_ptr<Device> (*open)(int index, const DeviceOptions&);
  bool indexed;  // names its devices "name:N" (otherwise just "name")
};

constexpr Backend kBackends[] = {
    {"cpu", [] { return 1; },
     [](int, const DeviceOptions& o) { return make_cpu_device(o.threads); }, false},
    {"reference", [] { return 1; },
     [](int, const DeviceOptions&) { return make_reference_device(); }, false},
#ifdef LUZAO_HAVE_OPENCL
    {"opencl", opencl_device_count,
     [](int i, const DeviceOptions&) { return make_opencl_device(i); }, true},
#endif
#ifdef LUZAO_HAVE_CUDA
    {"cuda", cuda_device_count, [](int i, const DeviceOptions&) { return make_cuda_device(i); },
     true},
#endif
};

struct Spec {
  std::string_view name;
  int index = 0;
};

Spec parse_spec(std::string_view spec) {
  Spec s{spec, 0};
  const size_t colon = spec.find(':');
  if (colon == std::string_view::npos) return s;
  s.name = spec.substr(0, colon);
  const std::string_view digits = spec.substr(colon + 1);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), s.index);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || s.index < 0) {
    fail(ErrorKind::kInvalidArgument, "device '{}': expected NAME or NAME:INDEX (e.g. opencl:0)",
         spec);
  }
  return s;
}

std::string known_names(const std::vector<PluginCandidate>& plugins) {
  std::string known;
  for (const Backend& b : kBackends) {
    known += fmt::format("{}{}{}", known.empty() ? "" : ", ", b.name, b.indexed ? ":N" : "");
  }
  for (const PluginCandidate& p : plugins) {
    if (p.library) known += fmt::format(", {}:N (plugin)", p.library->name());
  }
  return known;
}

}  // namespace

std::unique_ptr<Device> open_device(std::string_view spec, const DeviceOptions& options) {
  if (options.threads < 0) {
    fail(ErrorKind::kInvalidArgument, "device '{}': threads must be >= 0, got {}", spec,
         options.threads);
  }
  const Spec s = parse_spec(spec);
  for (const Backend& b : kBackends) {
    if (s.name != b.name) continue;
    const int n = b.count();
    if (s.index >= n) {
      fail(ErrorKind::kInvalidArgument, "device '{}': the {} backend has {} device(s) here", spec,
           b.name, n);
    }
    return b.open(s.index, options);
  }
  const std::vector<PluginCandidate> plugins = discover_plugins(plugin_search_path());
  for (const PluginCandidate& p : plugins) {
    if (p.library && p.library->name() == s.name) return open_plugin_device(p.library, s.index);
  }
  fail(ErrorKind::kInvalidArgument, "unknown device '{}' (this build knows: {})", spec,
       known_names(plugins));
}

std::vector<DeviceListing> list_devices(const DeviceOptions& options) {
  std::vector<DeviceListing> out;
  const auto add = [&out](std::string spec, auto&& open) {
    DeviceListing row{std::move(spec), nullptr, {}};
    try {
      row.device = open();
    } catch (const Error& e) {
      row.error = e.what();
    }
    out.push_back(std::move(row));
  };
  for (const Backend& b : kBackends) {
    int n = 0;
    try {
      n = b.count();
    } catch (const Error& e) {
      out.push_back({std::string(b.name), nullptr, e.what()});
      continue;
    }
    for (int i = 0; i < n; ++i) {
      add(b.indexed ? fmt::format("{}:{}", b.name, i) : std::string(b.name),
          [&] { return b.open(i, options); });
    }
  }
  for (const PluginCandidate& p : discover_plugins(plugin_search_path())) {
    if (!p.library) {
      out.push_back({p.path.string(), nullptr, p.error});
      continue;
    }
    int n = 0;
    try {
      n = p.library->device_count();
    } catch (const Error& e) {
      out.push_back({p.path.string(), nullptr, e.what()});
      continue;
    }
    for (int i = 0; i < n; ++i) {
      add(fmt::format("{}:{}", p.library->name(), i),
          [&] { return open_plugin_device(p.library, i); });
    }
  }
  return out;
}

std::vector<std::unique_ptr<Device>> enumerate_devices(const DeviceOptions& options) {
  std::vector<std::unique_ptr<Device>> out;
  for (DeviceListing& row : list_devices(options)) {
    if (row.device) out.push_back(std::move(row.device));
  }
  return out;
}

}  // namespace luzao
