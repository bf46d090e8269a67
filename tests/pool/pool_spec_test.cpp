// Pool files (YAML and JSON) and probe files: what is read, and the one-line errors for bad input.
#include "pool/pool_spec.h"

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"

namespace luzao::pool {
namespace {

constexpr const char* kYaml = R"(
devices:
  - id: cpu0
    device: cpu
    price_per_hour: 0.10
    power_watts: 65
    labels: {vendor: intel, region: eu-west}
  - id: gpu0
    device: "opencl:0"
    price_per_hour: 1.5
    memory_gb: 24
policy:
  exclude_vendors: [acme]
  slo: {ttft_ms: 2000, tpot_ms: 150}
replicas: 2
max_parallel: 8
workload: {rps: 3.5, prompt_tokens: 100, output_tokens: 50}
)";

TEST(PoolSpec, ReadsEveryField) {
  const PoolSpec s = parse_pool_spec(kYaml, "pool.yaml");
  ASSERT_EQ(s.devices.size(), 2u);
  EXPECT_EQ(s.devices[0].id, "cpu0");
  EXPECT_EQ(s.devices[0].device, "cpu");
  EXPECT_DOUBLE_EQ(s.devices[0].price_per_hour, 0.10);
  EXPECT_EQ(s.devices[0].power_watts, 65.0);
  EXPECT_EQ(s.devices[0].vendor(), "intel");
  EXPECT_EQ(s.devices[0].labels.at("region"), "eu-west");
  EXPECT_EQ(s.devices[1].vendor(), "opencl");  // no label: the backend of the device name
  EXPECT_EQ(s.devices[1].memory_gb, 24.0);
  EXPECT_FALSE(s.devices[1].power_watts.has_value());
  EXPECT_EQ(s.policy.exclude_vendors, std::vector<std::string>{"acme"});
  EXPECT_DOUBLE_EQ(s.policy.slo.ttft_ms, 2000);
  EXPECT_DOUBLE_EQ(s.policy.slo.tpot_ms, 150);
  EXPECT_EQ(s.replicas, 2);
  EXPECT_EQ(s.max_parallel, 8);
  ASSERT_TRUE(s.workload.has_value());
  EXPECT_DOUBLE_EQ(s.workload->rps, 3.5);
  EXPECT_EQ(s.find("gpu0"), &s.devices[1]);
  EXPECT_EQ(s.find("nope"), nullptr);
}

TEST(PoolSpec, JsonIsAccepted) {
  const PoolSpec s = parse_pool_spec(
      R"({"devices": [{"id": "a", "device": "cpu", "price_per_hour": 0}], "policy": {"slo": {"ttft_ms": 500}}})",
      "pool.json");
  ASSERT_EQ(s.devices.size(), 1u);
  EXPECT_DOUBLE_EQ(s.devices[0].price_per_hour, 0);
  EXPECT_DOUBLE_EQ(s.policy.slo.ttft_ms, 500);
  EXPECT_DOUBLE_EQ(s.policy.slo.tpot_ms, 0);
  EXPECT_EQ(s.replicas, 0);
}

// The message of the error parse_pool_spec throws for `text` (empty when it does not throw).
std::string error_of(const std::string& text) {
  try {
    parse_pool_spec(text, "p.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadFile);
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    return m;
  }
  return "";
}

void expect_error(const std::string& text, const std::string& needle) {
  const std::string m = error_of(text);
  EXPECT_NE(m.find(needle), std::string::npos) << "message: '" << m << "' lacks '" << needle << "'";
  EXPECT_EQ(m.rfind("p.yaml", 0), 0u) << m;
}

TEST(PoolSpec, ErrorsNameTheKeyAndTheProblem) {
  const std::string dev = "devices:\n  - {id: a, device: cpu, price_per_hour: 1}\n";
  expect_error(dev + "colour: red\n", "colour: unknown key");
  expect_error("devices:\n  - {id: a, device: cpu, price_per_hour: -1}\n",
               "devices[0].price_per_hour: must not be negative");
  expect_error("devices:\n  - {id: a, device: cpu, price_per_hour: cheap}\n",
               "devices[0].price_per_hour: expected a number, found 'cheap'");
  expect_error(dev + "  - {id: a, device: cpu, price_per_hour: 2}\n",
               "devices[1].id: duplicate device id 'a'");
  expect_error("devices:\n  - {id: a, price_per_hour: 1}\n", "devices[0].device: missing");
  expect_error("devices:\n  - {id: a, device: cpu}\n", "devices[0].price_per_hour: missing");
  expect_error("devices:\n  - {id: a, device: cpu, price_per_hour: 1, gpus: 2}\n",
               "devices[0].gpus: unknown key");
  expect_error(dev + "policy: {exclude_vendors: nvidia}\n",
               "policy.exclude_vendors: expected a list");
  expect_error(dev + "policy: {slo: {ttft_ms: 1, p99: 2}}\n", "policy.slo.p99: unknown key");
  expect_error(dev + "replicas: 1.5\n", "replicas: expected a whole number");
  expect_error(dev + "replicas: 1\nreplicas: 2\n", "replicas: duplicate key");
  expect_error("devices: []\n", "devices: the pool has no devices");
  expect_error("policy: {}\n", "devices: missing");
  expect_error("devices: [\n", "not valid YAML/JSON");
  expect_error("- 1\n- 2\n", "expected a map, found a list");
  expect_error("devices:\n  - {id: a, device: cpu, price_per_hour: 1, labels: {vendor: [x]}}\n",
               "devices[0].labels.vendor: expected a string");
}

TEST(PoolSpec, LoadNamesTheFile) {
  const auto dir = std::filesystem::temp_directory_path() / "luzao_pool_spec_test";
  std::filesystem::create_directories(dir);
  const auto path = dir / "pool.yaml";
  std::ofstream(path) << kYaml;
  const PoolSpec s = load_pool_spec(path);
  EXPECT_EQ(s.source, path);
  EXPECT_EQ(s.devices.size(), 2u);
  try {
    load_pool_spec(dir / "missing.yaml");
    FAIL() << "no error for a missing file";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    EXPECT_NE(std::string(e.what()).find("missing.yaml"), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST(Probe, PathIsBesideThePoolFile) {
  EXPECT_EQ(probe_path_for("/etc/luzao/POOL.yaml"),
            std::filesystem::path("/etc/luzao/POOL.probe.json"));
  EXPECT_EQ(probe_path_for("pool.json"), std::filesystem::path("pool.probe.json"));
}

TEST(Probe, RoundTripsThroughJson) {
  ProbeResults r;
  r["cpu0"] = {123.5, 20.25, 80, 4, "2026-11-28T12:00:00Z", "models/a \"b\".gguf", "cpu"};
  r["gpu:0"] = {5000, 90, 0, 0, "2026-11-28T12:01:00Z", "m", "opencl:0"};
  const std::string json = probe_to_json(r);
  const ProbeResults back = parse_probe(json, "x.probe.json");
  ASSERT_EQ(back.size(), 2u);
  const DeviceSpeed& a = back.at("cpu0");
  EXPECT_DOUBLE_EQ(a.prefill_tps, 123.5);
  EXPECT_DOUBLE_EQ(a.decode_tps, 20.25);
  EXPECT_DOUBLE_EQ(a.decode_tps_batched, 80);
  EXPECT_EQ(a.parallel, 4);
  EXPECT_EQ(a.model, "models/a \"b\".gguf");
  EXPECT_EQ(a.measured_at, "2026-11-28T12:00:00Z");
  EXPECT_EQ(back.at("gpu:0").device, "opencl:0");
  EXPECT_TRUE(parse_probe(probe_to_json({}), "e").empty());

  const auto dir = std::filesystem::temp_directory_path() / "luzao_probe_test";
  std::filesystem::create_directories(dir);
  save_probe(dir / "p.probe.json", r);
  EXPECT_EQ(load_probe(dir / "p.probe.json").at("cpu0").decode_tps, 20.25);
  std::filesystem::remove_all(dir);
  EXPECT_THROW(parse_probe(R"({"devices": {"a": {"prefill_tps": -3}}})", "p"), Error);
  EXPECT_THROW(parse_probe(R"({"devices": {"a": {"speed": 3}}})", "p"), Error);
}

}  // namespace
}  // namespace luzao::pool
