// The model layer: hyper-parameters, the backend-neutral forward pass of one architecture family,
// and the registry that maps `general.architecture` to it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "format/gguf.h"

namespace luzao {

struct HParams {
  std::string architecture;
  int32_t n_layer = 0;
  int32_t n_embd = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim = 0;
  int32_t n_ff = 0;
  int32_t n_vocab = 0;
  int32_t n_ctx_train = 0;
  int32_t rope_dim = 0;
  float rope_freq_base = 10000.0f;
  bool rope_neox = false;
  float rms_eps = 1e-5f;
  int32_t kv_dim() const { return n_head_kv * head_dim; }
};

// The KV memory of every layer, owned by the runtime (paged: see AttentionParams).
struct KvLayerView {
  TensorView k;
  TensorView v;
};
struct KvView {
  std::span<const KvLayerView> layers;
  int32_t page_size = 0;
};

// One forward step over tokens of one or more sequences. All spans have one entry per token,
// except block_table ([n_seqs, max_blocks]) and output_rows.
struct Batch {
  std::span<const int32_t> tokens;
  std::span<const int32_t> positions;
  std::span<const int32_t> seq_rows;  // row of block_table that each token belongs to
  std::span<const int32_t> kv_slots;  // KV pool row each token's K and V are written to
  std::span<const int32_t> block_table;
  int32_t max_blocks = 0;
  std::span<const int32_t> output_rows;  // batch rows whose logits are returned, in order
};

// Called after each named node (e.g. "attn_norm.3") when set, with the stream synchronised:
// lets a debug tool dump any layer and diff it against a reference.
using NodeObserver = std::function<void(std::string_view name, const TensorView& value)>;

// A loaded model bound to one device. Not thread-safe: one forward at a time.
class Model {
 public:
  virtual ~Model() = default;
  virtual const HParams& hparams() const = 0;
  // Runs `batch` and writes output_rows.size() * n_vocab logits (row-major) into `logits`.
  virtual void forward(const Batch& batch, const KvView& kv, std::span<float> logits) = 0;
  virtual void set_observer(NodeObserver observer) = 0;
  // The device of the token embedding (the only device unless the model is split).
  virtual Device& device() = 0;
  // The device that runs layer `layer` and must hold its KV memory (device() unless split).
  virtual Device& layer_device(int32_t layer) {
    (void)layer;
    return device();
  }
};

// One device of a layer split (`--split`): it runs a contiguous range of layers, sized by
// `weight` relative to the other parts' weights.
struct SplitPart {
  Device* device = nullptr;  // not owned; outlives the model
  double weight = 1.0;       // > 0
};

struct LoadOptions {
  // Weights are wrapped zero-copy when the device can address host memory, else uploaded.
  bool allow_map_host = true;
  // Empty: the whole model on the device given to load(). Otherwise the layers are placed on
  // these devices in order (pipeline split), the device given to load() must be split[0].device,
  // the token embedding lives on the first part and the output norm and head on the last; each
  // part holds only the weights it runs, and the hidden state crosses each boundary through the
  // host (download from one device, upload to the next).
  std::vector<SplitPart> split;
};

// Layers per part when `n_layer` layers are split by `weights`: contiguous ranges in order, each
// part getting round(cumulative share) boundaries but at least one layer. Throws
// Error(kInvalidArgument) when there are more parts than layers or a weight is not positive.
std::vector<int32_t> split_layer_counts(int32_t n_layer, std::span<const double> weights);

// An architecture family: reads its hyper-parameters and binds its tensors (throwing
// Error(kBadFile) naming the key or tensor at fault), producing a ready Model.
struct ArchitectureEntry {
  std::string_view name;  // general.architecture
  std::unique_ptr<Model> (*load)(std::shared_ptr<const GgufFile> file, Device& device,
                                 const LoadOptions& options);
};

std::span<const ArchitectureEntry> architectures();
// Throws Error(kUnsupported) naming the architecture and listing the supported ones.
const ArchitectureEntry& find_architecture(std::string_view name);
std::unique_ptr<Model> load_model(std::shared_ptr<const GgufFile> file, Device& device,
                                  const LoadOptions& options = {});

}  // namespace luzao
