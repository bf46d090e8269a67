// The cpu device and stream: validation (shared with the reference), then the kernels of
// cpu_ops.h on the device's thread pool with per-stream scratch memory.
#include "backend/cpu/cpu_backend.h"

#include <array>

#include <fmt/format.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/host_device.h"
#include "core/error.h"

namespace luzao {
namespace {

class CpuStream final : public Stream {
 public:
  CpuStream(cpu::WorkerPool& pool, const cpu::KernelTable& kernels,
            const cpu::CpuFeatures& features)
      : per_thread_(static_cast<size_t>(pool.size())),
        ctx_{pool, kernels, features, shared_, per_thread_} {}

  void get_rows(const TensorView& table, std::span<const int32_t> ids,
                const TensorView& out) override {
    cpu::get_rows(ctx_, check_get_rows(table, ids, out), ids);
  }
  void rms_norm(const TensorView& x, const TensorView& weight, float eps,
                const TensorView& out) override {
    cpu::rms_norm(ctx_, check_rms_norm(x, weight, eps, out), eps);
  }
  void matmul(const TensorView& x, const TensorView& w, const TensorView& out) override {
    const MatMulArgs args = check_matmul(x, w, out);
    const cpu::PackedMatrix* packed = nullptr;
    if (auto* mapped = dynamic_cast<cpu::PackedWeightBuffer*>(w.buffer)) {
      packed = mapped->packed(w, ctx_.features);
    }
    cpu::matmul(ctx_, args, packed);
  }
  void matmul_shared_input(const TensorView& x, std::span<const TensorView> w,
                           std::span<const TensorView> out) override {
    constexpr size_t kMax = 8;
    if (w.size() != out.size() || w.size() > kMax) {
      Stream::matmul_shared_input(x, w, out);  // validates, or runs them one by one
      return;
    }
    std::array<MatMulArgs, kMax> args;
    std::array<const cpu::PackedMatrix*, kMax> packed{};
    for (size_t i = 0; i < w.size(); ++i) {
      args[i] = check_matmul(x, w[i], out[i]);
      if (auto* mapped = dynamic_cast<cpu::PackedWeightBuffer*>(w[i].buffer)) {
        packed[i] = mapped->packed(w[i], ctx_.features);
      }
    }
    cpu::matmul_shared_input(ctx_, std::span(args.data(), w.size()),
                             std::span(packed.data(), w.size()));
  }
  void rope(const TensorView& x, std::span<const int32_t> positions, const RopeParams& p) override {
    cpu::rope(ctx_, check_rope(x, positions, p), positions, p);
  }
  void attention(const TensorView& q, const TensorView& k_pool, const TensorView& v_pool,
                 const AttentionParams& p, const TensorView& out) override {
    cpu::attention(ctx_, check_attention(q, k_pool, v_pool, p, out), p);
  }
  void swiglu(const TensorView& gate, const TensorView& up, const TensorView& out) override {
    cpu::swiglu(ctx_, check_swiglu(gate, up, out));
  }
  void add(const TensorView& a, const TensorView& b, const TensorView& out) override {
    cpu::add(ctx_, check_binary("add", a, b, out));
  }
  void mul(const TensorView& a, const TensorView& b, const TensorView& out) override {
    cpu::mul(ctx_, check_binary("mul", a, b, out));
  }
  void scale(const TensorView& x, float s, const TensorView& out) override {
    cpu::scale(ctx_, check_scale(x, out), s);
  }
  void softmax(const TensorView& x) override { cpu::softmax(ctx_, check_softmax(x)); }
  void set_rows(const TensorView& src, std::span<const int32_t> row_ids,
                const TensorView& dst) override {
    cpu::set_rows(ctx_, check_set_rows(src, row_ids, dst), row_ids);
  }
  void synchronize() override {}

 private:
  cpu::Scratch shared_;
  std::vector<cpu::Scratch> per_thread_;
  cpu::CpuContext ctx_;
};

class CpuDevice final : public HostDevice {
 public:
  explicit CpuDevice(int threads)
      : pool_(threads),
        features_(cpu::detect_cpu_features()),
        kernels_(cpu::make_kernel_table(features_)) {
    const cpu::CpuFeatures& f = features_;
    info_.name = "cpu";
    info_.backend = "cpu";
    info_.vendor = "luzao";
    info_.description =
        fmt::format("{} threads, kernels: {}", pool_.size(), cpu::kernel_isa_name(f));
    info_.memory_bytes = host_memory_bytes();
  }
  const DeviceInfo& info() const override { return info_; }
  bool supports(OpKind op, DType dtype) const override { return host_supports(op, dtype); }
  // Mapped weights are read-only: their matrices are repacked for the tile kernels on first use.
  std::unique_ptr<Buffer> map_host(const void* data, size_t bytes) override {
    if (data == nullptr && bytes != 0) {
      fail(ErrorKind::kInvalidArgument, "map_host: null pointer for {} bytes", bytes);
    }
    return std::make_unique<cpu::PackedWeightBuffer>(data, bytes);
  }
  std::unique_ptr<Stream> create_stream() override {
    return std::make_unique<CpuStream>(pool_, kernels_, features_);
  }

 private:
  DeviceInfo info_;
  cpu::WorkerPool pool_;
  cpu::CpuFeatures features_;
  cpu::KernelTable kernels_;
};

}  // namespace

std::unique_ptr<Device> make_cpu_device(int threads) {
  return std::make_unique<CpuDevice>(threads);
}

}  // namespace luzao
