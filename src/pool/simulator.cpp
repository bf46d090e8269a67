// Event-driven pool simulation: replicas run continuous batching (one prefill or one decode step
// at a time), requests are routed by pool::Router and replicas chosen by pool::place/replan.
#include "pool/simulator.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <fstream>
#include <map>
#include <queue>
#include <random>
#include <sstream>

#include "core/error.h"
#include "pool/routing.h"

namespace luzao::pool {
namespace {

constexpr double kNever = -1;

struct Req {
  SimRequest in;
  int64_t generated = 0;
  double first_token_s = kNever;
  double finish_s = kNever;
  double moved_at_s = kNever;  // last move, until its next token
  std::vector<double> move_delays;
  bool moved = false;
  bool lost = false;
};

struct Replica {
  PlannedReplica plan;
  std::vector<std::string> vendors;
  int parallel = 1;
  double start_s = 0;
  double stop_s = kNever;  // when it stopped costing money
  bool ready = false;      // loaded and serving
  bool withdrawn = false;  // devices gone: everything on it moved away
  bool draining = false;   // removed by a re-plan: finishes its work, takes no new requests
  bool busy = false;
  bool last_prefill = false;
  uint32_t epoch = 0;
  std::deque<size_t> waiting;
  std::vector<size_t> running;
  size_t prefilling = SIZE_MAX;
};

enum class Kind { kWithdraw = 0, kReady = 1, kStep = 2, kArrival = 3 };

struct Event {
  double t;
  Kind kind;
  size_t index;
  uint32_t epoch;
  uint64_t seq;
  bool operator>(const Event& o) const {
    if (t != o.t) return t > o.t;
    if (kind != o.kind) return kind > o.kind;
    return seq > o.seq;
  }
};

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

class Simulation {
 public:
  explicit Simulation(const SimConfig& c) : c_(c), router_(c.affinity_slack) {
    for (size_t i = 0; i < c.devices.size(); ++i) {
      vendor_of_[c.devices[i].id] = c.devices[i].vendor;
      parallel_of_[c.devices[i].id] = i < c.parallel.size() ? std::max(1, c.parallel[i]) : 8;
    }
    for (const SimRequest& r : c.requests) reqs_.push_back({r});
    problem_.devices = c.devices;
    problem_.slo = c.slo;
    problem_.options = c.options;
    problem_.excluded_vendors = c.excluded_vendors;
    problem_.workload = c.plan_for ? *c.plan_for : trace_workload();
  }

  SimReport run() {
    SimReport report;
    report.initial = place(problem_);
    for (const PlannedReplica& p : report.initial.replicas) start_replica(p, 0.0, true);
    for (size_t i = 0; i < reqs_.size(); ++i) push(reqs_[i].in.arrival_s, Kind::kArrival, i, 0);
    if (c_.withdraw_vendor) push(c_.withdraw_at_s, Kind::kWithdraw, 0, 0);
    while (!events_.empty()) {
      const Event e = events_.top();
      events_.pop();
      now_ = e.t;
      switch (e.kind) {
        case Kind::kArrival:
          dispatch(e.index);
          break;
        case Kind::kStep:
          on_step(e.index, e.epoch);
          break;
        case Kind::kReady:
          on_ready(e.index, e.epoch);
          break;
        case Kind::kWithdraw:
          report.replanned = withdraw();
          break;
      }
    }
    const double end = std::max(now_, c_.withdraw_vendor ? c_.withdraw_at_s : 0.0);
    for (Replica& r : replicas_) {
      if (r.stop_s == kNever) r.stop_s = end;
    }
    report.end_s = end;
    const double split = c_.withdraw_vendor ? c_.withdraw_at_s : end;
    report.all = window(
        0, end, [](const Req&) { return true; }, tokens_before_ + tokens_after_);
    report.before = window(
        0, split, [&](const Req& q) { return q.in.arrival_s < split; }, tokens_before_);
    if (c_.withdraw_vendor) {
      report.after = window(
          split, end, [&](const Req& q) { return q.in.arrival_s >= split; }, tokens_after_);
    }
    report.all.reprefilled_tokens = reprefilled_;
    report.affinity_hits = static_cast<int64_t>(router_.stats().affinity_hits);
    return report;
  }

 private:
  Workload trace_workload() const {
    Workload w;
    if (reqs_.empty()) return w;
    double prompt = 0, output = 0, last = 0;
    for (const Req& q : reqs_) {
      prompt += static_cast<double>(q.in.prompt_tokens);
      output += static_cast<double>(q.in.output_tokens);
      last = std::max(last, q.in.arrival_s);
    }
    const double n = static_cast<double>(reqs_.size());
    w.rps = last > 0 ? n / last : n;
    w.prompt_tokens = prompt / n;
    w.output_tokens = std::max(1.0, output / n);
    return w;
  }

