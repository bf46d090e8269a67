// Strict reading of pool files (yaml-cpp; JSON is YAML) and of probe files, which are written as
// JSON by hand and read back through the same YAML parser.
#include "pool/pool_spec.h"

#include <cmath>
#include <ctime>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/error.h"

namespace luzao::pool {
namespace {

// Where a node sits, for error messages: "pool.yaml: devices[2].price_per_hour".
struct Ctx {
  std::string_view origin;
  std::string path;
  Ctx key(std::string_view k) const {
    return {origin, path.empty() ? std::string(k) : fmt::format("{}.{}", path, k)};
  }
  Ctx index(size_t i) const { return {origin, fmt::format("{}[{}]", path, i)}; }
  [[noreturn]] void bad(std::string_view problem) const {
    fail(ErrorKind::kBadFile, "{}: {}: {}", origin, path.empty() ? "(top level)" : path, problem);
  }
};

std::string_view kind_name(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
      return "null";
    default:
      return "undefined";
  }
}

// Calls on(key, value) for every entry of a map, rejecting keys not in `allowed` and duplicates.
void for_each_key(const YAML::Node& node, const Ctx& ctx, const std::set<std::string>& allowed,
                  const std::function<void(const std::string&, const YAML::Node&)>& on) {
  if (!node.IsMap()) ctx.bad(fmt::format("expected a map, found {}", kind_name(node)));
  std::set<std::string> seen;
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) ctx.bad("map keys must be strings");
    const std::string key = entry.first.Scalar();
    if (!allowed.empty() && !allowed.contains(key)) {
      std::string known;
      for (const std::string& k : allowed) known += (known.empty() ? "" : ", ") + k;
      ctx.key(key).bad(fmt::format("unknown key (known: {})", known));
    }
    if (!seen.insert(key).second) ctx.key(key).bad("duplicate key");
    on(key, entry.second);
  }
}

std::string as_string(const YAML::Node& n, const Ctx& ctx) {
  if (!n.IsScalar()) ctx.bad(fmt::format("expected a string, found {}", kind_name(n)));
  return n.Scalar();
}

double as_number(const YAML::Node& n, const Ctx& ctx) {
  if (!n.IsScalar()) ctx.bad(fmt::format("expected a number, found {}", kind_name(n)));
  double v = 0;
  if (!YAML::convert<double>::decode(n, v) || !std::isfinite(v)) {
    ctx.bad(fmt::format("expected a number, found '{}'", n.Scalar()));
  }
  return v;
}

double as_non_negative(const YAML::Node& n, const Ctx& ctx) {
  const double v = as_number(n, ctx);
  if (v < 0) ctx.bad(fmt::format("must not be negative (found {})", v));
  return v;
}

double as_positive(const YAML::Node& n, const Ctx& ctx) {
  const double v = as_number(n, ctx);
  if (v <= 0) ctx.bad(fmt::format("must be positive (found {})", v));
  return v;
}

bool as_bool(const YAML::Node& n, const Ctx& ctx) {
  if (!n.IsScalar()) ctx.bad(fmt::format("expected true or false, found {}", kind_name(n)));
  bool v = false;
  if (!YAML::convert<bool>::decode(n, v)) {
    ctx.bad(fmt::format("expected true or false, found '{}'", n.Scalar()));
  }
  return v;
}

int as_count(const YAML::Node& n, const Ctx& ctx) {
  const double v = as_non_negative(n, ctx);
  if (v != std::floor(v) || v > 1e6) ctx.bad(fmt::format("expected a whole number, found {}", v));
  return static_cast<int>(v);
}

