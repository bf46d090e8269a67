// The C++ adapter that makes one device of a C plugin a luzao::Device: arguments are validated
// here (view_checks.h), turned into C structs, and plugin status codes come back as luzao::Error.
#include <array>
#include <cstring>
#include <vector>

#include "backend/plugin/plugin_loader.h"
#include "backend/plugin/view_checks.h"
#include "core/error.h"
#include "luzao/plugin.h"

namespace luzao {
namespace {

static_assert(LUZAO_OP_COUNT == static_cast<int>(OpKind::kCount), "op numbering");
static_assert(LUZAO_OP_MATMUL == static_cast<int>(OpKind::kMatMul) &&
                  LUZAO_OP_SET_ROWS == static_cast<int>(OpKind::kSetRows),
              "op numbering");
static_assert(LUZAO_DTYPE_Q4_K == static_cast<int>(DType::kQ4_K) &&
                  LUZAO_DTYPE_BF16 == static_cast<int>(DType::kBF16),
              "dtype numbering");

constexpr DType kKnownTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0,
                                 DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                                 DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K,
                                 DType::kQ6_K, DType::kQ8_K};
constexpr size_t kTypeSlots = 32;  // dtype ids are < 32

ErrorKind error_kind(luzao_status s) {
  switch (s) {
    case LUZAO_STATUS_INVALID_ARGUMENT:
      return ErrorKind::kInvalidArgument;
    case LUZAO_STATUS_UNSUPPORTED:
      return ErrorKind::kUnsupported;
    case LUZAO_STATUS_OUT_OF_MEMORY:
      return ErrorKind::kOutOfMemory;
    case LUZAO_STATUS_DEVICE_ERROR:
      return ErrorKind::kIo;
    default:
      return ErrorKind::kInternal;
  }
}

// The open plugin device, shared by the Device object and every buffer and stream of it, so the
// plugin's close() runs after the last of them is gone whatever order they are destroyed in.
struct Handle {
  std::shared_ptr<PluginLibrary> library;
  luzao_device* device = nullptr;
  std::string name;
  ~Handle() {
    if (device != nullptr) library->api().device.close(device);
  }
  const luzao_plugin& api() const { return library->api(); }
  // Throws unless `s` is OK.
  void check(luzao_status s, luzao_error& err, std::string_view what) const {
    if (s == LUZAO_STATUS_OK) return;
    err.message[sizeof(err.message) - 1] = '\0';
    fail(error_kind(s), "{}: {}: {}", name, what,
         err.message[0] != '\0' ? err.message : "failed without a message");
  }
};

class PluginBuffer final : public Buffer {
 public:
  PluginBuffer(std::shared_ptr<Handle> handle, luzao_buffer* buffer, size_t size)
      : handle_(std::move(handle)), buffer_(buffer), size_(size) {}
  ~PluginBuffer() override { handle_->api().buffer.free(handle_->device, buffer_); }
  PluginBuffer(const PluginBuffer&) = delete;
  PluginBuffer& operator=(const PluginBuffer&) = delete;
  size_t size() const override { return size_; }
  const Handle* owner() const { return handle_.get(); }
  luzao_buffer* raw() const { return buffer_; }

 private:
  std::shared_ptr<Handle> handle_;
  luzao_buffer* buffer_;
  size_t size_;
};

// The plugin handle of a buffer that must belong to `h`.
luzao_buffer* own_buffer(const Handle& h, const Buffer& b, std::string_view what) {
  const auto* pb = dynamic_cast<const PluginBuffer*>(&b);
  if (pb == nullptr || pb->owner() != &h) {
    fail(ErrorKind::kInvalidArgument, "{}: {}: the buffer belongs to another device", h.name, what);
  }
  return pb->raw();
}

void check_range(const Handle& h, const Buffer& b, size_t offset, size_t bytes,
                 std::string_view what) {
  if (offset > b.size() || bytes > b.size() - offset) {
    fail(ErrorKind::kInvalidArgument, "{}: {}: range [{}, {}+{}) lies outside the {}-byte buffer",
         h.name, what, offset, offset, bytes, b.size());
  }
}

class PluginStream final : public Stream {
 public:
  PluginStream(std::shared_ptr<Handle> handle, const Device& device)
      : handle_(std::move(handle)), device_(device) {
    luzao_error err{};
    handle_->check(handle_->api().stream.create(handle_->device, &stream_, &err), err,
                   "create stream");
  }
  ~PluginStream() override { api().destroy(stream_); }
  PluginStream(const PluginStream&) = delete;
  PluginStream& operator=(const PluginStream&) = delete;

