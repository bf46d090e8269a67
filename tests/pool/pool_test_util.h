// Helpers shared by the pool tests: a device with given price and speeds, and the generator of
// random small pools that the placement tests compare against exhaustive search.
#pragma once

#include <cmath>
#include <random>
#include <string>
#include <utility>

#include "pool/placement.h"

namespace luzao::pool::test {

inline PlacementDevice dev(std::string id, std::string vendor, double price, double prefill,
                           double decode, double batched) {
  PlacementDevice d;
  d.id = std::move(id);
  d.vendor = std::move(vendor);
  d.price_per_hour = price;
  d.prefill_tps = prefill;
  d.decode_tps = decode;
  d.decode_tps_batched = batched;
  return d;
}

// 1 to 8 devices of three vendors with correlated prices and speeds, a random workload, an SLO
// most of the time, and sometimes an excluded vendor.
inline PlacementProblem random_problem(std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  PlacementProblem p;
  const int n = 1 + static_cast<int>(rng() % 8);
  const char* vendors[] = {"nv", "hw", "cb"};
  for (int i = 0; i < n; ++i) {
    const double speed = 0.2 + 2 * u(rng);
    const double decode = 20 + 80 * u(rng) * speed;
    p.devices.push_back(dev("d" + std::to_string(i), vendors[rng() % 3],
                            std::round((0.2 + 4 * speed * (0.5 + u(rng))) * 100) / 100,
                            500 + 4000 * speed, decode, decode * (1 + 15 * u(rng))));
  }
  p.workload = {0.2 + 10 * u(rng), 50 + 800 * u(rng), 20 + 300 * u(rng)};
  if (u(rng) < 0.7) p.slo = {300 + 3000 * u(rng), 15 + 60 * u(rng)};
  p.options.min_replicas = 1 + static_cast<int>(rng() % 2);
  if (u(rng) < 0.2) p.excluded_vendors = {vendors[rng() % 3]};
  return p;
}

}  // namespace luzao::pool::test
