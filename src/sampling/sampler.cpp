// Sampler chain implementation: penalties, top-k, top-p, min-p, temperature and a portable draw.
#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "core/error.h"

namespace luzao {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

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
    size_t best = 0;
    float best_logit = std::isnan(logits[0]) ? kNegInf : logits[0];
    for (size_t i = 1; i < logits.size(); ++i) {
      if (logits[i] > best_logit) {
        best_logit = logits[i];
        best = i;
      }
    }
    return static_cast<int32_t>(best);
  }
  candidates_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    candidates_[i] = {static_cast<int32_t>(i), std::isnan(logits[i]) ? kNegInf : logits[i]};
  }
  apply_penalty();  // indexes candidates_ by id, so it runs before any reordering

  if (params_.temperature <= 0.0f) {
    return std::min_element(candidates_.begin(), candidates_.end(), kHigher)->id;
  }

  // Top-k: keep the k best, sorted. Without top-k everything is sorted for top-p.
  size_t keep = candidates_.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
    keep = static_cast<size_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<ptrdiff_t>(keep),
                      candidates_.end(), kHigher);
    candidates_.resize(keep);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), kHigher);
  }
  const float max_logit = candidates_.front().logit;
  // No finite best logit: all mass is on the first candidate (or nowhere); take it.
  if (!std::isfinite(max_logit)) return candidates_.front().id;

  // Probabilities at temperature 1 over the survivors, for top-p and min-p.
  weights_.resize(keep);
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    weights_[i] = std::exp(static_cast<double>(candidates_[i].logit) - max_logit);
    total += weights_[i];
  }

  // Top-p: the shortest prefix whose mass reaches top_p (at least one token).
  if (params_.top_p < 1.0f) {
    const double target = static_cast<double>(params_.top_p) * total;
    double cumulative = 0.0;
    size_t n = 0;
    while (n < keep) {
      cumulative += weights_[n++];
      if (cumulative >= target) break;
    }
    keep = std::max<size_t>(n, 1);
  }

  // Min-p: drop tokens whose probability is below min_p times the best one's (which has weight 1).
  if (params_.min_p > 0.0f) {
    size_t n = 1;
    while (n < keep && weights_[n] >= static_cast<double>(params_.min_p)) ++n;
    keep = n;
  }
  candidates_.resize(keep);

  return draw(max_logit);
}

int32_t Sampler::draw(double max_logit) {
  // Temperature scales the distance to the best logit, which cannot overflow for tiny temperatures.
  const double temperature = params_.temperature;
  weights_.resize(candidates_.size());
  double total = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    weights_[i] = std::exp((static_cast<double>(candidates_[i].logit) - max_logit) / temperature);
    total += weights_[i];
  }
  const double target = uniform01(rng_) * total;
  double cumulative = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    cumulative += weights_[i];
    if (target < cumulative) return candidates_[i].id;
  }
  // Rounding can leave target just above the last partial sum: the last token with mass wins.
  for (size_t i = candidates_.size(); i-- > 0;) {
    if (weights_[i] > 0.0) return candidates_[i].id;
  }
  return candidates_.front().id;
}

}  // namespace luzao
