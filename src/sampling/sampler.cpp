// Sampler chain implementation: penalties, top-k, top-p, min-p, temperature and a portable draw.
#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <unordered_set>

#include "core/error.h"

namespace luzao {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The lowest id of the largest logit, NaN never winning (0 when nothing beats -inf). Sixteen
// independent lanes, each keeping its first maximum, let the compiler vectorise the scan: a plain
// loop carries one comparison chain through 49,152 logits (30 us; the lanes take 8).
int32_t first_argmax(std::span<const float> logits) {
  constexpr size_t kLanes = 16;
  float best[kLanes];
  uint32_t where[kLanes];
  for (size_t l = 0; l < kLanes; ++l) {
    best[l] = kNegInf;
    where[l] = 0;
  }
  const size_t full = logits.size() / kLanes * kLanes;
  for (size_t i = 0; i < full; i += kLanes) {
    for (size_t l = 0; l < kLanes; ++l) {
      const bool better = logits[i + l] > best[l];
      best[l] = better ? logits[i + l] : best[l];
      where[l] = better ? static_cast<uint32_t>(i + l) : where[l];
    }
  }
  float best_logit = kNegInf;
  size_t id = 0;
  for (size_t l = 0; l < kLanes; ++l) {
    if (best[l] > best_logit || (best[l] == best_logit && best[l] > kNegInf && where[l] < id)) {
      best_logit = best[l];
      id = where[l];
    }
  }
  for (size_t i = full; i < logits.size(); ++i) {
    if (logits[i] > best_logit) {
      best_logit = logits[i];
      id = i;
    }
  }
  return static_cast<int32_t>(id);
}

// Orders candidates by logit, highest first; the lower id wins a tie so results are deterministic.
constexpr auto kHigher = [](const auto& a, const auto& b) {
  if (a.logit != b.logit) return a.logit > b.logit;
  return a.id < b.id;
};

// A double in [0, 1) from the top 53 bits of one 64-bit draw: the same on every standard library,
// unlike std::uniform_real_distribution whose algorithm is implementation-defined.
double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

}  // namespace

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  if (std::isnan(params.temperature)) fail(ErrorKind::kInvalidArgument, "temperature is NaN");
  if (std::isnan(params.top_p) || params.top_p < 0.0f) {
    fail(ErrorKind::kInvalidArgument, "top_p must be >= 0 (got {})", params.top_p);
  }
  if (std::isnan(params.min_p)) fail(ErrorKind::kInvalidArgument, "min_p is NaN");
  if (!std::isfinite(params.repeat_penalty) || params.repeat_penalty <= 0.0f) {
    fail(ErrorKind::kInvalidArgument, "repeat_penalty must be finite and > 0 (got {})",
         params.repeat_penalty);
  }
}

void Sampler::accept(int32_t token) {
  if (params_.repeat_last_n <= 0) return;
  recent_.push_back(token);
  while (recent_.size() > static_cast<size_t>(params_.repeat_last_n)) recent_.pop_front();
}

void Sampler::reset() {
  recent_.clear();
  rng_.seed(params_.seed);
}

