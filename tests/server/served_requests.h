// Requests to the tiny served model (served_model.h) and their outcomes, shared by the scheduler
// and replica-set tests: engine options, a salted greedy-or-seeded request, reading a stream to
// its end, and the undisturbed texts of a batch of requests on one scheduler.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/scheduler.h"

namespace luzao::testing {

inline EngineOptions served_engine_options(const std::filesystem::path& model,
                                           int max_sequences = 4) {
  EngineOptions o;
  o.model_path = model;
  o.device = "cpu";
  o.threads = 1;
  o.ctx_size = 128;
  o.max_sequences = max_sequences;
  o.max_batch_tokens = 64;
  return o;
}

// A prompt of n tokens (BOS first) that differs with `salt`.
inline std::vector<int32_t> salted_prompt(int n, int salt) {
  std::vector<int32_t> p = {1};
  for (int i = 1; i < n; ++i) p.push_back(3 + (i * 7 + salt * 13) % 290);
  return p;
}

inline GenerationRequest salted_request(int salt, int max_tokens, float temperature = 0) {
  GenerationRequest r;
  r.prompt = salted_prompt(6 + salt % 5, salt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = temperature;
  r.sampling.seed = 1000 + static_cast<uint64_t>(salt);
  return r;
}

struct Outcome {
  std::string text;
  GenerationUpdate last;
};

// Reads a stream to its end (a test failure after 30 s without news).
inline Outcome collect(GenerationStream& stream) {
  Outcome o;
  GenerationUpdate u;
  while (true) {
    if (!stream.wait(u, std::chrono::milliseconds(30000))) {
      ADD_FAILURE() << "no news for 30 s";
      break;
    }
    o.text += u.text;
    if (u.finished) break;
  }
  o.last = u;
  return o;
}

// The undisturbed text of each request: one scheduler of 4 sequences, nothing withdrawn.
inline std::vector<std::string> undisturbed(const EngineOptions& engine,
                                            const std::vector<GenerationRequest>& requests) {
  Engine e(engine);
  Scheduler s(e, SchedulerOptions{.max_sequences = 4});
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (const auto& r : requests) streams.push_back(s.submit(r));
  std::vector<std::string> out;
  for (auto& st : streams) out.push_back(collect(*st).text);
  return out;
}

}  // namespace luzao::testing
