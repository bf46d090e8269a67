// Placement by price-performance: a per-replica M/G/1 processor-sharing estimate gives each
// candidate's capacity within the SLO; choosing replicas is then a min-cost covering problem,
// solved by a greedy-plus-local-search heuristic and, for small pools, exhaustively.
#include "pool/placement.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <set>

#include "core/error.h"
#include "pool/routing.h"

namespace luzao::pool {
namespace {

constexpr double kEps = 1e-9;
constexpr double kInf = std::numeric_limits<double>::infinity();

bool eligible(const PlacementDevice& d, const PlacementProblem& p) {
  return !p.excluded_ids.contains(d.id) && !p.excluded_vendors.contains(d.vendor);
}

bool hosts_alone(const PlacementDevice& d, const PlacementProblem& p) {
  return p.options.model_memory_gb <= 0 || d.memory_gb <= 0 ||
         d.memory_gb >= p.options.model_memory_gb;
}

// Candidate replicas over the eligible devices; `device_index` points into problem.devices.
struct Candidate {
  std::vector<size_t> devices;
  PlannedReplica replica;
  std::vector<int> vendors;  // indices of replica.vendors, numbered over all candidates
};

// Numbers the candidates' vendors 0..V-1 (for survive_vendor_loss).
void index_vendors(std::vector<Candidate>& cands) {
  std::map<std::string, int> index;
  for (Candidate& c : cands) {
    for (const std::string& v : c.replica.vendors) {
      c.vendors.push_back(index.emplace(v, static_cast<int>(index.size())).first->second);
    }
  }
}

std::vector<Candidate> make_candidates(const PlacementProblem& p, bool all_pairs) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < p.devices.size(); ++i) {
    if (eligible(p.devices[i], p)) idx.push_back(i);
  }
  std::vector<Candidate> out;
  for (size_t i : idx) {
    Candidate c{{i}, estimate_replica({&p.devices[i]}, p)};
    if (c.replica.max_rps > 0) out.push_back(std::move(c));
  }
  if (!p.options.allow_splits) {
    index_vendors(out);
    return out;
  }
  for (size_t a = 0; a < idx.size(); ++a) {
    // Pairs where both devices could host alone are dominated by the two singles (same price,
    // no less capacity): the heuristic skips them, the exhaustive search (all_pairs) does not.
    std::vector<Candidate> pairs;
    for (size_t b = a + 1; b < idx.size(); ++b) {
      const PlacementDevice& da = p.devices[idx[a]];
      const PlacementDevice& db = p.devices[idx[b]];
      if (!all_pairs && hosts_alone(da, p) && hosts_alone(db, p)) continue;
      Candidate c{{idx[a], idx[b]}, estimate_replica({&da, &db}, p)};
      if (c.replica.max_rps > 0) pairs.push_back(std::move(c));
    }
    if (!all_pairs && pairs.size() > 8) {  // keep each device's 8 best-value partners
      std::partial_sort(pairs.begin(), pairs.begin() + 8, pairs.end(),
                        [](const auto& x, const auto& y) {
                          return x.replica.price_per_hour / x.replica.max_rps <
                                 y.replica.price_per_hour / y.replica.max_rps;
                        });
      pairs.resize(8);
    }
    for (auto& c : pairs) out.push_back(std::move(c));
  }
  index_vendors(out);
  return out;
}

int required_replicas(const PlacementProblem& p) {
  return std::max(1, p.options.min_replicas);
}

// A set of chosen candidates with incremental totals, per-device use counts and, per vendor, the
// capacity and number of the chosen replicas that would be lost with it.
struct Selection {
  const std::vector<Candidate>* cands;
  std::vector<char> chosen;
  std::vector<int> used;  // per problem device
  double cap = 0, price = 0;
  int count = 0;
  std::vector<double> vlost;  // per vendor index: capacity of chosen replicas with its devices
  std::vector<int> vcount;    // per vendor index: how many chosen replicas have its devices