  void push(double t, Kind kind, size_t index, uint32_t epoch) {
    events_.push({t, kind, index, epoch, next_seq_++});
  }

  void start_replica(const PlannedReplica& plan, double t, bool immediately) {
    Replica r;
    r.plan = plan;
    r.parallel = 1 << 30;
    for (const std::string& id : plan.device_ids) {
      r.vendors.push_back(vendor_of_.at(id));
      r.parallel = std::min(r.parallel, parallel_of_.at(id));
    }
    r.start_s = t;
    r.ready = immediately || c_.spinup_s <= 0;
    replicas_.push_back(std::move(r));
    ReplicaState s;
    s.id = plan.id();
    s.available = replicas_.back().ready;
    s.prefill_tps = plan.prefill_tps;
    s.decode_tps = plan.decode_tps_batched;
    states_.push_back(s);
    if (!replicas_.back().ready) push(t + c_.spinup_s, Kind::kReady, replicas_.size() - 1, 0);
  }

  // Routes request `i` (new, moved or parked) to a replica, or parks it while one is starting.
  void dispatch(size_t i) {
    Req& q = reqs_[i];
    const int64_t prefill = q.in.prompt_tokens + q.generated;
    const RouteRequest rr{q.in.prefix_key, prefill, q.in.output_tokens - q.generated};
    const int k = router_.pick(states_, rr);
    if (k < 0) {
      bool starting = false;
      for (const Replica& r : replicas_) starting = starting || (!r.ready && !r.withdrawn);
      if (starting) {
        parked_.push_back(i);
      } else {
        q.lost = true;
      }
      return;
    }
    const size_t ri = static_cast<size_t>(k);
    replicas_[ri].waiting.push_back(i);
    states_[ri].pending_prompt_tokens += prefill;
    states_[ri].pending_output_tokens += q.in.output_tokens - q.generated;
    start_step(ri);
  }

  // Decode step time for a batch of b sequences: linear between 1/decode_tps (b = 1) and
  // parallel/decode_tps_batched (b = parallel).
  double decode_step_s(const Replica& r, size_t b) const {
    const double t1 = 1.0 / r.plan.decode_tps;
    if (r.parallel <= 1) return t1;
    const double tn = static_cast<double>(r.parallel) / r.plan.decode_tps_batched;
    return t1 + (static_cast<double>(b) - 1) * (tn - t1) / (r.parallel - 1);
  }

  void start_step(size_t ri) {
    Replica& r = replicas_[ri];
    if (!r.ready || r.withdrawn || r.busy) return;
    const bool can_prefill =
        !r.waiting.empty() && r.running.size() < static_cast<size_t>(r.parallel);
    double dur = 0;
    if (can_prefill && (r.running.empty() || !r.last_prefill)) {
      r.prefilling = r.waiting.front();
      r.waiting.pop_front();
      const Req& q = reqs_[r.prefilling];
      dur = static_cast<double>(q.in.prompt_tokens + q.generated) / r.plan.prefill_tps;
      r.last_prefill = true;
    } else if (!r.running.empty()) {
      dur = decode_step_s(r, r.running.size());
      r.last_prefill = false;
    } else {
      if (r.draining && r.stop_s == kNever) r.stop_s = now_;
      return;
    }
    r.busy = true;
    push(now_ + dur, Kind::kStep, ri, r.epoch);
  }

  void emit_token(Req& q) {
    ++q.generated;
    (now_ < split_time() ? tokens_before_ : tokens_after_) += 1;
    if (q.first_token_s == kNever) q.first_token_s = now_;
    if (q.moved_at_s != kNever) {
      q.move_delays.push_back(now_ - q.moved_at_s);
      q.moved_at_s = kNever;
    }
  }

  double split_time() const { return c_.withdraw_vendor ? c_.withdraw_at_s : 1e300; }

  void on_step(size_t ri, uint32_t epoch) {
    Replica& r = replicas_[ri];
    if (epoch != r.epoch || r.withdrawn) return;  // the step's work was lost with the device
    r.busy = false;
    ReplicaState& s = states_[ri];
    if (r.prefilling != SIZE_MAX) {
      Req& q = reqs_[r.prefilling];
      s.pending_prompt_tokens -= q.in.prompt_tokens + q.generated;
      emit_token(q);
      --s.pending_output_tokens;
      if (q.generated >= q.in.output_tokens) {
        q.finish_s = now_;
      } else {
        r.running.push_back(r.prefilling);
      }
      r.prefilling = SIZE_MAX;
    } else {
      size_t kept = 0;
      for (size_t i : r.running) {
        Req& q = reqs_[i];
        emit_token(q);
        --s.pending_output_tokens;
        if (q.generated >= q.in.output_tokens) {
          q.finish_s = now_;
        } else {
          r.running[kept++] = i;
        }
      }
      r.running.resize(kept);
    }
    start_step(ri);
  }

