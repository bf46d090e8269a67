// `luzao imatrix -m MODEL -f TEXT -o FILE`: activation statistics for importance-weighted
// quantization. The text is evaluated in chunks exactly as `luzao perplexity` does; the input of
// every weight matrix (the model's named nodes attn_norm, attn_out, ffn_norm, ffn_act) is squared
// and summed per column over every token.
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/perplexity.h"
#include "cli/quantize_imatrix.h"
#include "core/error.h"

namespace luzao::cli {
namespace {

// Weight matrices fed by each observed node ("attn_norm.3" feeds blk.3.attn_q/k/v...).
struct NodeInputs {
  std::string_view node;
  std::vector<std::string_view> weights;
};

const std::vector<NodeInputs>& node_inputs() {
  static const std::vector<NodeInputs> kInputs = {
      {"attn_norm", {"attn_q", "attn_k", "attn_v"}},
      {"attn_out", {"attn_output"}},
      {"ffn_norm", {"ffn_gate", "ffn_up"}},
      {"ffn_act", {"ffn_down"}},
  };
  return kInputs;
}

// Collects the statistics of one node per (node, layer) and fans them out to its weights at the
// end.
class Collector {
 public:
  explicit Collector(Device& device) : device_(device) {}

  void observe(std::string_view name, const TensorView& t) {
    const size_t dot = name.rfind('.');
    if (dot == std::string_view::npos || t.dtype != DType::kF32) return;
    const std::string_view node = name.substr(0, dot);
    for (const NodeInputs& in : node_inputs()) {
      if (in.node != node) continue;
      const size_t bytes = static_cast<size_t>(t.rows) * t.row_stride;
      host_.resize(bytes / sizeof(float) + 1);
      device_.download(*t.buffer, t.offset, host_.data(), bytes);
      packed_.resize(static_cast<size_t>(t.rows * t.cols));
      for (int64_t r = 0; r < t.rows; ++r) {
        const float* row = host_.data() + static_cast<size_t>(r) * (t.row_stride / sizeof(float));
        std::copy_n(row, t.cols, packed_.data() + r * t.cols);
      }
      nodes_.accumulate(std::string(name), packed_.data(), t.rows, t.cols);
      return;
    }
  }

  // The statistics under weight names (blk.N.attn_q.weight, ...).
  Imatrix finish() const {
    Imatrix out;
    for (const auto& [name, entry] : nodes_.entries()) {
      const size_t dot = name.rfind('.');
      const std::string_view node = std::string_view(name).substr(0, dot);
      const std::string layer = name.substr(dot + 1);
      for (const NodeInputs& in : node_inputs()) {
        if (in.node != node) continue;
        for (std::string_view w : in.weights)
          out.set_entry(fmt::format("blk.{}.{}.weight", layer, w), entry);
      }
    }
    return out;
  }

 private:
  Device& device_;
  Imatrix nodes_;
  std::vector<float> host_;
  std::vector<float> packed_;
};

}  // namespace

CommandMain setup_imatrix(CLI::App& cmd) {
  struct Args {
    std::string model;
    std::string file;
    std::string out = "imatrix.gguf";
    std::string device = "cpu";
    int threads = 0;
    int ctx = 512;
    int chunks = -1;
    int batch = 512;
  };
  auto a = std::make_shared<Args>();
  cmd.add_option("-m,--model", a->model, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd.add_option("-f,--file", a->file, "Calibration text")->required()->check(CLI::ExistingFile);
  cmd.add_option("-o,--output", a->out, "Output imatrix (GGUF, as llama-imatrix writes)")
      ->capture_default_str();
  cmd.add_option("-c,--ctx", a->ctx, "Tokens per chunk")
      ->check(CLI::Range(4, 1 << 20))
      ->capture_default_str();
  cmd.add_option("--chunks", a->chunks, "Chunks to evaluate at most (-1: all)")
      ->capture_default_str();
  cmd.add_option("-b,--batch-size", a->batch, "Tokens per forward pass")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("-t,--threads", a->threads, "Worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--device", a->device, "Device: cpu or reference")->capture_default_str();
  return [a]() -> int {
    EngineOptions options;
    options.model_path = a->model;
    options.device = a->device;
    options.threads = a->threads;
    options.ctx_size = a->ctx;
    options.max_batch_tokens = std::min(a->batch, a->ctx);
    options.logger = Logger(
        [](LogLevel, std::string_view line) { fmt::print(stderr, "{}\n", line); }, LogLevel::kWarn);
    Engine engine(options);
    Collector collector(engine.model().device());
    engine.model().set_observer(
        [&collector](std::string_view name, const TensorView& t) { collector.observe(name, t); });
    const std::vector<int32_t> tokens =
        engine.tokenizer().tokenize(read_text_file(a->file), true, false);
    PerplexityConfig config;
    config.ctx = a->ctx;
    config.chunks = a->chunks;
    config.batch = a->batch;
    config.on_chunk = [](int c, int n, double ppl) {
      fmt::print(stderr, "[{}/{}]{:.4f}{}", c + 1, n, ppl, c + 1 == n ? "\n" : ",");
      std::fflush(stderr);
    };
    const PerplexityReport r = run_perplexity(engine, tokens, config);
    engine.model().set_observer({});
    Imatrix m = collector.finish();
    if (m.entries().empty()) {
      fail(ErrorKind::kUnsupported, "{}: the model exposed none of the nodes imatrix needs",
           a->model);
    }
    m.datasets = {a->file};
    m.chunk_count = static_cast<uint32_t>(r.chunks);
    m.chunk_size = static_cast<uint32_t>(a->ctx);
    m.save(a->out);
    fmt::print(stderr, "{}: {} entries from {} chunks of {} tokens (PPL {:.4f})\n", a->out,
               m.entries().size(), r.chunks, a->ctx, r.nll.ppl());
    return 0;
  };
}

}  // namespace luzao::cli
