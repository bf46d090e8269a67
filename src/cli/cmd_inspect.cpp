// `luzao inspect MODEL`: prints a GGUF file's version, metadata, tensor table and a summary, as
// text for people or (--json) as one JSON document for programs.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "format/gguf.h"

namespace luzao::cli {
namespace {

struct InspectOptions {
  std::string model;
  bool json = false;
  std::optional<size_t> items;  // array items shown; text default 8, JSON default all
  size_t string_bytes = 120;    // text only: longer strings are cut
  bool no_tensors = false;
};

std::string type_label(const GgufValue& v) {
  if (const auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v.value); a && *a) {
    if ((*a)->element_type == GgufType::kArray && !(*a)->items.empty()) {
      return fmt::format("[{}]", type_label((*a)->items.front()));
    }
    return fmt::format("[{}]", gguf_type_name((*a)->element_type));
  }
  return std::string(gguf_type_name(v.type));
}

std::string human_bytes(uint64_t n) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double x = static_cast<double>(n);
  size_t unit = 0;
  while (x >= 1024.0 && unit + 1 < std::size(kUnits)) {
    x /= 1024.0;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", n) : fmt::format("{:.2f} {}", x, kUnits[unit]);
}

std::string human_count(uint64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.2f}B", static_cast<double>(n) / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.2f}M", static_cast<double>(n) / 1e6);
  if (n >= 1'000) return fmt::format("{:.2f}K", static_cast<double>(n) / 1e3);
  return fmt::format("{}", n);
}

struct Totals {
  uint64_t bytes = 0;
  uint64_t parameters = 0;
};

Totals totals(const GgufFile& file) {
  Totals t;
  for (const GgufTensorInfo& info : file.tensors()) {
    t.bytes += info.bytes;  // each lies inside the file and they do not overlap: no overflow
    t.parameters += info.elements();
  }
  return t;
}

void print_text(const GgufFile& file, const InspectOptions& opt) {
  const size_t items = opt.items.value_or(8);
  std::string out;
  auto line = [&out](std::string_view text) {
    out += text;
    out += '\n';
  };
  line(fmt::format("file:     {}", escape_for_display(file.name(), 4096)));
  line(fmt::format("format:   GGUF v{}, alignment {}, data section at offset {}, {} ({} bytes)",
                   file.version(), file.alignment(), file.data_offset(),
                   human_bytes(file.file_size()), file.file_size()));
  line(fmt::format("metadata: {} keys", file.metadata().size()));
  size_t key_width = 0;
  size_t type_width = 0;
  for (const GgufKeyValue& kv : file.metadata()) {
    key_width = std::max(key_width, std::min<size_t>(escape_for_display(kv.key).size(), 48));
    type_width = std::max(type_width, type_label(kv.value).size());
  }
  for (const GgufKeyValue& kv : file.metadata()) {
    line(fmt::format("  {:<{}}  {:<{}}  {}", escape_for_display(kv.key), key_width,
                     type_label(kv.value), type_width,
                     gguf_value_to_string(kv.value, items, opt.string_bytes)));
  }
  if (!opt.no_tensors) {
    line(fmt::format("tensors:  {}", file.tensors().size()));
    size_t name_width = 4;
    size_t shape_width = 5;
    size_t dtype_width = 5;
    for (const GgufTensorInfo& t : file.tensors()) {
      name_width = std::max(name_width, escape_for_display(t.name).size());
      shape_width = std::max(shape_width, fmt::format("{}", fmt::join(t.shape, " x ")).size());
      dtype_width = std::max(dtype_width, dtype_name(t.dtype).size());
    }
    const auto row = [&](auto index, std::string_view name, std::string_view dtype,
                         std::string_view shape, auto bytes, auto offset) {
      line(fmt::format("  {:>5}  {:<{}}  {:<{}}  {:<{}}  {:>12}  {:>12}", index, name, name_width,
                       dtype, dtype_width, shape, shape_width, bytes, offset));
    };
    row("#", "name", "dtype", "shape", "bytes", "file offset");
    size_t index = 0;
    for (const GgufTensorInfo& t : file.tensors()) {
      row(index++, escape_for_display(t.name), dtype_name(t.dtype),
          fmt::format("{}", fmt::join(t.shape, " x ")), t.bytes, file.data_offset() + t.offset);
    }
  }
  const Totals sum = totals(file);
  line(fmt::format("summary:  {} tensors, {} bytes of tensor data ({}), {} parameters ({})",
                   file.tensors().size(), sum.bytes, human_bytes(sum.bytes), sum.parameters,
                   human_count(sum.parameters)));
  std::fwrite(out.data(), 1, out.size(), stdout);
}

