// The CUDA device: buffers from cudaMalloc, one cudaStream_t per luzao stream, every op validated
// on the host (view_checks.h) before its kernel is launched (cuda_kernels.h).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <unordered_set>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/plugin/view_checks.h"
#include "core/error.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

void cuda_check(cudaError_t err, std::string_view what) {
  if (err == cudaSuccess) return;
  const ErrorKind kind =
      err == cudaErrorMemoryAllocation ? ErrorKind::kOutOfMemory : ErrorKind::kIo;
  fail(kind, "cuda: {} failed: {} ({})", what, cudaGetErrorName(err), cudaGetErrorString(err));
}

// Makes `device` current on this thread: CUDA runtime state is per thread.
void use(int device) {
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
}

cuda::ActFormat activation_format(DType w) {
  switch (dot_activation(w)) {
    case DotActivation::kQ8_0:
      return cuda::kActQ8_0;
    case DotActivation::kQ8_1:
      return cuda::kActQ8_1;
    case DotActivation::kQ8_K:
      return cuda::kActQ8_K;
    case DotActivation::kFloat:
      break;
  }
  return w == DType::kF16 ? cuda::kActF16 : w == DType::kBF16 ? cuda::kActBf16 : cuda::kActNone;
}

bool can_store(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kQ4_0 ||
         t == DType::kQ4_1 || t == DType::kQ5_0 || t == DType::kQ5_1 || t == DType::kQ8_0 ||
         t == DType::kQ8_K;
}

// What buffers and streams share with their device: its ordinal.
struct Gpu {
  int ordinal = 0;
};

class CudaBuffer final : public Buffer {
 public:
  CudaBuffer(std::shared_ptr<const Gpu> gpu, size_t size) : gpu_(std::move(gpu)), size_(size) {
    use(gpu_->ordinal);
    cuda_check(cudaMalloc(&data_, std::max<size_t>(size, 4)),
               fmt::format("cudaMalloc of {} bytes", size));
    cuda_check(cudaMemset(data_, 0, std::max<size_t>(size, 4)), "cudaMemset");
  }
  ~CudaBuffer() override {
    if (cudaSetDevice(gpu_->ordinal) == cudaSuccess) cudaFree(data_);
  }
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;
  size_t size() const override { return size_; }
  const Gpu* owner() const { return gpu_.get(); }
  uint8_t* data() const { return static_cast<uint8_t*>(data_); }

 private:
  std::shared_ptr<const Gpu> gpu_;
  void* data_ = nullptr;
  size_t size_;
};

uint8_t* own_data(const Gpu& gpu, const Buffer* b, std::string_view what) {
  const auto* cb = dynamic_cast<const CudaBuffer*>(b);
  if (cb == nullptr || cb->owner() != &gpu) {
    fail(ErrorKind::kInvalidArgument, "cuda: {}: the buffer belongs to another device", what);
  }
  return cb->data();
}

void check_range(const Buffer& b, size_t offset, size_t bytes, std::string_view what) {
  if (offset > b.size() || bytes > b.size() - offset) {
    fail(ErrorKind::kInvalidArgument, "cuda: {}: range [{}, {}+{}) lies outside the {}-byte buffer",
         what, offset, offset, bytes, b.size());
  }
}

