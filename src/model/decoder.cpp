// The shared decoder: binds llama-style tensor names and runs the batched forward pass.
#include <charconv>
#include <cmath>
#include <memory>
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

// One device's share of the model: layers [first, end) with their weights, a stream and the
// activations they run on. An unsplit model has one stage holding every layer.
struct Stage {
  Device* device = nullptr;
  int32_t first = 0, end = 0;
  std::unique_ptr<WeightStore> weights;
  std::unique_ptr<Stream> stream;
  Activation x, h, q, k, v, attn, gate, up;
};

// The layer number of a "blk.N.*" tensor name, or -1.
int32_t block_of(std::string_view name) {
  if (!name.starts_with("blk.")) return -1;
  int32_t layer = 0;
  const char* first = name.data() + 4;
  const char* end = name.data() + name.size();
  const auto [ptr, ec] = std::from_chars(first, end, layer);
  return ec == std::errc() && ptr != first && ptr != end && *ptr == '.' ? layer : -1;
}

class DecoderModel final : public Model {
 public:
  DecoderModel(std::shared_ptr<const GgufFile> file, Device& device, const LoadOptions& options,
               HParams hparams, DecoderFeatures features)
      : hp_(std::move(hparams)), features_(features) {
    std::vector<SplitPart> parts = options.split;
    if (parts.empty()) parts.push_back({&device, 1.0});
    LUZAO_CHECK(parts.front().device == &device);
    std::vector<double> shares;
    for (const SplitPart& p : parts) shares.push_back(p.weight);
    const std::vector<int32_t> counts = parts.size() == 1 ? std::vector<int32_t>{hp_.n_layer}
                                                          : split_layer_counts(hp_.n_layer, shares);
    const bool tied = file->find_tensor("output.weight") == nullptr;
    int32_t first = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      auto stage = std::make_unique<Stage>();
      stage->device = parts[i].device;
      stage->first = first;
      stage->end = first + counts[i];
      first = stage->end;
      WeightStore::TensorFilter keep;
      if (parts.size() > 1) {  // only this stage's tensors
        const bool is_first = i == 0, is_last = i + 1 == parts.size();
        keep = [=, begin = stage->first, end = stage->end](std::string_view name) {
          const int32_t layer = block_of(name);
          if (layer >= 0) return layer >= begin && layer < end;
          if (name == "token_embd.weight") return is_first || (is_last && tied);
          return is_last && (name == "output_norm.weight" || name == "output.weight");
        };
      }
      stage->weights = std::make_unique<WeightStore>(file, *stage->device, options.allow_map_host,
                                                     std::move(keep));
      stage->stream = stage->device->create_stream();
      for (int32_t l = stage->first; l < stage->end; ++l) stage_of_layer_.push_back(i);
      stages_.push_back(std::move(stage));
    }
    if (file->find_tensor("rope_freqs.weight") != nullptr) {
      fail(ErrorKind::kUnsupported,
           "{}: rope frequency factors (rope_freqs.weight) are not supported yet", file->name());
    }
    const WeightStore& in = *stages_.front()->weights;
    const WeightStore& out = *stages_.back()->weights;
    const int64_t d = hp_.n_embd, q_dim = int64_t{hp_.n_head} * hp_.head_dim, kv = hp_.kv_dim();
    tok_embd_ = in.require("token_embd.weight", {d, hp_.n_vocab});
    output_norm_ = out.require("output_norm.weight", {d});
    output_ = tied ? out.require("token_embd.weight", {d, hp_.n_vocab})
                   : out.require("output.weight", {d, hp_.n_vocab});
    for (int32_t i = 0; i < hp_.n_layer; ++i) {
      const WeightStore& weights = *stages_[stage_of_layer_[static_cast<size_t>(i)]]->weights;
      auto name = [i](const char* what) { return fmt::format("blk.{}.{}.weight", i, what); };
      auto bias = [i](const char* what) { return fmt::format("blk.{}.{}.bias", i, what); };
      DecoderLayer l;
      l.attn_norm = weights.require(name("attn_norm"), {d});
      l.wq = weights.require(name("attn_q"), {d, q_dim});
      l.wk = weights.require(name("attn_k"), {d, kv});
      l.wv = weights.require(name("attn_v"), {d, kv});
      l.wo = weights.require(name("attn_output"), {q_dim, d});
      l.ffn_norm = weights.require(name("ffn_norm"), {d});
      l.w_gate = weights.require(name("ffn_gate"), {d, hp_.n_ff});
      l.w_up = weights.require(name("ffn_up"), {d, hp_.n_ff});
      l.w_down = weights.require(name("ffn_down"), {hp_.n_ff, d});
      if (features_.qkv_bias) {
        l.bq = weights.require(bias("attn_q"), {q_dim});
        l.bk = weights.require(bias("attn_k"), {kv});
        l.bv = weights.require(bias("attn_v"), {kv});
      }
      if (features_.qk_norm) {
        l.q_norm = weights.require(name("attn_q_norm"), {hp_.head_dim});
        l.k_norm = weights.require(name("attn_k_norm"), {hp_.head_dim});
      }
      layers_.push_back(l);
    }
  }

  const HParams& hparams() const override { return hp_; }
  Device& device() override { return *stages_.front()->device; }
  Device& layer_device(int32_t layer) override {
    LUZAO_CHECK(layer >= 0 && layer < hp_.n_layer);
    return *stages_[stage_of_layer_[static_cast<size_t>(layer)]]->device;
  }
  void set_observer(NodeObserver observer) override { observer_ = std::move(observer); }

  void forward(const Batch& batch, const KvView& kv, std::span<float> logits) override {
    const int64_t n = static_cast<int64_t>(batch.tokens.size());
    const int64_t n_out = static_cast<int64_t>(batch.output_rows.size());
    LUZAO_CHECK(n > 0 && kv.layers.size() == layers_.size());
    LUZAO_CHECK(logits.size() == static_cast<size_t>(n_out) * static_cast<size_t>(hp_.n_vocab));
    const int64_t d = hp_.n_embd;

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

    TensorView x;
    Stage* previous = nullptr;
    for (const std::unique_ptr<Stage>& stage : stages_) {
      Stage& st = *stage;
      const TensorView next = st.x.get(*st.device, n, d);
      if (previous == nullptr) {
        st.stream->get_rows(tok_embd_, batch.tokens, next);
        observe(st, "inp_embd", next);
      } else {  // the hidden state crosses to the next device through host memory
        const size_t bytes = static_cast<size_t>(n * d) * sizeof(float);
        host_.resize(static_cast<size_t>(n * d));
        previous->stream->synchronize();
        previous->device->download(*x.buffer, x.offset, host_.data(), bytes);
        st.device->upload(*next.buffer, next.offset, host_.data(), bytes);
      }
      x = next;
      run_layers(st, batch, kv, rope_q, rope_k, ap, x);
      previous = &st;
    }
    // Only the rows whose logits are wanted go through the output projection.
    Stage& last = *stages_.back();
    Stream& s = *last.stream;
    const TensorView xo = xo_.get(*last.device, n_out, d);
    const TensorView out = logits_.get(*last.device, n_out, hp_.n_vocab);
    s.get_rows(x, batch.output_rows, xo);
    s.rms_norm(xo, output_norm_, hp_.rms_eps, xo);
    observe(last, "result_norm", xo);
    s.matmul(xo, output_, out);
    s.synchronize();
    last.device->download(*out.buffer, out.offset, logits.data(), logits.size() * sizeof(float));
  }

 private:
  // The stage's layers over the hidden state `x` (on the stage's device), in place.
  void run_layers(Stage& st, const Batch& batch, const KvView& kv, const RopeParams& rope_q,
                  const RopeParams& rope_k, const AttentionParams& ap, const TensorView& x) {
    const int64_t n = x.rows, d = hp_.n_embd, q_dim = int64_t{hp_.n_head} * hp_.head_dim;
    const int64_t kv_dim = hp_.kv_dim();
    Device& dev = *st.device;
    Stream& s = *st.stream;
    const TensorView h = st.h.get(dev, n, d);
    const TensorView q = st.q.get(dev, n, q_dim);
    const TensorView k = st.k.get(dev, n, kv_dim);
    const TensorView v = st.v.get(dev, n, kv_dim);
    const TensorView attn = st.attn.get(dev, n, q_dim);
    const TensorView gate = st.gate.get(dev, n, hp_.n_ff);
    const TensorView up = st.up.get(dev, n, hp_.n_ff);
    for (int32_t il = st.first; il < st.end; ++il) {
      const DecoderLayer& l = layers_[static_cast<size_t>(il)];
      const KvLayerView& cache = kv.layers[static_cast<size_t>(il)];
      s.rms_norm(x, l.attn_norm, hp_.rms_eps, h);
      observe(st, "attn_norm", h, il);
      const TensorView qkv_w[] = {l.wq, l.wk, l.wv}, qkv[] = {q, k, v};
      s.matmul_shared_input(h, qkv_w, qkv);
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
      observe(st, "q_rope", q, il);
      observe(st, "k_rope", k, il);
      s.set_rows(k, batch.kv_slots, cache.k);
      s.set_rows(v, batch.kv_slots, cache.v);
      s.attention(q, cache.k, cache.v, ap, attn);
      observe(st, "attn_out", attn, il);
      s.matmul(attn, l.wo, h);
      s.add(x, h, x);
      observe(st, "attn_residual", x, il);
      s.rms_norm(x, l.ffn_norm, hp_.rms_eps, h);
      observe(st, "ffn_norm", h, il);
      const TensorView ffn_w[] = {l.w_gate, l.w_up}, ffn[] = {gate, up};
      s.matmul_shared_input(h, ffn_w, ffn);
      s.swiglu(gate, up, gate);
      observe(st, "ffn_act", gate, il);
      s.matmul(gate, l.w_down, h);
      s.add(x, h, x);
      observe(st, "layer_out", x, il);
    }
  }

  void observe(Stage& st, std::string_view name, const TensorView& t, int layer = -1) {
    if (!observer_) return;
    st.stream->synchronize();
    observer_(layer < 0 ? std::string(name) : fmt::format("{}.{}", name, layer), t);
  }

  TensorView per_head(const TensorView& t, int32_t heads) const {
    TensorView v = t;
    v.rows = t.rows * heads;
    v.cols = hp_.head_dim;
    v.row_stride = static_cast<size_t>(hp_.head_dim) * sizeof(float);
    return v;
  }

  HParams hp_;
  DecoderFeatures features_;
  std::vector<std::unique_ptr<Stage>> stages_;
  std::vector<size_t> stage_of_layer_;
  TensorView tok_embd_, output_norm_, output_;
  std::vector<DecoderLayer> layers_;
  Activation xo_, logits_;   // on the last stage's device
  std::vector<float> host_;  // the hidden state between two stages
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
