// The pool the server placement tests plan on: three devices of three vendors with equal measured
// speeds (prefill 1000 t/s, decode 100 t/s, batched 200 t/s). For 50 prompt + 40 output tokens a
// replica is busy 50/1000 + 40/200 = 0.25 s per request and takes 0.8 / 0.25 = 3.2 requests/s at
// 80%; 5 requests/s need two devices, the two cheapest ('a' and 'b'); 'c' waits on standby.
#pragma once

#include <string>
#include <vector>

#include "pool/pool_spec.h"

namespace luzao::testing {

inline constexpr const char* kThreeVendorPool = R"(
devices:
  - {id: a, device: cpu, price_per_hour: 0.5, labels: {vendor: xco}}
  - {id: b, device: cpu, price_per_hour: 0.5, labels: {vendor: yco}}
  - {id: c, device: cpu, price_per_hour: 0.9, labels: {vendor: zco}}
workload: {rps: 5, prompt_tokens: 50, output_tokens: 40}
)";

// The equal speeds above, measured for `ids` with `parallel` sequences (0: not stated).
inline pool::ProbeResults equal_speeds(const std::vector<std::string>& ids, int parallel = 0) {
  pool::ProbeResults out;
  for (const std::string& id : ids) {
    pool::DeviceSpeed s;
    s.prefill_tps = 1000;
    s.decode_tps = 100;
    s.decode_tps_batched = 200;
    s.parallel = parallel;
    out[id] = s;
  }
  return out;
}

}  // namespace luzao::testing