class CudaStream final : public Stream {
 public:
  CudaStream(std::shared_ptr<const Gpu> gpu, const Device& device)
      : gpu_(std::move(gpu)), device_(device) {
    use(gpu_->ordinal);
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  ~CudaStream() override {
    if (cudaSetDevice(gpu_->ordinal) != cudaSuccess) return;
    cudaStreamSynchronize(stream_);
    cudaFree(indices_);
    cudaFree(scratch_);
    cudaStreamDestroy(stream_);
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;

  void get_rows(const TensorView& table, std::span<const int32_t> ids,
                const TensorView& out) override {
    validate_get_rows(table, ids, out);
    require_support(device_, OpKind::kGetRows, table.dtype);
    use(gpu_->ordinal);
    const int32_t* idx = stage({ids})[0];
    done(cuda::launch_get_rows(static_cast<int>(table.dtype), view(table, "get_rows"), idx,
                               static_cast<int>(ids.size()), view(out, "get_rows"),
                               static_cast<int>(table.cols), stream_),
         "get_rows");
  }

  void rms_norm(const TensorView& x, const TensorView& weight, float eps,
                const TensorView& out) override {
    validate_rms_norm(x, weight, eps, out);
    use(gpu_->ordinal);
    const auto* w = reinterpret_cast<const float*>(view(weight, "rms_norm").data);
    done(cuda::launch_rms_norm(view(x, "rms_norm"), w, view(out, "rms_norm"),
                               static_cast<int>(x.rows), static_cast<int>(x.cols), eps, stream_),
         "rms_norm");
  }

  void matmul(const TensorView& x, const TensorView& w, const TensorView& out) override {
    validate_matmul(x, w, out);
    require_support(device_, OpKind::kMatMul, w.dtype);
    use(gpu_->ordinal);
    const int n = static_cast<int>(x.rows), m = static_cast<int>(w.rows),
              k = static_cast<int>(x.cols);
    cuda::View xv = view(x, "matmul");
    const cuda::ActFormat act = activation_format(w.dtype);
    float* sums = nullptr;
    if (act != cuda::kActNone && n > 0 && k > 0) {
      // One block: the rounded activations, then (Q8_1) the block sums.
      const size_t values = static_cast<size_t>(n) * static_cast<size_t>(k);
      const size_t blocks = static_cast<size_t>(n) * static_cast<size_t>(k / 32);
      grow(&scratch_, &scratch_size_, (values + blocks) * sizeof(float));
      auto* y = static_cast<float*>(scratch_);
      if (act == cuda::kActQ8_1) sums = y + values;
      done(cuda::launch_round_activations(act, xv, y, y + values, n, k, stream_),
           "matmul (activations)");
      xv = cuda::View{reinterpret_cast<uint8_t*>(y), static_cast<uint64_t>(k) * sizeof(float)};
    }
    done(cuda::launch_matmul(static_cast<int>(w.dtype), view(w, "matmul"), xv, sums,
                             view(out, "matmul"), n, m, k, stream_),
         "matmul");
  }

  void rope(const TensorView& x, std::span<const int32_t> positions, const RopeParams& p) override {
    validate_rope(x, positions, p);
    use(gpu_->ordinal);
    const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.rot_dim));
    const int32_t* pos = stage({positions})[0];
    done(cuda::launch_rope(view(x, "rope"), pos, static_cast<int>(x.rows), p.n_heads, p.head_dim,
                           p.rot_dim, p.neox ? 1 : 0, theta_scale, stream_),
         "rope");
  }

  void attention(const TensorView& q, const TensorView& k_pool, const TensorView& v_pool,
                 const AttentionParams& p, const TensorView& out) override {
    validate_attention(q, k_pool, v_pool, p, out);
    require_support(device_, OpKind::kAttention, k_pool.dtype);
    require_support(device_, OpKind::kAttention, v_pool.dtype);
    if (p.head_dim > cuda::kMaxHeadDim) {
      fail(ErrorKind::kUnsupported, "{}: attention with head_dim {} (at most {})",
           device_.info().name, p.head_dim, cuda::kMaxHeadDim);
    }
    use(gpu_->ordinal);
    const auto idx = stage({p.token_seq, p.token_pos, p.block_table});
    const cuda::AttentionDims d{p.n_heads,   p.n_kv_heads, p.head_dim,
                                p.page_size, p.max_blocks, p.scale};
    done(cuda::launch_attention(view(q, "attention"), view(k_pool, "attention"),
                                k_pool.dtype == DType::kF16, view(v_pool, "attention"),
                                v_pool.dtype == DType::kF16, view(out, "attention"), idx[0], idx[1],
                                idx[2], static_cast<int>(q.rows), d, stream_),
         "attention");
  }

  void swiglu(const TensorView& gate, const TensorView& up, const TensorView& out) override {
    validate_swiglu(gate, up, out);
    elementwise(cuda::kOpSwiGlu, gate, up, out, 0.0f, "swiglu");
  }
  void add(const TensorView& a, const TensorView& b, const TensorView& out) override {
    validate_binary("add", a, b, out);
    elementwise(cuda::kOpAdd, a, b, out, 0.0f, "add");
  }
  void mul(const TensorView& a, const TensorView& b, const TensorView& out) override {
    validate_binary("mul", a, b, out);
    elementwise(cuda::kOpMul, a, b, out, 0.0f, "mul");
  }
  void scale(const TensorView& x, float s, const TensorView& out) override {
    validate_scale(x, out);
    elementwise(cuda::kOpScale, x, x, out, s, "scale");
  }