  void get_rows(const TensorView& table, std::span<const int32_t> ids,
                const TensorView& out) override {
    validate_get_rows(table, ids, out);
    require_support(device_, OpKind::kGetRows, table.dtype);
    const luzao_tensor t = c(table, "get_rows"), o = c(out, "get_rows");
    run("get_rows",
        [&](luzao_error* e) { return api().get_rows(stream_, &t, ids.data(), ids.size(), &o, e); });
  }

  void rms_norm(const TensorView& x, const TensorView& weight, float eps,
                const TensorView& out) override {
    validate_rms_norm(x, weight, eps, out);
    require_support(device_, OpKind::kRmsNorm, DType::kF32);
    const luzao_tensor a = c(x, "rms_norm"), w = c(weight, "rms_norm"), o = c(out, "rms_norm");
    run("rms_norm", [&](luzao_error* e) { return api().rms_norm(stream_, &a, &w, eps, &o, e); });
  }

  void matmul(const TensorView& x, const TensorView& w, const TensorView& out) override {
    validate_matmul(x, w, out);
    require_support(device_, OpKind::kMatMul, w.dtype);
    const luzao_tensor a = c(x, "matmul"), b = c(w, "matmul"), o = c(out, "matmul");
    run("matmul", [&](luzao_error* e) { return api().matmul(stream_, &a, &b, &o, e); });
  }

  void rope(const TensorView& x, std::span<const int32_t> positions, const RopeParams& p) override {
    validate_rope(x, positions, p);
    require_support(device_, OpKind::kRope, DType::kF32);
    const luzao_tensor a = c(x, "rope");
    const luzao_rope_params cp{p.n_heads, p.head_dim, p.rot_dim, p.freq_base, p.neox ? 1 : 0};
    run("rope", [&](luzao_error* e) {
      return api().rope(stream_, &a, positions.data(), positions.size(), &cp, e);
    });
  }

  void attention(const TensorView& q, const TensorView& k_pool, const TensorView& v_pool,
                 const AttentionParams& p, const TensorView& out) override {
    validate_attention(q, k_pool, v_pool, p, out);
    require_support(device_, OpKind::kAttention, k_pool.dtype);
    require_support(device_, OpKind::kAttention, v_pool.dtype);
    const luzao_tensor a = c(q, "attention"), k = c(k_pool, "attention"),
                       v = c(v_pool, "attention"), o = c(out, "attention");
    const luzao_attention_params cp{p.n_heads,           p.n_kv_heads,
                                    p.head_dim,          p.page_size,
                                    p.max_blocks,        p.scale,
                                    p.token_seq.data(),  p.token_pos.data(),
                                    p.token_seq.size(),  p.block_table.data(),
                                    p.block_table.size()};
    run("attention",
        [&](luzao_error* e) { return api().attention(stream_, &a, &k, &v, &cp, &o, e); });
  }

  void swiglu(const TensorView& gate, const TensorView& up, const TensorView& out) override {
    validate_swiglu(gate, up, out);
    require_support(device_, OpKind::kSwiGlu, DType::kF32);
    const luzao_tensor g = c(gate, "swiglu"), u = c(up, "swiglu"), o = c(out, "swiglu");
    run("swiglu", [&](luzao_error* e) { return api().swiglu(stream_, &g, &u, &o, e); });
  }