PoolDevice parse_device(const YAML::Node& node, const Ctx& ctx) {
  PoolDevice d;
  bool has_price = false;
  for_each_key(node, ctx, {"id", "device", "price_per_hour", "power_watts", "memory_gb", "labels"},
               [&](const std::string& key, const YAML::Node& v) {
                 const Ctx c = ctx.key(key);
                 if (key == "id") {
                   d.id = as_string(v, c);
                   if (d.id.empty()) c.bad("must not be empty");
                 } else if (key == "device") {
                   d.device = as_string(v, c);
                   if (d.device.empty()) c.bad("must not be empty");
                 } else if (key == "price_per_hour") {
                   d.price_per_hour = as_non_negative(v, c);
                   has_price = true;
                 } else if (key == "power_watts") {
                   d.power_watts = as_positive(v, c);
                 } else if (key == "memory_gb") {
                   d.memory_gb = as_positive(v, c);
                 } else if (key == "labels") {
                   for_each_key(v, c, {}, [&](const std::string& lk, const YAML::Node& lv) {
                     d.labels[lk] = as_string(lv, c.key(lk));
                   });
                 }
               });
  if (d.id.empty()) ctx.key("id").bad("missing");
  if (d.device.empty()) ctx.key("device").bad("missing");
  if (!has_price) ctx.key("price_per_hour").bad("missing");
  return d;
}

PoolPolicy parse_policy(const YAML::Node& node, const Ctx& ctx) {
  PoolPolicy p;
  for_each_key(node, ctx, {"exclude_vendors", "slo", "survive_vendor_loss"},
               [&](const std::string& key, const YAML::Node& v) {
                 const Ctx c = ctx.key(key);
                 if (key == "survive_vendor_loss") {
                   p.survive_vendor_loss = as_bool(v, c);
                 } else if (key == "exclude_vendors") {
                   if (!v.IsSequence())
                     c.bad(fmt::format("expected a list, found {}", kind_name(v)));
                   for (size_t i = 0; i < v.size(); ++i) {
                     p.exclude_vendors.push_back(as_string(v[i], c.index(i)));
                   }
                 } else {
                   for_each_key(v, c, {"ttft_ms", "tpot_ms"},
                                [&](const std::string& k, const YAML::Node& sv) {
                                  const double ms = as_non_negative(sv, c.key(k));
                                  (k == "ttft_ms" ? p.slo.ttft_ms : p.slo.tpot_ms) = ms;
                                });
                 }
               });
  return p;
}

Workload parse_workload(const YAML::Node& node, const Ctx& ctx) {
  Workload w;
  for_each_key(node, ctx, {"rps", "prompt_tokens", "output_tokens"},
               [&](const std::string& key, const YAML::Node& v) {
                 const Ctx c = ctx.key(key);
                 if (key == "rps") w.rps = as_non_negative(v, c);
                 if (key == "prompt_tokens") w.prompt_tokens = as_non_negative(v, c);
                 if (key == "output_tokens") w.output_tokens = as_positive(v, c);
               });
  return w;
}

YAML::Node parse_yaml(std::string_view text, std::string_view origin) {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    fail(ErrorKind::kBadFile, "{}:{}:{}: not valid YAML/JSON: {}", origin, e.mark.line + 1,
         e.mark.column + 1, e.msg);
  }
}

std::string read_text(const std::filesystem::path& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open {}", path.string(), what);
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) fail(ErrorKind::kIo, "{}: cannot read {}", path.string(), what);
  return s.str();
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

}  // namespace

std::string PoolDevice::vendor() const {
  auto it = labels.find("vendor");
  if (it != labels.end()) return it->second;
  return device.substr(0, device.find(':'));
}

const PoolDevice* PoolSpec::find(std::string_view id) const {
  for (const PoolDevice& d : devices) {
    if (d.id == id) return &d;
  }
  return nullptr;
}