  void softmax(const TensorView& x) override {
    validate_softmax(x);
    use(gpu_->ordinal);
    done(cuda::launch_softmax(view(x, "softmax"), static_cast<int>(x.rows),
                              static_cast<int>(x.cols), stream_),
         "softmax");
  }

  void set_rows(const TensorView& src, std::span<const int32_t> row_ids,
                const TensorView& dst) override {
    validate_set_rows(src, row_ids, dst);
    require_support(device_, OpKind::kSetRows, dst.dtype);
    use(gpu_->ordinal);
    std::vector<int32_t> src_rows, dst_rows;  // the last write to a row wins
    std::unordered_set<int32_t> seen;
    for (size_t i = row_ids.size(); i-- > 0;) {
      if (seen.insert(row_ids[i]).second) {
        src_rows.push_back(static_cast<int32_t>(i));
        dst_rows.push_back(row_ids[i]);
      }
    }
    const auto idx = stage({src_rows, dst_rows});
    done(cuda::launch_set_rows(static_cast<int>(dst.dtype), view(src, "set_rows"), idx[0], idx[1],
                               static_cast<int>(src_rows.size()), view(dst, "set_rows"),
                               static_cast<int>(src.cols), stream_),
         "set_rows");
  }

  void synchronize() override {
    use(gpu_->ordinal);
    cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

 private:
  cuda::View view(const TensorView& v, std::string_view op) const {
    return cuda::View{own_data(*gpu_, v.buffer, op) + v.offset, v.row_stride};
  }

  void elementwise(int op, const TensorView& a, const TensorView& b, const TensorView& out, float s,
                   std::string_view name) {
    use(gpu_->ordinal);
    done(cuda::launch_elementwise(op, view(a, name), view(b, name), static_cast<int>(b.rows),
                                  view(out, name), static_cast<int>(a.rows),
                                  static_cast<int>(a.cols), s, stream_),
         name);
  }

  static void done(cudaError_t err, std::string_view op) { cuda_check(err, op); }

  // Device memory of at least `bytes`; the old block is freed (cudaFree waits for the kernels
  // that may still read it).
  static void grow(void** p, size_t* size, size_t bytes) {
    if (bytes <= *size) return;
    cuda_check(cudaFree(*p), "cudaFree");
    *p = nullptr;
    *size = 0;
    cuda_check(cudaMalloc(p, bytes), "cudaMalloc (stream scratch)");
    *size = bytes;
  }

  // Copies host index arrays into one device block, queued on the stream (pageable sources are
  // staged before cudaMemcpyAsync returns, so the caller's memory may go right after). Kernels
  // queued earlier finish reading the block before the copy overwrites it: the stream orders
  // them.
  std::vector<const int32_t*> stage(std::initializer_list<std::span<const int32_t>> arrays) {
    host_.clear();
    std::vector<size_t> starts;
    for (const auto& a : arrays) {
      starts.push_back(host_.size());
      host_.insert(host_.end(), a.begin(), a.end());
    }
    const size_t bytes = std::max<size_t>(host_.size(), 1) * sizeof(int32_t);
    grow(&indices_, &indices_size_, bytes);
    if (!host_.empty()) {
      cuda_check(cudaMemcpyAsync(indices_, host_.data(), host_.size() * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, stream_),
                 "cudaMemcpyAsync (indices)");
    }
    std::vector<const int32_t*> out;
    for (size_t s : starts) out.push_back(static_cast<const int32_t*>(indices_) + s);
    return out;
  }

  std::shared_ptr<const Gpu> gpu_;
  const Device& device_;
  cudaStream_t stream_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_size_ = 0;
  void* indices_ = nullptr;
  size_t indices_size_ = 0;
  std::vector<int32_t> host_;
};

class CudaDevice final : public Device {
 public:
  explicit CudaDevice(int ordinal) : gpu_(std::make_shared<Gpu>(Gpu{ordinal})) {
    cudaDeviceProp prop{};
    cuda_check(cudaGetDeviceProperties(&prop, ordinal), "cudaGetDeviceProperties");
    info_.name = fmt::format("cuda:{}", ordinal);
    info_.backend = "cuda";
    info_.vendor = "NVIDIA";
    info_.description = fmt::format("{} (compute {}.{}, {} SMs)", prop.name, prop.major, prop.minor,
                                    prop.multiProcessorCount);
    info_.memory_bytes = prop.totalGlobalMem;
  }

