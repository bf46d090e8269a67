// libFuzzer target for the GGUF reader: parse any bytes; a valid parse must survive every getter,
// display formatting, reading each tensor's bytes, and a write/re-read round trip unchanged.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "core/error.h"
#include "format/gguf.h"

namespace {

bool same_value(const luzao::GgufValue& a, const luzao::GgufValue& b) {
  if (a.type != b.type || a.value.index() != b.value.index()) return false;
  if (const auto* x = std::get_if<std::shared_ptr<luzao::GgufArray>>(&a.value)) {
    const auto& y = std::get<std::shared_ptr<luzao::GgufArray>>(b.value);
    if ((*x)->element_type != y->element_type || (*x)->items.size() != y->items.size()) {
      return false;
    }
    for (size_t i = 0; i < y->items.size(); ++i) {
      if (!same_value((*x)->items[i], y->items[i])) return false;
    }
    return true;
  }
  if (const auto* f = std::get_if<float>(&a.value)) {  // bitwise, so NaN payloads count
    return std::bit_cast<uint32_t>(*f) == std::bit_cast<uint32_t>(std::get<float>(b.value));
  }
  if (const auto* d = std::get_if<double>(&a.value)) {
    return std::bit_cast<uint64_t>(*d) == std::bit_cast<uint64_t>(std::get<double>(b.value));
  }
  return a.value == b.value;
}

void exercise(const luzao::GgufFile& file) {
  size_t checksum = 0;
  for (const luzao::GgufKeyValue& kv : file.metadata()) {
    checksum += luzao::gguf_value_to_string(kv.value, 4, 16).size();
    try {
      checksum += file.get_string_array(kv.key).size();
    } catch (const luzao::Error&) {
    }
    try {
      checksum += file.get_int_array(kv.key).size();
    } catch (const luzao::Error&) {
    }
    try {
      checksum += static_cast<size_t>(file.get_uint(kv.key));
    } catch (const luzao::Error&) {
    }
  }
  luzao::GgufWriter writer;
  for (const luzao::GgufKeyValue& kv : file.metadata()) writer.set(kv.key, kv.value);
  for (const luzao::GgufTensorInfo& t : file.tensors()) {
    const std::span<const std::byte> data = file.tensor_data(t);
    checksum += static_cast<size_t>(data.front()) + static_cast<size_t>(data.back());
    writer.add_tensor(t.name, t.dtype, t.shape, data);
  }
  // Round trip: what the writer makes from a valid file must read back identically.
  const std::vector<std::byte> bytes = writer.to_bytes();
  const luzao::GgufFile again = luzao::GgufFile::parse(bytes, "round-trip");
  if (again.metadata().size() != file.metadata().size()) __builtin_trap();
  for (size_t i = 0; i < file.metadata().size(); ++i) {
    if (again.metadata()[i].key != file.metadata()[i].key) __builtin_trap();
    if (!same_value(again.metadata()[i].value, file.metadata()[i].value)) __builtin_trap();
  }
  if (again.tensors().size() != file.tensors().size()) __builtin_trap();
  for (size_t i = 0; i < file.tensors().size(); ++i) {
    const luzao::GgufTensorInfo& x = file.tensors()[i];
    const luzao::GgufTensorInfo& y = again.tensors()[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.bytes != y.bytes) {
      __builtin_trap();
    }
    const auto dx = file.tensor_data(x);
    const auto dy = again.tensor_data(y);
    if (!std::equal(dx.begin(), dx.end(), dy.begin(), dy.end())) __builtin_trap();
  }
  volatile size_t sink = checksum;  // keeps the reads from being optimised away
  (void)sink;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  std::optional<luzao::GgufFile> file;
  try {
    file.emplace(luzao::GgufFile::parse(bytes, "fuzz.gguf"));
  } catch (const luzao::Error& e) {
    // Rejection is the expected outcome for most inputs; an internal error is a bug.
    if (e.kind() == luzao::ErrorKind::kInternal) __builtin_trap();
    return 0;
  }
  exercise(*file);  // any exception escaping from here is a bug: libFuzzer reports it
  return 0;
}