  void add(const TensorView& a, const TensorView& b, const TensorView& out) override {
    validate_binary("add", a, b, out);
    require_support(device_, OpKind::kAdd, DType::kF32);
    const luzao_tensor x = c(a, "add"), y = c(b, "add"), o = c(out, "add");
    run("add", [&](luzao_error* e) { return api().add(stream_, &x, &y, &o, e); });
  }

  void mul(const TensorView& a, const TensorView& b, const TensorView& out) override {
    validate_binary("mul", a, b, out);
    require_support(device_, OpKind::kMul, DType::kF32);
    const luzao_tensor x = c(a, "mul"), y = c(b, "mul"), o = c(out, "mul");
    run("mul", [&](luzao_error* e) { return api().mul(stream_, &x, &y, &o, e); });
  }

  void scale(const TensorView& x, float s, const TensorView& out) override {
    validate_scale(x, out);
    require_support(device_, OpKind::kScale, DType::kF32);
    const luzao_tensor a = c(x, "scale"), o = c(out, "scale");
    run("scale", [&](luzao_error* e) { return api().scale(stream_, &a, s, &o, e); });
  }

  void softmax(const TensorView& x) override {
    validate_softmax(x);
    require_support(device_, OpKind::kSoftmax, DType::kF32);
    const luzao_tensor a = c(x, "softmax");
    run("softmax", [&](luzao_error* e) { return api().softmax(stream_, &a, e); });
  }

  void set_rows(const TensorView& src, std::span<const int32_t> row_ids,
                const TensorView& dst) override {
    validate_set_rows(src, row_ids, dst);
    require_support(device_, OpKind::kSetRows, dst.dtype);
    const luzao_tensor s = c(src, "set_rows"), d = c(dst, "set_rows");
    run("set_rows", [&](luzao_error* e) {
      return api().set_rows(stream_, &s, row_ids.data(), row_ids.size(), &d, e);
    });
  }

  void synchronize() override {
    run("synchronize", [&](luzao_error* e) { return api().synchronize(stream_, e); });
  }

 private:
  const luzao_stream_api& api() const { return handle_->api().stream; }

  luzao_tensor c(const TensorView& v, std::string_view op) const {
    luzao_tensor t{};
    t.buffer = own_buffer(*handle_, *v.buffer, op);
    t.offset = v.offset;
    t.dtype = static_cast<uint32_t>(v.dtype);
    t.rows = v.rows;
    t.cols = v.cols;
    t.row_stride = v.row_stride;
    return t;
  }

  template <typename Call>
  void run(std::string_view op, Call&& call) {
    luzao_error err{};
    handle_->check(call(&err), err, op);
  }

  std::shared_ptr<Handle> handle_;
  const Device& device_;
  luzao_stream* stream_ = nullptr;
};

class PluginDevice final : public Device {
 public:
  PluginDevice(std::shared_ptr<PluginLibrary> library, int index)
      : handle_(std::make_shared<Handle>()) {
    handle_->library = std::move(library);
    handle_->name = fmt::format("{}:{}", handle_->library->name(), index);
    const luzao_plugin& api = handle_->api();
    luzao_error err{};
    handle_->check(api.device.open(index, &handle_->device, &err), err, "open");
    luzao_device_info raw{};
    handle_->check(api.device.info(handle_->device, &raw, &err), err, "info");
    raw.name[sizeof(raw.name) - 1] = raw.vendor[sizeof(raw.vendor) - 1] =
        raw.description[sizeof(raw.description) - 1] = '\0';
    info_.name = handle_->name;
    info_.backend = handle_->library->name();
    info_.vendor = raw.vendor;
    info_.description = raw.description[0] != '\0'
                            ? fmt::format("{} ({})", raw.name, raw.description)
                            : std::string(raw.name);
    info_.memory_bytes = raw.memory_bytes;
    for (int op = 0; op < static_cast<int>(OpKind::kCount); ++op) {
      for (DType t : kKnownTypes) {
        supported_[static_cast<size_t>(op)][static_cast<size_t>(t)] =
            api.device.supports(handle_->device, static_cast<uint32_t>(op),
                                static_cast<uint32_t>(t)) != 0;
      }
    }
  }