  const DeviceInfo& info() const override { return info_; }

  bool supports(OpKind op, DType dtype) const override {
    switch (op) {
      case OpKind::kGetRows:
      case OpKind::kMatMul:
        return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 ||
               dtype == DType::kQ4_0 || dtype == DType::kQ4_1 || dtype == DType::kQ5_0 ||
               dtype == DType::kQ5_1 || dtype == DType::kQ8_0 || dtype == DType::kQ2_K ||
               dtype == DType::kQ3_K || dtype == DType::kQ4_K || dtype == DType::kQ5_K ||
               dtype == DType::kQ6_K || dtype == DType::kQ8_K;
      case OpKind::kAttention:
        return dtype == DType::kF32 || dtype == DType::kF16;
      case OpKind::kSetRows:
        return can_store(dtype);
      case OpKind::kCount:
        return false;
      default:
        return dtype == DType::kF32;
    }
  }

  std::unique_ptr<Buffer> alloc(size_t bytes) override {
    return std::make_unique<CudaBuffer>(gpu_, bytes);
  }

  void upload(Buffer& dst, size_t offset, const void* src, size_t bytes) override {
    uint8_t* d = own_data(*gpu_, &dst, "upload");
    check_range(dst, offset, bytes, "upload");
    if (bytes == 0) return;
    use(gpu_->ordinal);
    cuda_check(cudaMemcpy(d + offset, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (upload)");
  }

  void download(const Buffer& src, size_t offset, void* dst, size_t bytes) override {
    const uint8_t* s = own_data(*gpu_, &src, "download");
    check_range(src, offset, bytes, "download");
    if (bytes == 0) return;
    use(gpu_->ordinal);
    cuda_check(cudaMemcpy(dst, s + offset, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy (download)");
  }

  void copy(const Buffer& src, size_t src_offset, Buffer& dst, size_t dst_offset,
            size_t bytes) override {
    const uint8_t* s = own_data(*gpu_, &src, "copy (source)");
    uint8_t* d = own_data(*gpu_, &dst, "copy (destination)");
    check_range(src, src_offset, bytes, "copy (source)");
    check_range(dst, dst_offset, bytes, "copy (destination)");
    if (bytes == 0) return;
    use(gpu_->ordinal);
    const bool overlap =
        s == d && src_offset < dst_offset + bytes && dst_offset < src_offset + bytes;
    if (overlap) {  // device-to-device memcpy does not promise memmove semantics
      CudaBuffer tmp(gpu_, bytes);
      cuda_check(cudaMemcpy(tmp.data(), s + src_offset, bytes, cudaMemcpyDeviceToDevice),
                 "cudaMemcpy (copy)");
      cuda_check(cudaMemcpy(d + dst_offset, tmp.data(), bytes, cudaMemcpyDeviceToDevice),
                 "cudaMemcpy (copy)");
      return;
    }
    cuda_check(cudaMemcpy(d + dst_offset, s + src_offset, bytes, cudaMemcpyDeviceToDevice),
               "cudaMemcpy (copy)");
  }

  std::unique_ptr<Stream> create_stream() override {
    return std::make_unique<CudaStream>(gpu_, *this);
  }

 private:
  std::shared_ptr<const Gpu> gpu_;
  DeviceInfo info_;
};

}  // namespace

int cuda_device_count() {
  int n = 0;
  // No driver or no GPU: no devices, not an error.
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error
    return 0;
  }
  return n;
}

std::unique_ptr<Device> make_cuda_device(int index) {
  const int n = cuda_device_count();
  if (index < 0 || index >= n) {
    fail(ErrorKind::kInvalidArgument, "device 'cuda:{}': {} CUDA device(s) here", index, n);
  }
  return std::make_unique<CudaDevice>(index);
}

}  // namespace luzao