  Selection(const std::vector<Candidate>& c, size_t n_devices)
      : cands(&c), chosen(c.size(), 0), used(n_devices, 0) {
    int nv = 0;
    for (const Candidate& x : c) {
      for (int v : x.vendors) nv = std::max(nv, v + 1);
    }
    vlost.assign(static_cast<size_t>(nv), 0.0);
    vcount.assign(static_cast<size_t>(nv), 0);
  }
  bool free(size_t i, size_t except = SIZE_MAX, size_t except2 = SIZE_MAX) const {
    for (size_t d : (*cands)[i].devices) {
      int u = used[d];
      for (size_t e : {except, except2}) {
        if (e == SIZE_MAX) continue;
        for (size_t ed : (*cands)[e].devices) u -= ed == d;
      }
      if (u > 0) return false;
    }
    return true;
  }
  void set(size_t i, bool on) {
    if (static_cast<bool>(chosen[i]) == on) return;
    chosen[i] = on;
    const int s = on ? 1 : -1;
    for (size_t d : (*cands)[i].devices) used[d] += s;
    cap += s * (*cands)[i].replica.max_rps;
    price += s * (*cands)[i].replica.price_per_hour;
    count += s;
    for (int v : (*cands)[i].vendors) {
      vlost[static_cast<size_t>(v)] += s * (*cands)[i].replica.max_rps;
      vcount[static_cast<size_t>(v)] += s;
    }
  }
  // survive_vendor_loss after dropping `out` and adding `in` (true when the policy is off): for
  // every vendor, the chosen replicas without its devices carry the load (at least one of them).
  // A vendor with no chosen replica asks for the total capacity, which covers() checks anyway.
  bool survives(const PlacementProblem& p, std::initializer_list<size_t> out = {},
                std::initializer_list<size_t> in = {}) const {
    if (!p.options.survive_vendor_loss) return true;
    const auto& c = *cands;
    double cap2 = cap;
    int count2 = count;
    for (size_t i : out) cap2 -= c[i].replica.max_rps, --count2;
    for (size_t i : in) cap2 += c[i].replica.max_rps, ++count2;
    for (size_t v = 0; v < vlost.size(); ++v) {
      double lost = vlost[v];
      int n = vcount[v];
      for (size_t i : out) {
        for (int x : c[i].vendors) {
          if (static_cast<size_t>(x) == v) lost -= c[i].replica.max_rps, --n;
        }
      }
      for (size_t i : in) {
        for (int x : c[i].vendors) {
          if (static_cast<size_t>(x) == v) lost += c[i].replica.max_rps, ++n;
        }
      }
      if (n > 0 && (cap2 - lost + kEps < p.workload.rps || count2 - n < 1)) return false;
    }
    return true;
  }
  // How far from surviving the loss of any vendor: summed over every vendor, the load and the
  // replica the others lack. Adding a replica never raises it, and lowers it exactly when it helps
  // some other vendor's loss; zero means survives() (given at least one vendor).
  double vendor_deficit(const PlacementProblem& p) const {
    double d = 0;
    for (size_t v = 0; v < vlost.size(); ++v) {
      d += std::max(0.0, p.workload.rps - (cap - vlost[v]));
      d += std::max(0, 1 - (count - vcount[v]));
    }
    return d;
  }
};

bool covers(double cap, int count, const PlacementProblem& p) {
  return count >= required_replicas(p) && cap + kEps >= p.workload.rps;
}

