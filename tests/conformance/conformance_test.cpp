// The conformance suite over every available device (cpu, opencl:N, cuda:N, plugins, the example
// plugin built from examples/plugin) x every op: each op x dtype the device claims against the
// reference backend with the per-op NMSE limits of backend/conformance. Also the plugin loader's
// and adapter's contract: device specs, foreign buffers, unsupported dtypes, broken plugins.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "backend/conformance/conformance.h"
#include "backend/plugin/plugin_loader.h"
#include "backend/registry.h"
#include "core/error.h"

namespace luzao {
namespace {

namespace fs = std::filesystem;

// Puts the example plugin on LUZAO_PLUGIN_PATH (after whatever the caller set), once.
void add_example_plugin_to_path() {
  static const bool done = [] {
    const char* old = std::getenv("LUZAO_PLUGIN_PATH");
    std::string path = old != nullptr && *old != '\0' ? std::string(old) + ":" : std::string();
    path += LUZAO_EXAMPLE_PLUGIN;
    setenv("LUZAO_PLUGIN_PATH", path.c_str(), 1);
    return true;
  }();
  (void)done;
}

// Every device to test: all that list_devices() opens here except the reference itself.
std::vector<std::string> device_specs() {
  add_example_plugin_to_path();
  std::vector<std::string> specs;
  for (const DeviceListing& row : list_devices(DeviceOptions{.threads = 2})) {
    if (row.device && row.spec != "reference") specs.push_back(row.spec);
  }
  return specs;
}

std::vector<OpKind> all_ops() {
  std::vector<OpKind> ops;
  for (int i = 0; i < static_cast<int>(OpKind::kCount); ++i) ops.push_back(static_cast<OpKind>(i));
  return ops;
}

template <typename Fn>
void expect_error(ErrorKind kind, std::string_view needle, Fn&& fn) {
  try {
    fn();
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string_view(e.what()).find(needle), std::string_view::npos) << e.what();
  }
}

using Param = std::tuple<std::string, OpKind>;

class Conformance : public ::testing::TestWithParam<Param> {};

TEST_P(Conformance, MatchesReference) {
  const auto& [spec, op] = GetParam();
  auto dev = open_device(spec, DeviceOptions{.threads = 2});
  const std::vector<conformance::CaseResult> cases =
      conformance::run_op(*dev, op, conformance::Depth::kFull);
  if (cases.empty()) GTEST_SKIP() << spec << " does not support " << op_name(op);
  for (const conformance::CaseResult& c : cases) {
    EXPECT_TRUE(c.passed()) << spec << " " << c.name() << ": " << c.failure;
    std::printf("%-10s %-18s shapes %3d  nmse pooled %-9.3g worst %-9.3g limit %-7.3g %s\n",
                spec.c_str(), c.name().c_str(), c.shapes, c.error, c.worst, c.limit,
                c.passed() ? "pass" : "FAIL");
  }
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string name = std::get<0>(info.param) + "_" + std::string(op_name(std::get<1>(info.param)));
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Devices, Conformance,
                         ::testing::Combine(::testing::ValuesIn(device_specs()),
                                            ::testing::ValuesIn(all_ops())),
                         param_name);

class RequiredOps : public ::testing::TestWithParam<std::string> {};

// What the runtime needs from any device: the whole op set on F32 and an F16 KV cache.
TEST_P(RequiredOps, Supported) {
  auto dev = open_device(GetParam(), DeviceOptions{.threads = 2});
  for (OpKind op : all_ops()) EXPECT_TRUE(dev->supports(op, DType::kF32)) << op_name(op);
  EXPECT_TRUE(dev->supports(OpKind::kAttention, DType::kF16));
  EXPECT_TRUE(dev->supports(OpKind::kSetRows, DType::kF16));
  EXPECT_FALSE(dev->supports(OpKind::kCount, DType::kF32));
  EXPECT_FALSE(dev->info().name.empty());
  EXPECT_FALSE(dev->info().backend.empty());
}

// Buffers: zero-length allocations, bounds-checked transfers, copies within one device.
TEST_P(RequiredOps, BuffersRoundTrip) {
  auto dev = open_device(GetParam(), DeviceOptions{.threads = 2});
  auto a = dev->alloc(64);
  auto b = dev->alloc(64);
  EXPECT_EQ(a->size(), 64u);
  EXPECT_EQ(dev->alloc(0)->size(), 0u);
  const uint8_t src[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  dev->upload(*a, 8, src, 8);
  dev->copy(*a, 8, *b, 40, 8);
  dev->copy(*b, 40, *b, 44, 8);  // overlapping ranges copy as memmove
  uint8_t dst[64] = {};
  dev->download(*b, 0, dst, 64);
  const uint8_t want[12] = {1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(std::memcmp(dst + 40, want, 12), 0);
  expect_error(ErrorKind::kInvalidArgument, "upload", [&] { dev->upload(*a, 60, src, 8); });
  expect_error(ErrorKind::kInvalidArgument, "download", [&] { dev->download(*a, 65, dst, 0); });
  expect_error(ErrorKind::kInvalidArgument, "copy", [&] { dev->copy(*a, 0, *b, 57, 8); });
}

// The quick suite (what `luzao devices` runs) passes wherever the full one does.
TEST_P(RequiredOps, QuickSuitePasses) {
  auto dev = open_device(GetParam(), DeviceOptions{.threads = 2});
  const auto cases = conformance::run_all(*dev, conformance::Depth::kQuick);
  EXPECT_FALSE(cases.empty());
  for (const auto& c : cases) EXPECT_TRUE(c.passed()) << c.name() << ": " << c.failure;
}

INSTANTIATE_TEST_SUITE_P(Devices, RequiredOps, ::testing::ValuesIn(device_specs()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

// ---- the plugin loader and adapter ----------------------------------------------------------

TEST(Plugin, ExampleIsFoundOnThePathAndOpensByName) {
  add_example_plugin_to_path();
  auto dev = open_device("example:0");
  EXPECT_EQ(dev->info().name, "example:0");
  EXPECT_EQ(dev->info().backend, "example");
  EXPECT_EQ(dev->info().vendor, "luzao example");
  EXPECT_EQ(open_device("example")->info().name, "example:0");
  expect_error(ErrorKind::kInvalidArgument, "1 device", [] { open_device("example:1"); });
  expect_error(ErrorKind::kInvalidArgument, "NAME:INDEX", [] { open_device("example:x"); });
  expect_error(ErrorKind::kInvalidArgument, "example:N (plugin)", [] { open_device("nope:0"); });
}

TEST(Plugin, CapabilityQueryIsHonoured) {
  add_example_plugin_to_path();
  auto dev = open_device("example:0");
  EXPECT_TRUE(dev->supports(OpKind::kMatMul, DType::kQ4_0));
  EXPECT_FALSE(dev->supports(OpKind::kMatMul, DType::kQ4_K));
  auto s = dev->create_stream();
  auto x = dev->alloc(4 * 256);
  auto w = dev->alloc(144);
  auto o = dev->alloc(4);
  const TensorView xv{x.get(), 0, DType::kF32, 1, 256, 1024};
  const TensorView wv{w.get(), 0, DType::kQ4_K, 1, 256, 144};
  const TensorView ov{o.get(), 0, DType::kF32, 1, 1, 4};
  expect_error(ErrorKind::kUnsupported, "matmul with q4_K", [&] { s->matmul(xv, wv, ov); });
}

TEST(Plugin, RejectsBuffersOfOtherDevicesAndBadViews) {
  add_example_plugin_to_path();
  auto dev = open_device("example:0");
  auto cpu = open_device("cpu", DeviceOptions{.threads = 1});
  auto s = dev->create_stream();
  auto mine = dev->alloc(64);
  auto theirs = cpu->alloc(64);
  const TensorView a{mine.get(), 0, DType::kF32, 2, 8, 32};
  const TensorView b{theirs.get(), 0, DType::kF32, 2, 8, 32};
  expect_error(ErrorKind::kInvalidArgument, "another device", [&] { s->add(a, b, a); });
  expect_error(ErrorKind::kInvalidArgument, "another device",
               [&] { dev->copy(*theirs, 0, *mine, 0, 8); });
  const TensorView too_long{mine.get(), 8, DType::kF32, 2, 8, 32};
  expect_error(ErrorKind::kInvalidArgument, "overruns", [&] { s->scale(too_long, 2.0f, a); });
}

TEST(Plugin, BuffersMayOutliveTheirDevice) {
  add_example_plugin_to_path();
  auto dev = open_device("example:0");
  auto buf = dev->alloc(16);
  auto stream = dev->create_stream();
  dev.reset();  // the plugin device closes only after its last buffer and stream
  EXPECT_EQ(buf->size(), 16u);
  stream.reset();
  buf.reset();
}

TEST(Plugin, MapHostIsZeroCopy) {
  add_example_plugin_to_path();
  auto dev = open_device("example:0");
  std::vector<float> host = {1.0f, 2.0f, 3.0f, 4.0f};
  auto mapped = dev->map_host(host.data(), host.size() * sizeof(float));
  ASSERT_NE(mapped, nullptr);
  host[2] = 30.0f;  // visible through the mapping
  float back[4] = {};
  dev->download(*mapped, 0, back, sizeof back);
  EXPECT_EQ(back[2], 30.0f);
}

TEST(Plugin, DiscoveryReportsBrokenPluginsAndSkipsMissingDirs) {
  const fs::path dir = fs::temp_directory_path() / "luzao_conformance_plugins";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "libluzao-broken.so") << "not an ELF file";
  std::ofstream(dir / "unrelated.so") << "ignored: wrong name pattern";
  const auto found = discover_plugins(
      {dir / "missing", dir, fs::path(LUZAO_EXAMPLE_PLUGIN), fs::path(LUZAO_EXAMPLE_PLUGIN)});
  ASSERT_EQ(found.size(), 2u);  // the broken one, then the example once
  EXPECT_EQ(found[0].library, nullptr);
  EXPECT_NE(found[0].error.find("libluzao-broken.so"), std::string::npos) << found[0].error;
  ASSERT_NE(found[1].library, nullptr) << found[1].error;
  EXPECT_EQ(found[1].library->name(), "example");
  EXPECT_GT(found[1].library->probe(), 0);
  EXPECT_EQ(found[1].library->device_count(), 1);
  expect_error(ErrorKind::kIo, "cannot load",
               [&] { PluginLibrary::load(dir / "libluzao-broken.so"); });
  fs::remove_all(dir);
}

TEST(Plugin, ListingNamesEveryDeviceOrItsProblem) {
  add_example_plugin_to_path();
  bool example = false;
  for (const DeviceListing& row : list_devices(DeviceOptions{.threads = 1})) {
    EXPECT_TRUE(row.device != nullptr || !row.error.empty()) << row.spec;
    EXPECT_TRUE(row.error.empty()) << row.spec << ": " << row.error;
    example = example || row.spec == "example:0";
  }
  EXPECT_TRUE(example);
}

}  // namespace
}  // namespace luzao
