// The Llama architecture (Llama 2/3, SmolLM2, TinyLlama...): RMSNorm, normal-layout RoPE, GQA,
// SwiGLU feed-forward, tied or separate output projection.
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "model/hparams.h"
#include "model/model.h"
#include "model/weights.h"

namespace luzao {
namespace {

struct LlamaLayer {
  TensorView attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
};

class LlamaModel final : public Model {
 public:
  LlamaModel(std::shared_ptr<const GgufFile> file, Device& device, const LoadOptions& options)
      : device_(device),
        hp_(read_llama_like_hparams(*file, "llama")),
        weights_(file, device, options.allow_map_host),
        stream_(device.create_stream()) {
    if (weights_.has("rope_freqs.weight")) {
      fail(ErrorKind::kUnsupported, "{}: rope frequency factors (rope_freqs.weight) are not supported yet",
           file->name());
    }
    const int64_t d = hp_.n_embd, q_dim = int64_t{hp_.n_head} * hp_.head_dim, kv = hp_.kv_dim();
    tok_embd_ = weights_.require("token_embd.weight", {d, hp_.n_vocab});
    output_norm_ = weights_.require("output_norm.weight", {d});
    output_ = weights_.find("output.weight", {d, hp_.n_vocab}).value_or(tok_embd_);
    for (int32_t i = 0; i < hp_.n_layer; ++i) {
      auto name = [i](const char* what) { return fmt::format("blk.{}.{}.weight", i, what); };
      LlamaLayer l;
      l.attn_norm = weights_.require(name("attn_norm"), {d});
      l.wq = weights_.require(name("attn_q"), {d, q_dim});
      l.wk = weights_.require(name("attn_k"), {d, kv});
      l.wv = weights_.require(name("attn_v"), {d, kv});
      l.wo = weights_.require(name("attn_output"), {q_dim, d});
      l.ffn_norm = weights_.require(name("ffn_norm"), {d});
      l.w_gate = weights_.require(name("ffn_gate"), {d, hp_.n_ff});
      l.w_up = weights_.require(name("ffn_up"), {d, hp_.n_ff});
      l.w_down = weights_.require(name("ffn_down"), {hp_.n_ff, d});
      layers_.push_back(l);
    }
  }

  const HParams& hparams() const override { return hp_; }
  Device& device() override { return device_; }
  void set_observer(NodeObserver observer) override { observer_ = std::move(observer); }

  void forward(const Batch& batch, const KvView& kv, std::span<float> logits) override {
    const int64_t n = static_cast<int64_t>(batch.tokens.size());
    const int64_t n_out = static_cast<int64_t>(batch.output_rows.size());
    LUZAO_CHECK(n > 0 && kv.layers.size() == layers_.size());
    LUZAO_CHECK(logits.size() == static_cast<size_t>(n_out) * static_cast<size_t>(hp_.n_vocab));
    const int64_t d = hp_.n_embd, q_dim = int64_t{hp_.n_head} * hp_.head_dim, kv_dim = hp_.kv_dim();
    Stream& s = *stream_;

    const TensorView x = x_.get(device_, n, d);
    const TensorView h = h_.get(device_, n, d);
    const TensorView q = q_.get(device_, n, q_dim);
    const TensorView k = k_.get(device_, n, kv_dim);
    const TensorView v = v_.get(device_, n, kv_dim);
    const TensorView attn = attn_.get(device_, n, q_dim);
    const TensorView gate = gate_.get(device_, n, hp_.n_ff);
    const TensorView up = up_.get(device_, n, hp_.n_ff);

    RopeParams rope_q{hp_.n_head, hp_.head_dim, hp_.rope_dim, hp_.rope_freq_base, hp_.rope_neox};
    RopeParams rope_k = rope_q;
    rope_k.n_heads = hp_.n_head_kv;
    AttentionParams ap;
    ap.n_heads = hp_.n_head;
    ap.n_kv_heads = hp_.n_head_kv;
    ap.head_dim = hp_.head_dim;
    ap.page_size = kv.page_size;
    ap.max_blocks = batch.max_blocks;
    ap.scale = 1.0f / std::sqrt(static_cast<float>(hp_.head_dim));
    ap.token_seq = batch.seq_rows;
    ap.token_pos = batch.positions;
    ap.block_table = batch.block_table;

    s.get_rows(tok_embd_, batch.tokens, x);
    observe("inp_embd", x);
    for (size_t il = 0; il < layers_.size(); ++il) {
      const LlamaLayer& l = layers_[il];
      const int layer = static_cast<int>(il);
      s.rms_norm(x, l.attn_norm, hp_.rms_eps, h);
      observe("attn_norm", h, layer);
      s.matmul(h, l.wq, q);
      s.matmul(h, l.wk, k);
      s.matmul(h, l.wv, v);
      s.rope(q, batch.positions, rope_q);
      s.rope(k, batch.positions, rope_k);
      observe("q_rope", q, layer);
      observe("k_rope", k, layer);
      s.set_rows(k, batch.kv_slots, kv.layers[il].k);
      s.set_rows(v, batch.kv_slots, kv.layers[il].v);
      s.attention(q, kv.layers[il].k, kv.layers[il].v, ap, attn);
      observe("attn_out", attn, layer);
      s.matmul(attn, l.wo, h);
      s.add(x, h, x);
      observe("attn_residual", x, layer);
      s.rms_norm(x, l.ffn_norm, hp_.rms_eps, h);
      observe("ffn_norm", h, layer);
      s.matmul(h, l.w_gate, gate);
      s.matmul(h, l.w_up, up);
      s.swiglu(gate, up, gate);
      s.matmul(gate, l.w_down, h);
      s.add(x, h, x);
      observe("layer_out", x, layer);
    }
    // Only the rows whose logits are wanted go through the output projection.
    const TensorView xo = xo_.get(device_, n_out, d);
    const TensorView out = logits_.get(device_, n_out, hp_.n_vocab);
    s.get_rows(x, batch.output_rows, xo);
    s.rms_norm(xo, output_norm_, hp_.rms_eps, xo);
    observe("result_norm", xo);
    s.matmul(xo, output_, out);
    s.synchronize();
    device_.download(*out.buffer, out.offset, logits.data(), logits.size() * sizeof(float));
  }

 private:
  void observe(std::string_view name, const TensorView& t, int layer = -1) {
    if (!observer_) return;
    stream_->synchronize();
    observer_(layer < 0 ? std::string(name) : fmt::format("{}.{}", name, layer), t);
  }

  Device& device_;
  HParams hp_;
  WeightStore weights_;
  std::unique_ptr<Stream> stream_;
  TensorView tok_embd_, output_norm_, output_;
  std::vector<LlamaLayer> layers_;
  Activation x_, h_, q_, k_, v_, attn_, gate_, up_, xo_, logits_;
  NodeObserver observer_;
};

}  // namespace

std::unique_ptr<Model> load_llama(std::shared_ptr<const GgufFile> file, Device& device,
                                  const LoadOptions& options) {
  return std::make_unique<LlamaModel>(std::move(file), device, options);
}

}  // namespace luzao
