// The backend contract: device (what it is, memory), buffer (bytes on the device) and stream (ops).
// Every backend, in-tree or plugin, implements these three interfaces and nothing else.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "tensor/dtype.h"

namespace luzao {

// Bytes owned by one device. Thread-compatible: callers serialise access through a stream.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual size_t size() const = 0;
  // Host-visible memory (cpu backends) or nullptr. Never required by callers of the contract.
  virtual void* host_data() { return nullptr; }
};

// A 2-D row-major view into a buffer: `rows` rows of `cols` elements of `dtype`, rows
// `row_stride` bytes apart. Non-owning; the buffer outlives every view of it.
struct TensorView {
  Buffer* buffer = nullptr;
  size_t offset = 0;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_stride = 0;

  // Rows [first, first + count) of this view.
  TensorView slice_rows(int64_t first, int64_t count) const {
    TensorView v = *this;
    v.offset += static_cast<size_t>(first) * row_stride;
    v.rows = count;
    return v;
  }
};

// The fixed, versioned op set. Activations are F32 unless a parameter says otherwise.
enum class OpKind {
  kGetRows,    // out[i] = dequant(table[ids[i]])
  kRmsNorm,    // out = x / sqrt(mean(x^2) + eps) * weight
  kMatMul,     // out[n, m] = x[n, k] * w[m, k]^T; w in any supported dtype (kept quantized)
  kRope,       // rotary position embedding in place, normal or neox layout
  kAttention,  // causal attention of new tokens over a paged KV cache, with GQA
  kSwiGlu,     // out = silu(gate) * up
  kAdd,        // out = a + b, b broadcast when it has one row
  kMul,        // out = a * b, b broadcast when it has one row
  kScale,      // out = x * s
  kSoftmax,    // row-wise softmax in place
  kSetRows,    // dst[row_ids[i]] = convert(src[i]): KV-cache writes and dtype conversion
  kCount,
};
std::string_view op_name(OpKind op) noexcept;

constexpr uint32_t kOpSetVersion = 1;

struct RopeParams {
  int32_t n_heads = 0;
  int32_t head_dim = 0;
  int32_t rot_dim = 0;  // leading dims of each head that rotate (== head_dim for llama)
  float freq_base = 10000.0f;
  bool neox = false;  // neox: pairs (i, i + rot_dim/2); normal: pairs (2i, 2i+1)
};

// Paged KV cache of one layer: k_pool/v_pool have n_pages * page_size rows of
// n_kv_heads * head_dim columns (F32 or F16). Token t of sequence s lives in row
// block_table[s * max_blocks + t / page_size] * page_size + t % page_size.
struct AttentionParams {
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t page_size = 0;
  int32_t max_blocks = 0;                // columns of block_table
  float scale = 1.0f;                    // applied to q.k before the softmax
  std::span<const int32_t> token_seq;    // per query row: which sequence (row of block_table)
  std::span<const int32_t> token_pos;    // per query row: its position; attends to 0..pos
  std::span<const int32_t> block_table;  // [n_seqs, max_blocks] page ids
};

struct DeviceInfo {
  std::string name;     // "cpu", "reference", "opencl:0", ...
  std::string backend;  // backend family
  std::string vendor;
  std::string description;
  uint64_t memory_bytes = 0;
};

// Runs ops in order on one device. For the element-wise ops, rms_norm and rope, `out` may be the
// very same view as an input (in-place); partial overlaps are not allowed. Host-side index spans
// (ids, positions, block tables) are read before the call returns; tensors must stay valid until
// synchronize() returns.
class Stream {
 public:
  virtual ~Stream() = default;
  virtual void get_rows(const TensorView& table, std::span<const int32_t> ids,
                        const TensorView& out) = 0;
  virtual void rms_norm(const TensorView& x, const TensorView& weight, float eps,
                        const TensorView& out) = 0;
  virtual void matmul(const TensorView& x, const TensorView& w, const TensorView& out) = 0;
  // out[i] = x * w[i]^T for several weights sharing one input (q, k and v; gate and up), with
  // the same results as separate matmul calls. A device may run them as one op (the cpu backend
  // converts x once and spreads the rows of all of them over its threads at once); this default
  // issues them one by one.
  virtual void matmul_shared_input(const TensorView& x, std::span<const TensorView> w,
                                   std::span<const TensorView> out);
  virtual void rope(const TensorView& x, std::span<const int32_t> positions,
                    const RopeParams& p) = 0;
  virtual void attention(const TensorView& q, const TensorView& k_pool, const TensorView& v_pool,
                         const AttentionParams& p, const TensorView& out) = 0;
  virtual void swiglu(const TensorView& gate, const TensorView& up, const TensorView& out) = 0;
  virtual void add(const TensorView& a, const TensorView& b, const TensorView& out) = 0;
  virtual void mul(const TensorView& a, const TensorView& b, const TensorView& out) = 0;
  virtual void scale(const TensorView& x, float s, const TensorView& out) = 0;
  virtual void softmax(const TensorView& x) = 0;
  virtual void set_rows(const TensorView& src, std::span<const int32_t> row_ids,
                        const TensorView& dst) = 0;
  // Blocks until every op issued so far has finished.
  virtual void synchronize() = 0;
};

class Device {
 public:
  virtual ~Device() = default;
  virtual const DeviceInfo& info() const = 0;
  // Whether `op` runs here with weights/tables/pools of dtype `dtype` (F32 for plain ops).
  virtual bool supports(OpKind op, DType dtype) const = 0;
  // Throws Error(kOutOfMemory) when the device cannot hold `bytes`.
  virtual std::unique_ptr<Buffer> alloc(size_t bytes) = 0;
  // Zero-copy buffer over host memory that outlives it (mmap'd weights), or nullptr when the
  // device cannot address host memory; callers then alloc() and upload().
  virtual std::unique_ptr<Buffer> map_host(const void* data, size_t bytes) {
    (void)data;
    (void)bytes;
    return nullptr;
  }
  virtual void upload(Buffer& dst, size_t offset, const void* src, size_t bytes) = 0;
  virtual void download(const Buffer& src, size_t offset, void* dst, size_t bytes) = 0;
  virtual void copy(const Buffer& src, size_t src_offset, Buffer& dst, size_t dst_offset,
                    size_t bytes) = 0;
  virtual std::unique_ptr<Stream> create_stream() = 0;
};

}  // namespace luzao