nlohmann::json value_json(const GgufValue& v, size_t items) {
  return std::visit(
      [&](const auto& x) -> nlohmann::json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::shared_ptr<GgufArray>>) {
          nlohmann::json arr = nlohmann::json::array();
          if (!x) return arr;
          const size_t n = std::min(items, x->items.size());
          for (size_t i = 0; i < n; ++i) arr.push_back(value_json(x->items[i], items));
          return arr;
        } else if constexpr (std::is_same_v<T, int8_t> || std::is_same_v<T, uint8_t>) {
          return static_cast<int>(x);
        } else {
          return x;
        }
      },
      v.value);
}

void print_json(const GgufFile& file, const InspectOptions& opt) {
  const size_t items = opt.items.value_or(std::numeric_limits<size_t>::max());
  nlohmann::json doc;
  doc["file"] = file.name();
  doc["version"] = file.version();
  doc["alignment"] = file.alignment();
  doc["data_offset"] = file.data_offset();
  doc["file_size"] = file.file_size();
  nlohmann::json metadata = nlohmann::json::array();
  for (const GgufKeyValue& kv : file.metadata()) {
    nlohmann::json entry;
    entry["key"] = kv.key;
    entry["type"] = gguf_type_name(kv.value.type);
    if (const auto* a = std::get_if<std::shared_ptr<GgufArray>>(&kv.value.value); a && *a) {
      entry["element_type"] = gguf_type_name((*a)->element_type);
      entry["length"] = (*a)->items.size();
      entry["truncated"] = (*a)->items.size() > items;
    }
    entry["value"] = value_json(kv.value, items);
    metadata.push_back(std::move(entry));
  }
  doc["metadata"] = std::move(metadata);
  if (!opt.no_tensors) {
    nlohmann::json tensors = nlohmann::json::array();
    for (const GgufTensorInfo& t : file.tensors()) {
      tensors.push_back({{"name", t.name},
                         {"dtype", dtype_name(t.dtype)},
                         {"shape", t.shape},
                         {"elements", t.elements()},
                         {"bytes", t.bytes},
                         {"offset", t.offset},
                         {"file_offset", file.data_offset() + t.offset}});
    }
    doc["tensors"] = std::move(tensors);
  }
  const Totals sum = totals(file);
  doc["summary"] = {{"tensor_count", file.tensors().size()},
                    {"tensor_bytes", sum.bytes},
                    {"parameter_count", sum.parameters}};
  // Strings in a GGUF need not be valid UTF-8: replace bad bytes rather than fail.
  const std::string text = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  fmt::print("{}\n", text);
}

}  // namespace

CommandMain setup_inspect(CLI::App& command) {
  auto opt = std::make_shared<InspectOptions>();
  command.add_option("model", opt->model, "GGUF file to inspect")->required();
  command.add_flag("--json", opt->json, "Print one JSON document instead of text");
  command.add_option("--items", opt->items,
                     "Array items to show (text default 8; JSON default all)");
  command.add_option("--string-bytes", opt->string_bytes,
                     "Cut longer strings in text output (default 120)");
  command.add_flag("--no-tensors", opt->no_tensors, "Leave out the tensor table");
  return [opt]() -> int {
    const GgufFile file = GgufFile::open(opt->model);
    if (opt->json) {
      print_json(file, *opt);
    } else {
      print_text(file, *opt);
    }
    return 0;
  };
}

}  // namespace luzao::cli