// Drop, 1-for-1, 2-for-1 and (on small pools) 1-for-2 moves while any lowers the price.
void improve(Selection& s, const PlacementProblem& p, size_t& evaluated) {
  const auto& c = *s.cands;
  const size_t n = c.size();
  for (int round = 0; round < 200; ++round) {
    bool moved = false;
    std::vector<size_t> in, out;
    for (size_t i = 0; i < n; ++i) (s.chosen[i] ? in : out).push_back(i);
    // Drop the most expensive replica that is not needed.
    std::sort(in.begin(), in.end(), [&](size_t a, size_t b) {
      return c[a].replica.price_per_hour > c[b].replica.price_per_hour;
    });
    for (size_t a : in) {
      ++evaluated;
      if (covers(s.cap - c[a].replica.max_rps, s.count - 1, p) && s.survives(p, {a})) {
        s.set(a, false);
        moved = true;
        break;
      }
    }
    if (moved) continue;
    // 1-for-1: the cheapest replacement of one replica.
    double best_gain = kEps;
    size_t best_a = 0, best_b = 0;
    for (size_t a : in) {
      for (size_t b : out) {
        ++evaluated;
        const double gain = c[a].replica.price_per_hour - c[b].replica.price_per_hour;
        if (gain <= best_gain) continue;
        if (!covers(s.cap - c[a].replica.max_rps + c[b].replica.max_rps, s.count, p)) continue;
        if (!s.free(b, a) || !s.survives(p, {a}, {b})) continue;
        best_gain = gain, best_a = a, best_b = b;
      }
    }
    if (best_gain > kEps) {
      s.set(best_a, false);
      s.set(best_b, true);
      continue;
    }
    // 2-for-1, while the pool is small enough for k^2 * n.
    if (in.size() * in.size() * out.size() <= 4'000'000) {
      size_t b1 = 0, b2 = 0, bo = 0;
      best_gain = kEps;
      for (size_t x = 0; x < in.size(); ++x) {
        for (size_t y = x + 1; y < in.size(); ++y) {
          const size_t a1 = in[x], a2 = in[y];
          const double pa = c[a1].replica.price_per_hour + c[a2].replica.price_per_hour;
          const double ca = c[a1].replica.max_rps + c[a2].replica.max_rps;
          for (size_t b : out) {
            ++evaluated;
            const double gain = pa - c[b].replica.price_per_hour;
            if (gain <= best_gain) continue;
            if (!covers(s.cap - ca + c[b].replica.max_rps, s.count - 1, p)) continue;
            if (!s.free(b, a1, a2) || !s.survives(p, {a1, a2}, {b})) continue;
            best_gain = gain, b1 = a1, b2 = a2, bo = b;
          }
        }
      }
      if (best_gain > kEps) {
        s.set(b1, false);
        s.set(b2, false);
        s.set(bo, true);
        continue;
      }
    }
    // 1-for-2 on small pools: one replica replaced by two cheaper ones.
    if (in.size() * out.size() * out.size() <= 4'000'000) {
      size_t ba = 0, bx = 0, by = 0;
      best_gain = kEps;
      for (size_t a : in) {
        for (size_t x = 0; x < out.size(); ++x) {
          for (size_t y = x + 1; y < out.size(); ++y) {
            ++evaluated;
            const size_t o1 = out[x], o2 = out[y];
            const double gain = c[a].replica.price_per_hour - c[o1].replica.price_per_hour -
                                c[o2].replica.price_per_hour;
            if (gain <= best_gain) continue;
            if (!covers(
                    s.cap - c[a].replica.max_rps + c[o1].replica.max_rps + c[o2].replica.max_rps,
                    s.count + 1, p)) {
              continue;
            }
            if (!s.free(o1, a) || !s.free(o2, a)) continue;
            bool overlap = false;
            for (size_t d1 : c[o1].devices) {
              for (size_t d2 : c[o2].devices) overlap = overlap || d1 == d2;
            }
            if (overlap || !s.survives(p, {a}, {o1, o2})) continue;
            best_gain = gain, ba = a, bx = o1, by = o2;
          }
        }
      }
      if (best_gain > kEps) {
        s.set(ba, false);
        s.set(bx, true);
        s.set(by, true);
        continue;
      }
    }
    break;
  }
}

// Adds candidates in `order` (skipping ones whose devices are taken) until the load is covered.
// With survive_vendor_loss, only candidates that lower the vendor deficit (or are needed for the
// replica count) are kept, in passes over `order` until it survives or a pass adds nothing: more
// of the vendor whose loss is uncovered never helps, the other vendors' capacity does.
void fill_greedy(Selection& s, const std::vector<size_t>& order, const PlacementProblem& p) {
  if (!p.options.survive_vendor_loss) {
    for (size_t i : order) {
      if (covers(s.cap, s.count, p)) break;
      if (!s.chosen[i] && s.free(i)) s.set(i, true);
    }
    return;
  }
  const auto done = [&] { return covers(s.cap, s.count, p) && s.survives(p); };
  for (bool added = true; added && !done();) {
    added = false;
    for (size_t i : order) {
      if (done()) break;
      if (s.chosen[i] || !s.free(i)) continue;
      const double before = s.vendor_deficit(p);
      s.set(i, true);
      if (s.vendor_deficit(p) < before - kEps || s.count <= required_replicas(p) ||
          s.cap < p.workload.rps + kEps) {
        added = true;
      } else {
        s.set(i, false);
      }
    }
  }
}

