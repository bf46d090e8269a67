// The OpenCL device: buffers are cl_mem objects, each stream an in-order command queue with its own
// kernel objects; every op is validated on the host (view_checks.h) before its kernel is queued.
#include <algorithm>
#include <array>
#include <cmath>
#include <unordered_set>
#include <vector>

#include "backend/opencl/cl_runtime.h"
#include "backend/opencl/opencl_backend.h"
#include "backend/plugin/view_checks.h"
#include "core/error.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

using opencl::cl_check;
using opencl::Runtime;

constexpr int kMaxHeadDim = 256;  // attention.cl's MAX_HEAD_DIM
constexpr int kTokenTile = 4;     // matmul.cl's TOKEN_TILE

// Activation formats of matmul.cl's round_activations.
enum ActFormat : cl_int {
  kActNone = 0,
  kActF16 = 1,
  kActBf16 = 2,
  kActQ8_0 = 3,
  kActQ8_K = 4,
  kActQ8_1 = 5
};
// Operations of rows_math.cl's elementwise kernel.
enum ElementOp : cl_int { kOpAdd = 0, kOpMul = 1, kOpSwiGlu = 2, kOpScale = 3 };

enum Kernel {
  kRoundActivations,
  kMatMul,
  kGetRows,
  kSetRows,
  kRmsNorm,
  kRope,
  kSoftmax,
  kElementwise,
  kAttention,
  kKernelCount
};
constexpr const char* kKernelNames[kKernelCount] = {
    "round_activations", "matmul",      "get_rows", "set_rows", "rms_norm", "rope",
    "softmax",           "elementwise", "attention"};

ActFormat activation_format(DType w) {
  switch (dot_activation(w)) {
    case DotActivation::kQ8_0:
      return kActQ8_0;
    case DotActivation::kQ8_1:
      return kActQ8_1;
    case DotActivation::kQ8_K:
      return kActQ8_K;
    case DotActivation::kFloat:
      break;
  }
  return w == DType::kF16 ? kActF16 : w == DType::kBF16 ? kActBf16 : kActNone;
}

bool can_store(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ8_0:
    case DType::kQ8_K:
      return true;
    default:
      return false;
  }
}

// A cl_mem released when it goes out of scope (OpenCL keeps it alive until queued kernels that
// use it have finished).
class Mem {
 public:
  Mem() = default;
  explicit Mem(cl_mem m) : m_(m) {}
  ~Mem() {
    if (m_ != nullptr) clReleaseMemObject(m_);
  }
  Mem(Mem&& o) noexcept : m_(o.m_) { o.m_ = nullptr; }
  Mem& operator=(Mem&& o) noexcept {
    std::swap(m_, o.m_);
    return *this;
  }
  cl_mem get() const { return m_; }

 private:
  cl_mem m_ = nullptr;
};

class ClBuffer final : public Buffer {
 public:
  ClBuffer(std::shared_ptr<Runtime> rt, size_t size) : rt_(std::move(rt)), size_(size) {
    if (size > rt_->max_alloc()) {
      fail(ErrorKind::kOutOfMemory,
           "opencl: a buffer of {} bytes exceeds the device's largest allocation of {} bytes", size,
           rt_->max_alloc());
    }
    cl_int err = CL_SUCCESS;
    mem_ = Mem(clCreateBuffer(rt_->context(), CL_MEM_READ_WRITE, std::max<size_t>(size, 4), nullptr,
                              &err));
    cl_check(err, fmt::format("clCreateBuffer of {} bytes", size));
    const cl_uint zero = 0;
    cl_check(clEnqueueFillBuffer(rt_->transfer_queue(), mem_.get(), &zero, sizeof zero, 0,
                                 std::max<size_t>(size, 4) / 4 * 4, 0, nullptr, nullptr),
             "clEnqueueFillBuffer");
    if (size % 4 != 0 && size > 4) {  // the tail the 4-byte pattern did not reach
      const uint8_t tail[4] = {};
      cl_check(clEnqueueWriteBuffer(rt_->transfer_queue(), mem_.get(), CL_TRUE, size / 4 * 4,
                                    size % 4, tail, 0, nullptr, nullptr),
               "clEnqueueWriteBuffer");
    }
    cl_check(clFinish(rt_->transfer_queue()), "clFinish");
  }
  size_t size() const override { return size_; }
  const Runtime* owner() const { return rt_.get(); }
  cl_mem mem() const { return mem_.get(); }

