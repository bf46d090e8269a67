// The sampler chain: repetition penalty -> top-k -> top-p -> min-p -> temperature -> seeded draw.
// Greedy (argmax) when temperature <= 0.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace luzao {

struct SamplingParams {
  float temperature = 0.8f;     // <= 0: greedy
  int32_t top_k = 40;           // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off; applied to the last repeat_last_n accepted tokens
  int32_t repeat_last_n = 64;   // <= 0: no tokens remembered (penalty off)
  uint64_t seed = 0;
};

// One per sequence; not thread-safe. Same params, seed and logits give the same tokens on every
// platform and standard library (the RNG is std::mt19937_64 with a hand-written conversion).
// top-p and min-p see the probabilities at temperature 1 (as llama.cpp's default chain does);
// temperature shapes only the final draw.
class Sampler {
 public:
  // Throws Error(kInvalidArgument) naming the field when a parameter is NaN or out of range.
  explicit Sampler(const SamplingParams& params);
  // Picks the next token from `logits` (one per vocabulary entry, not empty). Does not accept it.
  // NaN logits are treated as -inf. Returns an id in [0, logits.size()).
  int32_t sample(std::span<const float> logits);
  // Records a token (prompt or generated) for the repetition penalty.
  void accept(int32_t token);
  // Forgets accepted tokens and re-seeds the RNG: the next draws repeat those after construction.
  void reset();
  const SamplingParams& params() const { return params_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
  };
  void apply_penalty();
  // Makes candidates_[0, n) the n best in best-first order (more may get sorted).
  void sort_prefix(size_t n);
  // Draws at the temperature (best logit `max_logit`) from candidates_ (sorted best first), or,
  // when `whole` (nothing was cut), from the whole vocabulary in id order (id_logits_).
  int32_t draw(double max_logit, bool whole);

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;
  std::vector<Candidate> candidates_;  // reused between calls
  std::vector<float> id_logits_;       // the candidates' logits in id order (no top-k cut)
  size_t sorted_ = 0;                  // candidates_[0, sorted_) are in best-first order
};

}  // namespace luzao