std::vector<PlannedReplica> chosen_replicas(const Selection& s) {
  std::vector<PlannedReplica> out;
  for (size_t i = 0; i < s.chosen.size(); ++i) {
    if (s.chosen[i]) out.push_back((*s.cands)[i].replica);
  }
  return out;
}

// Best effort when nothing is feasible: every single-device candidate (most capacity).
Placement infeasible(const std::vector<Candidate>& cands, const PlacementProblem& p,
                     size_t evaluated) {
  std::vector<PlannedReplica> all;
  for (const Candidate& c : cands) {
    if (c.devices.size() == 1) all.push_back(c.replica);
  }
  Placement out = finish_placement(std::move(all), p);
  out.feasible = false;
  size_t eligible_devices = 0;
  for (const PlacementDevice& d : p.devices) eligible_devices += eligible(d, p);
  if (eligible_devices == 0) {
    out.reason = "no eligible device (all withdrawn or of excluded vendors)";
  } else if (cands.empty()) {
    out.reason = fmt::format(
        "none of the {} eligible devices meets the SLO (TTFT {} ms, TPOT {} ms) even when idle",
        eligible_devices, p.slo.ttft_ms, p.slo.tpot_ms);
  } else if (out.reason.empty()) {
    out.reason = "no set of replicas meets the load, the SLO and the replica count";
  }
  out.evaluated = evaluated;
  return out;
}

// survive_vendor_loss over a list of replicas (finish_placement and the exhaustive search).
bool survives_all(const std::vector<PlannedReplica>& replicas, const PlacementProblem& p) {
  const VendorLoss loss = worst_vendor_loss(replicas);
  return loss.vendor.empty() ||
         (loss.surviving_replicas >= 1 && loss.surviving_rps + kEps >= p.workload.rps);
}

double combine(const std::vector<double>& ratio, const std::vector<double>& speeds) {
  double t = 0;
  for (size_t i = 0; i < ratio.size(); ++i) t += ratio[i] / speeds[i];
  return 1.0 / t;
}

}  // namespace

VendorLoss worst_vendor_loss(const std::vector<PlannedReplica>& replicas) {
  const auto vendors_of = [](const PlannedReplica& r) {
    return r.vendors.empty() ? std::vector<std::string>{r.vendor} : r.vendors;
  };
  std::set<std::string> all;
  for (const PlannedReplica& r : replicas) {
    for (const std::string& v : vendors_of(r)) all.insert(v);
  }
  std::optional<VendorLoss> worst;
  for (const std::string& v : all) {
    VendorLoss l{v, 0, 0};
    for (const PlannedReplica& r : replicas) {
      const auto vs = vendors_of(r);
      if (std::find(vs.begin(), vs.end(), v) != vs.end()) continue;
      l.surviving_rps += r.max_rps;
      ++l.surviving_replicas;
    }
    if (!worst || l.surviving_rps < worst->surviving_rps - kEps ||
        (l.surviving_rps < worst->surviving_rps + kEps &&
         l.surviving_replicas < worst->surviving_replicas)) {
      worst = l;
    }
  }
  return worst.value_or(VendorLoss{});
}

std::string PlannedReplica::id() const {
  std::string s;
  for (const std::string& d : device_ids) s += (s.empty() ? "" : "+") + d;
  return s;
}