 private:
  std::shared_ptr<Runtime> rt_;
  Mem mem_;
  size_t size_;
};

cl_mem own_mem(const Runtime& rt, const Buffer* b, std::string_view what) {
  const auto* cb = dynamic_cast<const ClBuffer*>(b);
  if (cb == nullptr || cb->owner() != &rt) {
    fail(ErrorKind::kInvalidArgument, "opencl: {}: the buffer belongs to another device", what);
  }
  return cb->mem();
}

void check_range(const Buffer& b, size_t offset, size_t bytes, std::string_view what) {
  if (offset > b.size() || bytes > b.size() - offset) {
    fail(ErrorKind::kInvalidArgument,
         "opencl: {}: range [{}, {}+{}) lies outside the {}-byte buffer", what, offset, offset,
         bytes, b.size());
  }
}

cl_int I(int64_t v) {
  return static_cast<cl_int>(v);
}
cl_ulong U(size_t v) {
  return static_cast<cl_ulong>(v);
}

class ClStream final : public Stream {
 public:
  ClStream(std::shared_ptr<Runtime> rt, const Device& device)
      : rt_(std::move(rt)), device_(device) {
    cl_int err = CL_SUCCESS;
    queue_ = clCreateCommandQueue(rt_->context(), rt_->device(), 0, &err);
    cl_check(err, "clCreateCommandQueue");
    for (int k = 0; k < kKernelCount; ++k) {
      kernels_[k] = clCreateKernel(rt_->program(), kKernelNames[k], &err);
      if (err != CL_SUCCESS) {
        release();
        cl_check(err, fmt::format("clCreateKernel({})", kKernelNames[k]));
      }
    }
  }
  ~ClStream() override {
    clFinish(queue_);
    release();
  }
  ClStream(const ClStream&) = delete;
  ClStream& operator=(const ClStream&) = delete;

  void get_rows(const TensorView& table, std::span<const int32_t> ids,
                const TensorView& out) override {
    validate_get_rows(table, ids, out);
    require_support(device_, OpKind::kGetRows, table.dtype);
    if (ids.empty() || table.cols == 0) return;
    const Mem idx = ints(ids);
    launch(kGetRows, ids.size(), chunks(table.cols, 32), I(static_cast<int>(table.dtype)),
           mem(table, "get_rows"), U(table.offset), U(table.row_stride), idx.get(),
           mem(out, "get_rows"), U(out.offset), U(out.row_stride), I(table.cols));
  }

  void rms_norm(const TensorView& x, const TensorView& weight, float eps,
                const TensorView& out) override {
    validate_rms_norm(x, weight, eps, out);
    launch(kRmsNorm, x.rows, 1, mem(x, "rms_norm"), U(x.offset), U(x.row_stride),
           mem(weight, "rms_norm"), U(weight.offset), mem(out, "rms_norm"), U(out.offset),
           U(out.row_stride), I(x.cols), eps);
  }

  void matmul(const TensorView& x, const TensorView& w, const TensorView& out) override {
    validate_matmul(x, w, out);
    require_support(device_, OpKind::kMatMul, w.dtype);
    const int64_t n = x.rows, m = w.rows, k = x.cols;
    cl_mem xm = mem(x, "matmul");
    size_t x_off = x.offset, x_stride = x.row_stride;
    const ActFormat act = activation_format(w.dtype);
    if (act != kActNone && n > 0 && k > 0) {
      grow(scratch_, scratch_size_, static_cast<size_t>(n * k) * sizeof(float));
      grow(sums_, sums_size_, static_cast<size_t>(n * (k / 32)) * sizeof(float));
      launch(kRoundActivations, n, chunks(k, act == kActQ8_K ? 256 : 32), I(act), xm, U(x_off),
             U(x_stride), scratch_.get(), sums_.get(), I(k));
      xm = scratch_.get();
      x_off = 0;
      x_stride = static_cast<size_t>(k) * sizeof(float);
    } else {
      grow(sums_, sums_size_, sizeof(float));  // a valid, unused argument
    }
    launch(kMatMul, m, chunks(n, kTokenTile), I(static_cast<int>(w.dtype)), mem(w, "matmul"),
           U(w.offset), U(w.row_stride), xm, U(x_off), U(x_stride), sums_.get(), I(act == kActQ8_1),
           mem(out, "matmul"), U(out.offset), U(out.row_stride), I(n), I(m), I(k));
  }