  const DeviceInfo& info() const override { return info_; }

  bool supports(OpKind op, DType dtype) const override {
    const auto o = static_cast<size_t>(op);
    const auto t = static_cast<size_t>(dtype);
    return o < supported_.size() && t < kTypeSlots && supported_[o][t];
  }

  std::unique_ptr<Buffer> alloc(size_t bytes) override {
    luzao_error err{};
    luzao_buffer* b = nullptr;
    handle_->check(handle_->api().buffer.alloc(handle_->device, bytes, &b, &err), err,
                   fmt::format("alloc of {} bytes", bytes));
    return std::make_unique<PluginBuffer>(handle_, b, bytes);
  }

  std::unique_ptr<Buffer> map_host(const void* data, size_t bytes) override {
    if (data == nullptr && bytes != 0) {
      fail(ErrorKind::kInvalidArgument, "{}: map_host: null pointer for {} bytes", info_.name,
           bytes);
    }
    luzao_error err{};
    luzao_buffer* b = nullptr;
    const luzao_status s = handle_->api().buffer.map_host(handle_->device, data, bytes, &b, &err);
    if (s == LUZAO_STATUS_UNSUPPORTED) return nullptr;
    handle_->check(s, err, "map_host");
    return std::make_unique<PluginBuffer>(handle_, b, bytes);
  }

  void upload(Buffer& dst, size_t offset, const void* src, size_t bytes) override {
    luzao_buffer* b = own_buffer(*handle_, dst, "upload");
    check_range(*handle_, dst, offset, bytes, "upload");
    if (bytes == 0) return;
    luzao_error err{};
    handle_->check(handle_->api().buffer.upload(handle_->device, b, offset, src, bytes, &err), err,
                   "upload");
  }

  void download(const Buffer& src, size_t offset, void* dst, size_t bytes) override {
    luzao_buffer* b = own_buffer(*handle_, src, "download");
    check_range(*handle_, src, offset, bytes, "download");
    if (bytes == 0) return;
    luzao_error err{};
    handle_->check(handle_->api().buffer.download(handle_->device, b, offset, dst, bytes, &err),
                   err, "download");
  }

  void copy(const Buffer& src, size_t src_offset, Buffer& dst, size_t dst_offset,
            size_t bytes) override {
    luzao_buffer* s = own_buffer(*handle_, src, "copy (source)");
    luzao_buffer* d = own_buffer(*handle_, dst, "copy (destination)");
    check_range(*handle_, src, src_offset, bytes, "copy (source)");
    check_range(*handle_, dst, dst_offset, bytes, "copy (destination)");
    if (bytes == 0) return;
    luzao_error err{};
    handle_->check(
        handle_->api().buffer.copy(handle_->device, s, src_offset, d, dst_offset, bytes, &err), err,
        "copy");
  }

  std::unique_ptr<Stream> create_stream() override {
    return std::make_unique<PluginStream>(handle_, *this);
  }

 private:
  std::shared_ptr<Handle> handle_;
  DeviceInfo info_;
  std::array<std::array<bool, kTypeSlots>, static_cast<size_t>(OpKind::kCount)> supported_{};
};

}  // namespace

std::unique_ptr<Device> open_plugin_device(std::shared_ptr<PluginLibrary> library, int index) {
  LUZAO_CHECK(library != nullptr);
  const int n = library->device_count();
  if (index < 0 || index >= n) {
    fail(ErrorKind::kInvalidArgument, "device '{}:{}': plugin {} offers {} device(s) here",
         library->name(), index, library->path().string(), n);
  }
  return std::make_unique<PluginDevice>(std::move(library), index);
}

}  // namespace luzao