  void on_ready(size_t ri, uint32_t epoch) {
    Replica& r = replicas_[ri];
    if (epoch != r.epoch || r.withdrawn) return;
    r.ready = true;
    states_[ri].available = !r.draining;
    std::vector<size_t> parked;
    parked.swap(parked_);
    for (size_t i : parked) dispatch(i);
  }

  Placement withdraw() {
    const std::string& vendor = *c_.withdraw_vendor;
    std::vector<size_t> moved;
    Placement current;
    for (size_t ri = 0; ri < replicas_.size(); ++ri) {
      Replica& r = replicas_[ri];
      const bool hit = std::find(r.vendors.begin(), r.vendors.end(), vendor) != r.vendors.end();
      if (!r.draining) current.replicas.push_back(r.plan);  // re-plan reports the lost ones removed
      if (!hit || r.withdrawn) continue;
      r.withdrawn = true;
      ++r.epoch;
      r.stop_s = now_;
      states_[ri].available = false;
      states_[ri].pending_prompt_tokens = states_[ri].pending_output_tokens = 0;
      router_.forget(states_[ri].id);
      if (r.prefilling != SIZE_MAX) moved.push_back(r.prefilling);
      for (size_t i : r.running) moved.push_back(i);
      for (size_t i : r.waiting) moved.push_back(i);
      r.prefilling = SIZE_MAX;
      r.running.clear();
      r.waiting.clear();
    }
    problem_.excluded_vendors.insert(vendor);
    Placement next = replan(problem_, current);
    for (const std::string& id : next.removed) {
      for (size_t ri = 0; ri < replicas_.size(); ++ri) {
        if (states_[ri].id != id || replicas_[ri].withdrawn) continue;
        replicas_[ri].draining = true;
        states_[ri].available = false;
        if (!replicas_[ri].busy && replicas_[ri].ready) start_step(ri);  // stops it when idle
      }
    }
    for (const PlannedReplica& p : next.replicas) {
      if (std::find(next.added.begin(), next.added.end(), p.id()) != next.added.end()) {
        start_replica(p, now_, false);
      }
    }
    for (size_t i : moved) {
      Req& q = reqs_[i];
      q.moved = true;
      q.moved_at_s = now_;
      reprefilled_ += q.in.prompt_tokens + q.generated;
      dispatch(i);
    }
    return next;
  }

  template <typename Pred>
  SimWindow window(double from, double to, Pred in_window, int64_t tokens) const {
    SimWindow w;
    w.seconds = to - from;
    std::vector<double> ttft, tpot, delays;
    int64_t within = 0;
    for (const Req& q : reqs_) {
      if (!in_window(q)) continue;
      ++w.requests;
      w.lost += q.lost;
      w.moved += q.moved;
      delays.insert(delays.end(), q.move_delays.begin(), q.move_delays.end());
      if (q.finish_s == kNever) continue;
      ++w.completed;
      const double t1 = (q.first_token_s - q.in.arrival_s) * 1000.0;
      const double tp = q.generated > 1 ? (q.finish_s - q.first_token_s) * 1000.0 /
                                              static_cast<double>(q.generated - 1)
                                        : 0.0;
      ttft.push_back(t1);
      tpot.push_back(tp);
      within += (c_.slo.ttft_ms <= 0 || t1 <= c_.slo.ttft_ms) &&
                (c_.slo.tpot_ms <= 0 || tp <= c_.slo.tpot_ms);
    }
    for (const Replica& r : replicas_) {
      const double a = std::max(from, r.start_s), b = std::min(to, r.stop_s);
      if (b > a) w.cost += r.plan.price_per_hour * (b - a) / 3600.0;
    }
    w.generated_tokens = tokens;
    w.cost_per_million_tokens = tokens > 0 ? w.cost / static_cast<double>(tokens) * 1e6 : 0;
    w.throughput_tps = w.seconds > 0 ? static_cast<double>(tokens) / w.seconds : 0;
    w.ttft_p50_ms = percentile(ttft, 0.5);
    w.ttft_p99_ms = percentile(ttft, 0.99);
    w.tpot_p50_ms = percentile(tpot, 0.5);
    w.tpot_p99_ms = percentile(tpot, 0.99);
    w.move_delay_p50_ms = percentile(delays, 0.5) * 1000.0;
    w.move_delay_p99_ms = percentile(delays, 0.99) * 1000.0;
    w.slo_attainment =
        w.completed > 0 ? static_cast<double>(within) / static_cast<double>(w.completed) : 0;
    return w;
  }