  void rope(const TensorView& x, std::span<const int32_t> positions, const RopeParams& p) override {
    validate_rope(x, positions, p);
    if (x.rows == 0) return;
    const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.rot_dim));
    const Mem pos = ints(positions);
    launch(kRope, x.rows, p.rot_dim / 2, mem(x, "rope"), U(x.offset), U(x.row_stride), pos.get(),
           I(p.n_heads), I(p.head_dim), I(p.rot_dim), I(p.neox ? 1 : 0), theta_scale);
  }

  void attention(const TensorView& q, const TensorView& k_pool, const TensorView& v_pool,
                 const AttentionParams& p, const TensorView& out) override {
    validate_attention(q, k_pool, v_pool, p, out);
    require_support(device_, OpKind::kAttention, k_pool.dtype);
    require_support(device_, OpKind::kAttention, v_pool.dtype);
    if (p.head_dim > kMaxHeadDim) {
      fail(ErrorKind::kUnsupported, "{}: attention with head_dim {} (at most {})",
           device_.info().name, p.head_dim, kMaxHeadDim);
    }
    if (q.rows == 0) return;
    const Mem seq = ints(p.token_seq), pos = ints(p.token_pos), table = ints(p.block_table);
    launch(kAttention, q.rows, p.n_heads, mem(q, "attention"), U(q.offset), U(q.row_stride),
           mem(k_pool, "attention"), U(k_pool.offset), U(k_pool.row_stride),
           I(k_pool.dtype == DType::kF16), mem(v_pool, "attention"), U(v_pool.offset),
           U(v_pool.row_stride), I(v_pool.dtype == DType::kF16), mem(out, "attention"),
           U(out.offset), U(out.row_stride), seq.get(), pos.get(), table.get(), I(p.n_heads),
           I(p.n_kv_heads), I(p.head_dim), I(p.page_size), I(p.max_blocks), p.scale);
  }

  void swiglu(const TensorView& gate, const TensorView& up, const TensorView& out) override {
    validate_swiglu(gate, up, out);
    elementwise(kOpSwiGlu, gate, up, out, 0.0f, "swiglu");
  }
  void add(const TensorView& a, const TensorView& b, const TensorView& out) override {
    validate_binary("add", a, b, out);
    elementwise(kOpAdd, a, b, out, 0.0f, "add");
  }
  void mul(const TensorView& a, const TensorView& b, const TensorView& out) override {
    validate_binary("mul", a, b, out);
    elementwise(kOpMul, a, b, out, 0.0f, "mul");
  }
  void scale(const TensorView& x, float s, const TensorView& out) override {
    validate_scale(x, out);
    elementwise(kOpScale, x, x, out, s, "scale");
  }

  void softmax(const TensorView& x) override {
    validate_softmax(x);
    launch(kSoftmax, x.rows, 1, mem(x, "softmax"), U(x.offset), U(x.row_stride), I(x.cols));
  }

  void set_rows(const TensorView& src, std::span<const int32_t> row_ids,
                const TensorView& dst) override {
    validate_set_rows(src, row_ids, dst);
    require_support(device_, OpKind::kSetRows, dst.dtype);
    // The last write to a row wins: keep it, drop the earlier ones.
    std::vector<int32_t> src_rows, dst_rows;
    std::unordered_set<int32_t> seen;
    for (size_t i = row_ids.size(); i-- > 0;) {
      if (seen.insert(row_ids[i]).second) {
        src_rows.push_back(static_cast<int32_t>(i));
        dst_rows.push_back(row_ids[i]);
      }
    }
    if (src_rows.empty() || src.cols == 0) return;
    const Mem s = ints(src_rows), d = ints(dst_rows);
    const int64_t blk = dst.dtype == DType::kQ8_K ? 256 : 32;
    launch(kSetRows, src_rows.size(), chunks(src.cols, blk), I(static_cast<int>(dst.dtype)),
           mem(src, "set_rows"), U(src.offset), U(src.row_stride), s.get(), d.get(),
           mem(dst, "set_rows"), U(dst.offset), U(dst.row_stride), I(src.cols));
  }

  void synchronize() override { cl_check(clFinish(queue_), "clFinish"); }

 private:
  void release() {
    for (cl_kernel& k : kernels_) {
      if (k != nullptr) clReleaseKernel(k);
      k = nullptr;
    }
    if (queue_ != nullptr) clReleaseCommandQueue(queue_);
    queue_ = nullptr;
  }

  // A scratch buffer of at least `bytes` (the stream's queue is in order, so reusing it across
  // ops is safe; the old buffer lives until queued kernels that use it are done).
  void grow(Mem& m, size_t& size, size_t bytes) {
    if (bytes <= size && m.get() != nullptr) return;
    cl_int err = CL_SUCCESS;
    m = Mem(clCreateBuffer(rt_->context(), CL_MEM_READ_WRITE, std::max<size_t>(bytes, 4), nullptr,
                           &err));
    cl_check(err, "clCreateBuffer (stream scratch)");
    size = bytes;
  }

  static size_t chunks(int64_t n, int64_t per) { return static_cast<size_t>((n + per - 1) / per); }

  cl_mem mem(const TensorView& v, std::string_view op) const { return own_mem(*rt_, v.buffer, op); }

  // A read-only device copy of host indices, taken before the call returns.
  Mem ints(std::span<const int32_t> v) const {
    if (v.empty()) return Mem();
    cl_int err = CL_SUCCESS;
    Mem m(clCreateBuffer(rt_->context(), CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                         v.size() * sizeof(int32_t), const_cast<int32_t*>(v.data()), &err));
    cl_check(err, "clCreateBuffer (indices)");
    return m;
  }

  void elementwise(ElementOp op, const TensorView& a, const TensorView& b, const TensorView& out,
                   float s, std::string_view name) {
    launch(kElementwise, a.rows, static_cast<size_t>(a.cols), I(op), mem(a, name), U(a.offset),
           U(a.row_stride), mem(b, name), U(b.offset), U(b.row_stride), I(b.rows), mem(out, name),
           U(out.offset), U(out.row_stride), I(a.cols), s);
  }

  template <typename... Args>
  void launch(Kernel k, int64_t g0, size_t g1, const Args&... args) {
    if (g0 <= 0 || g1 == 0) return;
    cl_kernel kernel = kernels_[k];
    cl_uint index = 0;
    const auto set = [&](const auto& arg) {
      cl_check(clSetKernelArg(kernel, index++, sizeof(arg), &arg),
               fmt::format("clSetKernelArg({}, {})", kKernelNames[k], index));
    };
    (set(args), ...);
    // Work-groups of up to 64 work-items along dimension 0 (a divisor of it, as OpenCL 1.2
    // requires): drivers that pick the size themselves may choose 1, and a CPU device such as
    // PoCL then pays its per-group overhead once per work-item.
    size_t local0 = 64;
    while (static_cast<size_t>(g0) % local0 != 0) local0 /= 2;
    const size_t global[2] = {static_cast<size_t>(g0), g1};
    const size_t local[2] = {local0, 1};
    cl_check(clEnqueueNDRangeKernel(queue_, kernel, 2, nullptr, global, local, 0, nullptr, nullptr),
             fmt::format("enqueue {}", kKernelNames[k]));
  }

  std::shared_ptr<Runtime> rt_;
  const Device& device_;
  cl_command_queue queue_ = nullptr;
  std::array<cl_kernel, kKernelCount> kernels_{};
  Mem scratch_, sums_;
  size_t scratch_size_ = 0, sums_size_ = 0;
};