PoolSpec parse_pool_spec(std::string_view text, std::string_view origin) {
  const YAML::Node root = parse_yaml(text, origin);
  const Ctx ctx{origin, ""};
  PoolSpec spec;
  bool has_devices = false;
  try {
    for_each_key(root, ctx, {"devices", "policy", "replicas", "max_parallel", "workload"},
                 [&](const std::string& key, const YAML::Node& v) {
                   const Ctx c = ctx.key(key);
                   if (key == "devices") {
                     has_devices = true;
                     if (!v.IsSequence())
                       c.bad(fmt::format("expected a list, found {}", kind_name(v)));
                     std::set<std::string> ids;
                     for (size_t i = 0; i < v.size(); ++i) {
                       PoolDevice d = parse_device(v[i], c.index(i));
                       if (!ids.insert(d.id).second) {
                         c.index(i).key("id").bad(fmt::format("duplicate device id '{}'", d.id));
                       }
                       spec.devices.push_back(std::move(d));
                     }
                   } else if (key == "policy") {
                     spec.policy = parse_policy(v, c);
                   } else if (key == "replicas") {
                     spec.replicas = as_count(v, c);
                   } else if (key == "max_parallel") {
                     spec.max_parallel = as_count(v, c);
                   } else if (key == "workload") {
                     spec.workload = parse_workload(v, c);
                   }
                 });
  } catch (const YAML::Exception& e) {
    fail(ErrorKind::kBadFile, "{}:{}: {}", origin, e.mark.line + 1, e.msg);
  }
  if (!has_devices) ctx.key("devices").bad("missing");
  if (spec.devices.empty()) ctx.key("devices").bad("the pool has no devices");
  return spec;
}

PoolSpec load_pool_spec(const std::filesystem::path& path) {
  PoolSpec spec = parse_pool_spec(read_text(path, "pool file"), path.string());
  spec.source = path;
  return spec;
}

std::string utc_timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::filesystem::path probe_path_for(const std::filesystem::path& pool_file) {
  std::filesystem::path p = pool_file;
  p.replace_extension(".probe.json");
  return p;
}

std::string probe_to_json(const ProbeResults& results) {
  std::string out = "{\n  \"devices\": {";
  bool first = true;
  for (const auto& [id, s] : results) {
    out += first ? "\n" : ",\n";
    first = false;
    out += fmt::format(
        "    {}: {{\"device\": {}, \"model\": {}, \"measured_at\": {}, \"prefill_tps\": {:.3f}, "
        "\"decode_tps\": {:.3f}, \"decode_tps_batched\": {:.3f}, \"parallel\": {}}}",
        json_string(id), json_string(s.device), json_string(s.model), json_string(s.measured_at),
        s.prefill_tps, s.decode_tps, s.decode_tps_batched, s.parallel);
  }
  out += first ? "}\n}\n" : "\n  }\n}\n";
  return out;
}

ProbeResults parse_probe(std::string_view text, std::string_view origin) {
  const YAML::Node root = parse_yaml(text, origin);
  const Ctx ctx{origin, ""};
  ProbeResults results;
  try {
    for_each_key(root, ctx, {"devices"}, [&](const std::string&, const YAML::Node& devices) {
      for_each_key(devices, ctx.key("devices"), {},
                   [&](const std::string& id, const YAML::Node& v) {
                     const Ctx c = ctx.key("devices").key(id);
                     DeviceSpeed s;
                     for_each_key(v, c,
                                  {"device", "model", "measured_at", "prefill_tps", "decode_tps",
                                   "decode_tps_batched", "parallel"},
                                  [&](const std::string& key, const YAML::Node& f) {
                                    const Ctx fc = c.key(key);
                                    if (key == "device") s.device = as_string(f, fc);
                                    if (key == "model") s.model = as_string(f, fc);
                                    if (key == "measured_at") s.measured_at = as_string(f, fc);
                                    if (key == "prefill_tps")
                                      s.prefill_tps = as_non_negative(f, fc);
                                    if (key == "decode_tps") s.decode_tps = as_non_negative(f, fc);
                                    if (key == "decode_tps_batched")
                                      s.decode_tps_batched = as_non_negative(f, fc);
                                    if (key == "parallel") s.parallel = as_count(f, fc);
                                  });
                     results[id] = s;
                   });
    });
  } catch (const YAML::Exception& e) {
    fail(ErrorKind::kBadFile, "{}:{}: {}", origin, e.mark.line + 1, e.msg);
  }
  return results;
}

ProbeResults load_probe(const std::filesystem::path& path) {
  return parse_probe(read_text(path, "probe file"), path.string());
}

void save_probe(const std::filesystem::path& path, const ProbeResults& results) {
  const std::string text = probe_to_json(results);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(ErrorKind::kIo, "{}: cannot create the probe file", path.string());
  out << text;
  out.flush();
  if (!out) fail(ErrorKind::kIo, "{}: cannot write the probe file", path.string());
}

}  // namespace luzao::pool