  const SimConfig& c_;
  Router router_;
  PlacementProblem problem_;
  std::map<std::string, std::string> vendor_of_;
  std::map<std::string, int> parallel_of_;
  std::vector<Req> reqs_;
  std::vector<Replica> replicas_;
  std::vector<ReplicaState> states_;  // the router's view, index-aligned with replicas_
  std::vector<size_t> parked_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  uint64_t next_seq_ = 0;
  double now_ = 0;
  int64_t tokens_before_ = 0, tokens_after_ = 0, reprefilled_ = 0;
};

}  // namespace

const std::vector<VendorClass>& builtin_vendor_classes() {
  static const std::vector<VendorClass> kClasses = {
      {"nvidia", 2.50, 12000, 90, 2400, 32},   {"ascend", 1.60, 9000, 70, 1700, 32},
      {"cambricon", 1.10, 6000, 55, 1100, 32}, {"mthreads", 0.90, 4000, 40, 700, 32},
      {"cpu", 0.30, 600, 25, 120, 8},
  };
  return kClasses;
}

std::vector<PlacementDevice> make_sim_devices(int count, int vendors, uint64_t seed) {
  const auto& classes = builtin_vendor_classes();
  if (vendors < 1 || vendors > static_cast<int>(classes.size())) {
    fail(ErrorKind::kInvalidArgument, "--vendors {}: between 1 and {}", vendors, classes.size());
  }
  if (count < 1) fail(ErrorKind::kInvalidArgument, "--devices {}: at least 1", count);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> jitter(-1, 1);
  std::vector<PlacementDevice> out;
  std::vector<int> per_vendor(static_cast<size_t>(vendors), 0);
  for (int i = 0; i < count; ++i) {
    const size_t v = static_cast<size_t>(i % vendors);
    const VendorClass& k = classes[v];
    const double speed = 1 + 0.10 * jitter(rng);
    PlacementDevice d;
    d.id = k.vendor + "-" + std::to_string(per_vendor[v]++);
    d.vendor = k.vendor;
    d.price_per_hour = std::round(k.price_per_hour * (1 + 0.05 * jitter(rng)) * 1000) / 1000;
    d.prefill_tps = k.prefill_tps * speed;
    d.decode_tps = k.decode_tps * speed;
    d.decode_tps_batched = k.decode_tps_batched * speed;
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<SimRequest> poisson_trace(double rps, double duration_s, double mean_prompt,
                                      double mean_output, int prefix_groups, uint64_t seed) {
  if (rps <= 0 || duration_s <= 0)
    fail(ErrorKind::kInvalidArgument, "--rps and --duration must be positive");
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rps);
  std::uniform_real_distribution<double> u(0.25, 1.75);
  std::vector<SimRequest> out;
  for (double t = gap(rng); t < duration_s; t += gap(rng)) {
    SimRequest r;
    r.arrival_s = t;
    r.prompt_tokens = std::max<int64_t>(1, std::llround(mean_prompt * u(rng)));
    r.output_tokens = std::max<int64_t>(1, std::llround(mean_output * u(rng)));
    if (prefix_groups > 0) r.prefix_key = 1 + rng() % static_cast<uint64_t>(prefix_groups);
    out.push_back(r);
  }
  return out;
}

std::vector<SimRequest> load_trace(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open the trace", path.string());
  std::vector<SimRequest> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#' ||
        (n == 1 && !std::isdigit(static_cast<unsigned char>(line[0]))))
      continue;
    std::stringstream s(line);
    std::string f[4];
    int fields = 0;
    while (fields < 4 && std::getline(s, f[fields], ',')) ++fields;
    SimRequest r;
    try {
      if (fields < 3) throw std::invalid_argument("fields");
      size_t used = 0;
      r.arrival_s = std::stod(f[0], &used);
      r.prompt_tokens = std::stoll(f[1]);
      r.output_tokens = std::stoll(f[2]);
      if (fields == 4 && !f[3].empty()) r.prefix_key = 1 + std::stoull(f[3]);
    } catch (const std::exception&) {
      fail(ErrorKind::kBadFile,
           "{}:{}: expected 'arrival_s,prompt_tokens,output_tokens[,prefix_group]', found '{}'",
           path.string(), n, line);
    }
    if (r.arrival_s < 0 || r.prompt_tokens < 0 || r.output_tokens < 1 ||
        !std::isfinite(r.arrival_s)) {
      fail(ErrorKind::kBadFile, "{}:{}: negative time or tokens, or no output tokens: '{}'",
           path.string(), n, line);
    }
    out.push_back(r);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.arrival_s < b.arrival_s; });
  return out;
}

SimReport simulate(const SimConfig& config) {
  return Simulation(config).run();
}

}  // namespace luzao::pool