class ClDevice final : public Device {
 public:
  ClDevice(cl_device_id id, int index) : rt_(std::make_shared<Runtime>(id)) {
    info_.name = fmt::format("opencl:{}", index);
    info_.backend = "opencl";
    info_.vendor = rt_->vendor();
    info_.description = fmt::format("{} ({})", rt_->device_name(), rt_->version());
    info_.memory_bytes = rt_->global_memory();
  }

  const DeviceInfo& info() const override { return info_; }

  bool supports(OpKind op, DType dtype) const override {
    switch (op) {
      case OpKind::kGetRows:
      case OpKind::kMatMul:
        for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                        DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ2_K, DType::kQ3_K,
                        DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kQ8_K}) {
          if (t == dtype) return true;
        }
        return false;
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
    return std::make_unique<ClBuffer>(rt_, bytes);
  }

  void upload(Buffer& dst, size_t offset, const void* src, size_t bytes) override {
    cl_mem m = own_mem(*rt_, &dst, "upload");
    check_range(dst, offset, bytes, "upload");
    if (bytes == 0) return;
    cl_check(clEnqueueWriteBuffer(rt_->transfer_queue(), m, CL_TRUE, offset, bytes, src, 0, nullptr,
                                  nullptr),
             "clEnqueueWriteBuffer");
  }

  void download(const Buffer& src, size_t offset, void* dst, size_t bytes) override {
    cl_mem m = own_mem(*rt_, &src, "download");
    check_range(src, offset, bytes, "download");
    if (bytes == 0) return;
    cl_check(clEnqueueReadBuffer(rt_->transfer_queue(), m, CL_TRUE, offset, bytes, dst, 0, nullptr,
                                 nullptr),
             "clEnqueueReadBuffer");
  }

  void copy(const Buffer& src, size_t src_offset, Buffer& dst, size_t dst_offset,
            size_t bytes) override {
    cl_mem s = own_mem(*rt_, &src, "copy (source)");
    cl_mem d = own_mem(*rt_, &dst, "copy (destination)");
    check_range(src, src_offset, bytes, "copy (source)");
    check_range(dst, dst_offset, bytes, "copy (destination)");
    if (bytes == 0) return;
    cl_command_queue q = rt_->transfer_queue();
    const bool overlap =
        s == d && src_offset < dst_offset + bytes && dst_offset < src_offset + bytes;
    if (overlap) {  // OpenCL refuses overlapping copies: go through a temporary buffer
      ClBuffer tmp(rt_, bytes);
      cl_check(clEnqueueCopyBuffer(q, s, tmp.mem(), src_offset, 0, bytes, 0, nullptr, nullptr),
               "clEnqueueCopyBuffer");
      cl_check(clEnqueueCopyBuffer(q, tmp.mem(), d, 0, dst_offset, bytes, 0, nullptr, nullptr),
               "clEnqueueCopyBuffer");
      cl_check(clFinish(q), "clFinish");
      return;
    }
    cl_check(clEnqueueCopyBuffer(q, s, d, src_offset, dst_offset, bytes, 0, nullptr, nullptr),
             "clEnqueueCopyBuffer");
    cl_check(clFinish(q), "clFinish");
  }

  std::unique_ptr<Stream> create_stream() override {
    return std::make_unique<ClStream>(rt_, *this);
  }

 private:
  std::shared_ptr<Runtime> rt_;
  DeviceInfo info_;
};

}  // namespace

int opencl_device_count() {
  return static_cast<int>(opencl::all_devices().size());
}

std::unique_ptr<Device> make_opencl_device(int index) {
  const std::vector<cl_device_id> devices = opencl::all_devices();
  if (index < 0 || static_cast<size_t>(index) >= devices.size()) {
    fail(ErrorKind::kInvalidArgument, "device 'opencl:{}': {} OpenCL device(s) here", index,
         devices.size());
  }
  return std::make_unique<ClDevice>(devices[static_cast<size_t>(index)], index);
}

}  // namespace luzao