PlannedReplica estimate_replica(const std::vector<const PlacementDevice*>& devices,
                                const PlacementProblem& problem) {
  LUZAO_CHECK(!devices.empty());
  PlannedReplica r;
  r.vendor = devices[0]->vendor;
  std::vector<double> pre, dec, bat;
  double mem = 0;
  bool mem_known = true;
  for (const PlacementDevice* d : devices) {
    if (std::find(r.vendors.begin(), r.vendors.end(), d->vendor) == r.vendors.end())
      r.vendors.push_back(d->vendor);
    r.device_ids.push_back(d->id);
    r.price_per_hour += d->price_per_hour;
    pre.push_back(d->prefill_tps > 0 ? d->prefill_tps : kDefaultPrefillTps);
    dec.push_back(d->decode_tps > 0 ? d->decode_tps : kDefaultDecodeTps);
    bat.push_back(std::max(dec.back(), d->decode_tps_batched));
    mem += d->memory_gb;
    mem_known = mem_known && d->memory_gb > 0;
  }
  std::sort(r.vendors.begin(), r.vendors.end());
  // Layers split in proportion to memory when every device states it, else evenly.
  for (const PlacementDevice* d : devices) {
    r.ratio.push_back(mem_known ? d->memory_gb / mem : 1.0 / static_cast<double>(devices.size()));
  }
  // A layer split runs its parts one after the other: per-token times add up (harmonic speed).
  r.prefill_tps = combine(r.ratio, pre);
  r.decode_tps = combine(r.ratio, dec);
  r.decode_tps_batched = combine(r.ratio, bat);
  const Workload& w = problem.workload;
  const double prefill_s = w.prompt_tokens / r.prefill_tps;
  r.service_s = prefill_s + w.output_tokens / r.decode_tps_batched;
  double cap = std::clamp(problem.options.target_utilization, 0.0, 1.0);
  if (problem.options.model_memory_gb > 0 && mem_known && mem < problem.options.model_memory_gb)
    cap = 0;
  if (problem.slo.ttft_ms > 0) cap = std::min(cap, 1.0 - prefill_s * 1000.0 / problem.slo.ttft_ms);
  if (problem.slo.tpot_ms > 0) {
    if (1000.0 / r.decode_tps > problem.slo.tpot_ms) cap = 0;
    cap = std::min(cap, 1.0 - 1000.0 / (r.decode_tps_batched * problem.slo.tpot_ms));
  }
  r.max_rps = cap > kEps && r.service_s > 0 ? cap / r.service_s : 0;
  return r;
}

PlacementProblem make_problem(const PoolSpec& spec, const ProbeResults& probe,
                              const Workload& workload) {
  PlacementProblem p;
  p.workload = workload;
  p.slo = spec.policy.slo;
  p.options.min_replicas = std::max(1, spec.replicas);
  p.options.survive_vendor_loss = spec.policy.survive_vendor_loss;
  p.excluded_vendors.insert(spec.policy.exclude_vendors.begin(), spec.policy.exclude_vendors.end());
  for (const PoolDevice& d : spec.devices) {
    PlacementDevice pd;
    pd.id = d.id;
    pd.vendor = d.vendor();
    pd.price_per_hour = d.price_per_hour;
    pd.memory_gb = d.memory_gb.value_or(0);
    auto it = probe.find(d.id);
    if (it != probe.end()) {
      pd.prefill_tps = it->second.prefill_tps;
      pd.decode_tps = it->second.decode_tps;
      pd.decode_tps_batched = it->second.decode_tps_batched;
    }
    p.devices.push_back(std::move(pd));
  }
  return p;
}

Placement finish_placement(std::vector<PlannedReplica> replicas, const PlacementProblem& problem) {
  Placement out;
  out.offered_rps = problem.workload.rps;
  for (const PlannedReplica& r : replicas) {
    out.capacity_rps += r.max_rps;
    out.cost_per_hour += r.price_per_hour;
  }
  const Workload& w = problem.workload;
  bool slo_ok = true;
  for (PlannedReplica& r : replicas) {
    r.load_rps = out.capacity_rps > 0 ? w.rps * r.max_rps / out.capacity_rps : 0;
    r.utilization = r.load_rps * r.service_s;
    const double free = 1.0 - r.utilization;
    if (free <= 0) {
      r.ttft_ms = r.tpot_ms = kInf;
    } else {
      // M/G/1 processor sharing: a job of size x takes x / (1 - rho) on average.
      r.ttft_ms = 1000.0 * (w.prompt_tokens / r.prefill_tps) / free;
      r.tpot_ms = 1000.0 * std::max(1.0 / r.decode_tps, 1.0 / (r.decode_tps_batched * free));
    }
    slo_ok = slo_ok && r.max_rps > 0 &&
             (problem.slo.ttft_ms <= 0 || r.ttft_ms <= problem.slo.ttft_ms * (1 + 1e-9)) &&
             (problem.slo.tpot_ms <= 0 || r.tpot_ms <= problem.slo.tpot_ms * (1 + 1e-9));
  }
  if (w.rps > 0)
    out.cost_per_million_tokens = out.cost_per_hour / (w.rps * w.output_tokens * 3600.0) * 1e6;
  const int n = static_cast<int>(replicas.size());
  if (n < required_replicas(problem)) {
    out.reason =
        fmt::format("{} replicas, fewer than the {} required", n, required_replicas(problem));
  } else if (out.capacity_rps + kEps < w.rps) {
    out.reason =
        fmt::format("capacity {:.3g} requests/s within the SLO is below the offered {:.3g}",
                    out.capacity_rps, w.rps);
  } else if (!slo_ok) {
    out.reason = "a replica misses the SLO";
  } else if (problem.options.survive_vendor_loss && !survives_all(replicas, problem)) {
    const VendorLoss loss = worst_vendor_loss(replicas);
    out.reason =
        loss.surviving_replicas == 0
            ? fmt::format(
                  "survive_vendor_loss: the loss of vendor '{}' is not covered: no replica "
                  "of another vendor (every replica has a '{}' device)",
                  loss.vendor, loss.vendor)
            : fmt::format(
                  "survive_vendor_loss: the loss of vendor '{}' is not covered: the other "
                  "vendors' {} replicas carry {:.3g} requests/s within the SLO, below the "
                  "offered {:.3g}",
                  loss.vendor, loss.surviving_replicas, loss.surviving_rps, w.rps);
  }
  out.feasible = out.reason.empty();
  out.replicas = std::move(replicas);
  return out;
}

