// The shared decoder: binds llama-style tensor names and runs the batched forward pass.
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "model/decoder.h"

namespace luzao {
namespace {

struct DecoderLayer {
  TensorView attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
  TensorView bq, bk, bv;      // with qkv_bias
  TensorView q_norm, k_norm;  // with qk_norm
};

class DecoderModel final : public Model {
 public:
  DecoderModel(std::shared_ptr<const GgufFile> file, Device& device, const LoadOptions& options,
               HParams hparams, DecoderFeatures features)
      : device_(device),
        hp_(std::move(hparams)),
        features_(features),
        weights_(file, device, options.allow_map_host),
        stream_(device.create_stream()) {
    if (weights_.has("rope_freqs.weight")) {
      fail(ErrorKind::kUnsupported,
           "{}: rope frequency factors (rope_freqs.weight) are not supported yet", file->name());
    }
    const int64_t d = hp_.n_embd, q_dim = int64_t{hp_.n_head} * hp_.head_dim, kv = hp_.kv_dim();
    tok_embd_ = weights_.require("token_embd.weight", {d, hp_.n_vocab});
    output_norm_ = weights_.require("output_norm.weight", {d});
    output_ = weights_.find("output.weight", {d, hp_.n_vocab}).value_or(tok_embd_);
    for (int32_t i = 0; i < hp_.n_layer; ++i) {
      auto name = [i](const char* what) { return fmt::format("blk.{}.{}.weight", i, what); };
      auto bias = [i](const char* what) { return fmt::format("blk.{}.{}.bias", i, what); };
      DecoderLayer l;
      l.attn_norm = weights_.require(name("attn_norm"), {d});
      l.wq = weights_.require(name("attn_q"), {d, q_dim});
      l.wk = weights_.require(name("attn_k"), {d, kv});
      l.wv = weights_.require(name("attn_v"), {d, kv});
      l.wo = weights_.require(name("attn_output"), {q_dim, d});
      l.ffn_norm = weights_.require(name("ffn_norm"), {d});
      l.w_gate = weights_.require(name("ffn_gate"), {d, hp_.n_ff});
      l.w_up = weights_.require(name("ffn_up"), {d, hp_.n_ff});
      l.w_down = weights_.require(name("ffn_down"), {hp_.n_ff, d});
      if (features_.qkv_bias) {
        l.bq = weights_.require(bias("attn_q"), {q_dim});
        l.bk = weights_.require(bias("attn_k"), {kv});
        l.bv = weights_.require(bias("attn_v"), {kv});
      }
      if (features_.qk_norm) {
        l.q_norm = weights_.require(name("attn_q_norm"), {hp_.head_dim});
        l.k_norm = weights_.require(name("attn_k_norm"), {hp_.head_dim});
      }
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
      const DecoderLayer& l = layers_[il];
      const int layer = static_cast<int>(il);
      s.rms_norm(x, l.attn_norm, hp_.rms_eps, h);
      observe("attn_norm", h, layer);
      s.matmul(h, l.wq, q);
      s.matmul(h, l.wk, k);
      s.matmul(h, l.wv, v);
      if (features_.qkv_bias) {
        s.add(q, l.bq, q);
        s.add(k, l.bk, k);
        s.add(v, l.bv, v);
      }
      if (features_.qk_norm) {  // each head's vector is one row of head_dim values
        const TensorView qh = per_head(q, hp_.n_head), kh = per_head(k, hp_.n_head_kv);
        s.rms_norm(qh, l.q_norm, hp_.rms_eps, qh);
        s.rms_norm(kh, l.k_norm, hp_.rms_eps, kh);
      }
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
      observe("ffn_act", gate, layer);
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

  TensorView per_head(const TensorView& t, int32_t heads) const {
    TensorView v = t;
    v.rows = t.rows * heads;
    v.cols = hp_.head_dim;
    v.row_stride = static_cast<size_t>(hp_.head_dim) * sizeof(float);
    return v;
  }

  Device& device_;
  HParams hp_;
  DecoderFeatures features_;
  WeightStore weights_;
  std::unique_ptr<Stream> stream_;
  TensorView tok_embd_, output_norm_, output_;
  std::vector<DecoderLayer> layers_;
  Activation x_, h_, q_, k_, v_, attn_, gate_, up_, xo_, logits_;
  NodeObserver observer_;
};

}  // namespace

std::unique_ptr<Model> make_decoder_model(std::shared_ptr<const GgufFile> file, Device& device,
                                          const LoadOptions& options, HParams hparams,
                                          DecoderFeatures features) {
  return std::make_unique<DecoderModel>(std::move(file), device, options, std::move(hparams),
                                        features);
}

}  // namespace luzao