void Sampler::apply_penalty() {
  if (params_.repeat_penalty == 1.0f || recent_.empty()) return;
  // Each distinct recent token is penalised once, however often it occurred (llama.cpp's rule).
  const std::unordered_set<int32_t> seen(recent_.begin(), recent_.end());
  for (const int32_t id : seen) {
    if (id < 0 || static_cast<size_t>(id) >= candidates_.size()) continue;
    float& logit = candidates_[static_cast<size_t>(id)].logit;
    logit = logit > 0.0f ? logit / params_.repeat_penalty : logit * params_.repeat_penalty;
  }
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.empty()) fail(ErrorKind::kInvalidArgument, "sampler: empty logits");
  if (logits.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    fail(ErrorKind::kInvalidArgument, "sampler: vocabulary of {} entries is too large",
         logits.size());
  }
  if (params_.temperature <= 0.0f && (params_.repeat_penalty == 1.0f || recent_.empty())) {
    // Greedy without penalties: the argmax straight from the logits (NaN never wins, the lowest
    // id takes a tie), without building the candidate list: a server samples every sequence
    // between two batched forwards, so this is on the critical path.
    return first_argmax(logits);
  }
  candidates_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    candidates_[i] = {static_cast<int32_t>(i), std::isnan(logits[i]) ? kNegInf : logits[i]};
  }
  apply_penalty();  // indexes candidates_ by id, so it runs before any reordering

  if (params_.temperature <= 0.0f) {
    return std::min_element(candidates_.begin(), candidates_.end(), kHigher)->id;
  }

  // Top-k: keep the k best, sorted. Without it only as much of the best-first order is built as
  // the cuts and the draw read: sorting a whole vocabulary for every token costs milliseconds.
  size_t keep = candidates_.size();
  sorted_ = 0;
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
    keep = static_cast<size_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<ptrdiff_t>(keep),
                      candidates_.end(), kHigher);
    candidates_.resize(keep);
    sorted_ = keep;
  }
  // Sums over a whole vocabulary run in id order (the same on every platform), so the logits are
  // kept in that order before the candidates are reordered.
  const bool whole = keep == logits.size();
  double max_logit = kNegInf;
  id_logits_.clear();
  for (const Candidate& c : candidates_) {
    max_logit = std::max<double>(max_logit, c.logit);
    if (whole) id_logits_.push_back(c.logit);
  }
  sort_prefix(1);
  // No finite best logit: all mass is on the first candidate (or nowhere); take it.
  if (!std::isfinite(max_logit)) return candidates_.front().id;
  const auto weight1 = [&](size_t i) {
    return std::exp(static_cast<double>(candidates_[i].logit) - max_logit);
  };

  // Top-p at temperature 1: the shortest prefix whose mass reaches top_p (at least one token).
  if (params_.top_p < 1.0f) {
    double total = 0.0;
    if (whole) {
      for (float l : id_logits_) total += std::exp(static_cast<double>(l) - max_logit);
    } else {
      for (size_t i = 0; i < keep; ++i) total += weight1(i);
    }
    const double target = static_cast<double>(params_.top_p) * total;
    double cumulative = 0.0;
    size_t n = 0;
    while (n < keep) {
      sort_prefix(n + 1);
      cumulative += weight1(n++);
      if (cumulative >= target) break;
    }
    keep = std::max<size_t>(n, 1);
  }

  // Min-p: drop tokens whose probability is below min_p times the best one's (which has weight 1).
  if (params_.min_p > 0.0f) {
    size_t n = 1;
    while (n < keep) {
      sort_prefix(n + 1);
      if (weight1(n) < static_cast<double>(params_.min_p)) break;
      ++n;
    }
    keep = n;
  }
  if (keep == logits.size()) return draw(max_logit, true);  // nothing cut: no order needed
  sort_prefix(keep);
  candidates_.resize(keep);
  sorted_ = keep;
  return draw(max_logit, false);
}

void Sampler::sort_prefix(size_t n) {
  n = std::min(n, candidates_.size());
  if (n <= sorted_) return;
  // Grow geometrically: a walk down the order costs O(vocabulary x log(prefix)) in all.
  n = std::min(candidates_.size(), std::max({n, 2 * sorted_, size_t{64}}));
  std::partial_sort(candidates_.begin() + static_cast<ptrdiff_t>(sorted_),
                    candidates_.begin() + static_cast<ptrdiff_t>(n), candidates_.end(), kHigher);
  sorted_ = n;
}

int32_t Sampler::draw(double max_logit, bool whole) {
  // Temperature scales the distance to the best logit, which cannot overflow for tiny temperatures.
  const double temperature = params_.temperature;
  const auto weight = [&](float logit) {
    return std::exp((static_cast<double>(logit) - max_logit) / temperature);
  };
  if (whole) {
    // Nothing was cut: the draw runs over the whole vocabulary in id order, one pass without any
    // sorting (the same distribution as a walk best first, with another token per seed).
    double total = 0.0;
    for (float l : id_logits_) total += weight(l);
    const double target = uniform01(rng_) * total;
    double cumulative = 0.0;
    for (size_t i = 0; i < id_logits_.size(); ++i) {
      cumulative += weight(id_logits_[i]);
      if (target < cumulative) return static_cast<int32_t>(i);
    }
    for (size_t i = id_logits_.size(); i-- > 0;) {  // rounding: the last token with mass
      if (weight(id_logits_[i]) > 0.0) return static_cast<int32_t>(i);
    }
    return candidates_.front().id;
  }
  double total = 0.0;
  for (const Candidate& c : candidates_) total += weight(c.logit);
  const double target = uniform01(rng_) * total;
  double cumulative = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    cumulative += weight(candidates_[i].logit);
    if (target < cumulative) return candidates_[i].id;
  }
  // Rounding can leave target just above the last partial sum: the last token with mass wins.
  for (size_t i = candidates_.size(); i-- > 0;) {
    if (weight(candidates_[i].logit) > 0.0) return candidates_[i].id;
  }
  return candidates_.front().id;
}

}  // namespace luzao