namespace {

Placement place_impl(const PlacementProblem& problem) {
  const std::vector<Candidate> cands = make_candidates(problem, false);
  size_t evaluated = 0;
  std::vector<size_t> base(cands.size());
  std::iota(base.begin(), base.end(), 0);
  const auto value = [&](size_t i) {
    return cands[i].replica.price_per_hour / cands[i].replica.max_rps;
  };
  std::vector<std::function<bool(size_t, size_t)>> orders = {
      [&](size_t a, size_t b) { return value(a) < value(b); },
      [&](size_t a, size_t b) {
        return cands[a].replica.price_per_hour < cands[b].replica.price_per_hour;
      },
      [&](size_t a, size_t b) { return cands[a].replica.max_rps > cands[b].replica.max_rps; },
  };
  std::optional<Selection> best;
  for (const auto& less : orders) {
    std::vector<size_t> order = base;
    std::stable_sort(order.begin(), order.end(), less);
    Selection s(cands, problem.devices.size());
    fill_greedy(s, order, problem);
    if (!covers(s.cap, s.count, problem) || !s.survives(problem)) continue;
    improve(s, problem, evaluated);
    if (!best || s.price < best->price - kEps ||
        (s.price < best->price + kEps && s.cap > best->cap)) {
      best = std::move(s);
    }
  }
  if (!best) return infeasible(cands, problem, evaluated);
  Placement out = finish_placement(chosen_replicas(*best), problem);
  out.evaluated = evaluated;
  return out;
}

}  // namespace

Placement place_exhaustive(const PlacementProblem& problem) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < problem.devices.size(); ++i) {
    if (eligible(problem.devices[i], problem)) idx.push_back(i);
  }
  const size_t limit = problem.options.allow_splits ? 10 : 16;
  if (idx.size() > limit) {
    fail(ErrorKind::kInvalidArgument, "exhaustive placement: {} eligible devices, at most {}",
         idx.size(), limit);
  }
  std::vector<PlannedReplica> single(problem.devices.size());
  for (size_t i : idx) single[i] = estimate_replica({&problem.devices[i]}, problem);
  // Each device: unused, a replica of its own, or split with a later unused device.
  std::vector<char> taken(problem.devices.size(), 0);
  std::vector<PlannedReplica> current, best;
  double best_price = kInf, best_cap = 0;
  size_t evaluated = 0;
  std::function<void(size_t, double, double)> visit = [&](size_t k, double price, double cap) {
    if (price > best_price + kEps) return;  // prices are non-negative: cannot get cheaper
    if (k == idx.size()) {
      ++evaluated;
      if (!covers(cap, static_cast<int>(current.size()), problem)) return;
      if (problem.options.survive_vendor_loss && !survives_all(current, problem)) return;
      if (price < best_price - kEps || (price < best_price + kEps && cap > best_cap)) {
        best_price = price, best_cap = cap, best = current;
      }
      return;
    }
    const size_t i = idx[k];
    if (taken[i]) return visit(k + 1, price, cap);
    visit(k + 1, price, cap);
    if (single[i].max_rps > 0) {
      current.push_back(single[i]);
      visit(k + 1, price + single[i].price_per_hour, cap + single[i].max_rps);
      current.pop_back();
    }
    if (!problem.options.allow_splits) return;
    for (size_t m = k + 1; m < idx.size(); ++m) {
      const size_t j = idx[m];
      if (taken[j]) continue;
      PlannedReplica pair = estimate_replica({&problem.devices[i], &problem.devices[j]}, problem);
      if (pair.max_rps <= 0) continue;
      taken[j] = 1;
      current.push_back(pair);
      visit(k + 1, price + pair.price_per_hour, cap + pair.max_rps);
      current.pop_back();
      taken[j] = 0;
    }
  };
  visit(0, 0.0, 0.0);
  if (best_price == kInf) return infeasible(make_candidates(problem, false), problem, evaluated);
  Placement out = finish_placement(std::move(best), problem);
  out.evaluated = evaluated;
  return out;
}

namespace {

Placement replan_impl(const PlacementProblem& problem, const Placement& previous) {
  Placement fresh = place_impl(problem);
  const std::vector<Candidate> cands = make_candidates(problem, false);
  Selection s(cands, problem.devices.size());
  // Start from the previous replicas whose devices all survive.
  for (const PlannedReplica& r : previous.replicas) {
    for (size_t i = 0; i < cands.size(); ++i) {
      if (cands[i].replica.id() == r.id() && s.free(i)) s.set(i, true);
    }
  }
  std::vector<size_t> order(cands.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return cands[a].replica.price_per_hour / cands[a].replica.max_rps <
           cands[b].replica.price_per_hour / cands[b].replica.max_rps;
  });
  fill_greedy(s, order, problem);
  // Only drop surplus replicas (never swap a running one out for a cheaper one here).
  for (bool dropped = true; dropped;) {
    dropped = false;
    size_t worst = SIZE_MAX;
    for (size_t i = 0; i < cands.size(); ++i) {
      if (!s.chosen[i] || !covers(s.cap - cands[i].replica.max_rps, s.count - 1, problem) ||
          !s.survives(problem, {i}))
        continue;
      if (worst == SIZE_MAX ||
          cands[i].replica.price_per_hour > cands[worst].replica.price_per_hour)
        worst = i;
    }
    if (worst != SIZE_MAX) {
      s.set(worst, false);
      dropped = true;
    }
  }
  Placement out = fresh;
  if (covers(s.cap, s.count, problem) && s.survives(problem) &&
      (!fresh.feasible || s.price <= fresh.cost_per_hour * 1.10 + kEps)) {
    out = finish_placement(chosen_replicas(s), problem);
    out.evaluated = fresh.evaluated;
  }
  std::set<std::string> before, after;
  for (const PlannedReplica& r : previous.replicas) before.insert(r.id());
  for (const PlannedReplica& r : out.replicas) after.insert(r.id());
  for (const std::string& id : after) {
    if (!before.contains(id)) out.added.push_back(id);
  }
  for (const std::string& id : before) {
    if (!after.contains(id)) out.removed.push_back(id);
  }
  return out;
}

// When spare capacity across vendors cannot be had (one vendor left, or too little of the
// others), serving the load still beats starting every device: the placement for the load alone,
// still reported infeasible with the reason the policy failed.
Placement degrade(Placement spare, const PlacementProblem& problem,
                  const std::function<Placement(const PlacementProblem&)>& plan) {
  if (spare.feasible || !problem.options.survive_vendor_loss) return spare;
  PlacementProblem plain = problem;
  plain.options.survive_vendor_loss = false;
  Placement out = plan(plain);
  if (!out.feasible) return spare;
  out.feasible = false;
  out.reason = spare.reason + "; placed for the load alone, without spare capacity";
  out.evaluated += spare.evaluated;
  return out;
}

}  // namespace

Placement place(const PlacementProblem& problem) {
  return degrade(place_impl(problem), problem, place_impl);
}

Placement replan(const PlacementProblem& problem, const Placement& previous) {
  return degrade(replan_impl(problem, previous), problem,
                 [&](const PlacementProblem& p) { return replan_impl(p, previous); });
}

}  // namespace luzao::pool
