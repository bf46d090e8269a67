// The conformance suite must fail a wrong backend: a device built on the reference backend with one
// deliberate, plausible bug per op (a 3% gain, the wrong rope layout, the last KV token skipped,
// first-wins row writes, a dropped broadcast) is judged by run_op, and every fault is caught while
// the untouched ops still pass.
#include <gtest/gtest.h>

#include <vector>

#include "backend/conformance/conformance.h"
#include "backend/reference/reference_backend.h"

namespace luzao {
namespace {

class FaultyStream final : public Stream {
 public:
  explicit FaultyStream(std::unique_ptr<Stream> inner) : s_(std::move(inner)) {}
  void get_rows(const TensorView& t, std::span<const int32_t> ids, const TensorView& o) override {
    s_->get_rows(t, ids, o);
  }
  void rms_norm(const TensorView& x, const TensorView& w, float eps, const TensorView& o) override {
    s_->rms_norm(x, w, eps * 1000.0f + 1e-3f, o);  // eps misread
  }
  void matmul(const TensorView& x, const TensorView& w, const TensorView& o) override {
    s_->matmul(x, w, o);
    s_->scale(o, 1.03f, o);  // a 3% gain: outside every matmul limit
  }
  void rope(const TensorView& x, std::span<const int32_t> pos, const RopeParams& p) override {
    RopeParams q = p;
    q.neox = !p.neox;
    s_->rope(x, pos, q);
  }
  void attention(const TensorView& q, const TensorView& k, const TensorView& v,
                 const AttentionParams& p, const TensorView& o) override {
    std::vector<int32_t> pos(p.token_pos.begin(), p.token_pos.end());
    for (int32_t& x : pos) x = x > 0 ? x - 1 : 0;  // off by one: the newest token is not seen
    AttentionParams a = p;
    a.token_pos = pos;
    s_->attention(q, k, v, a, o);
  }
  void swiglu(const TensorView& g, const TensorView& u, const TensorView& o) override {
    s_->swiglu(g, u, o);
  }
  void add(const TensorView& a, const TensorView& b, const TensorView& o) override {
    if (b.rows == 1 && a.rows > 1) {
      s_->scale(a, 1.0f, o);  // broadcast forgotten: b is dropped
      return;
    }
    s_->add(a, b, o);
  }
  void mul(const TensorView& a, const TensorView& b, const TensorView& o) override {
    s_->mul(a, b, o);
  }
  void scale(const TensorView& x, float f, const TensorView& o) override { s_->scale(x, f, o); }
  void softmax(const TensorView& x) override { s_->softmax(x); }
  void set_rows(const TensorView& src, std::span<const int32_t> ids,
                const TensorView& dst) override {
    for (size_t i = ids.size(); i-- > 0;) {  // first write wins instead of the last
      s_->set_rows(src.slice_rows(static_cast<int64_t>(i), 1), ids.subspan(i, 1), dst);
    }
  }
  void synchronize() override { s_->synchronize(); }

 private:
  std::unique_ptr<Stream> s_;
};

class FaultyDevice final : public Device {
 public:
  FaultyDevice() : d_(make_reference_device()) { info_ = d_->info(); }
  const DeviceInfo& info() const override { return info_; }
  bool supports(OpKind op, DType t) const override { return d_->supports(op, t); }
  std::unique_ptr<Buffer> alloc(size_t bytes) override { return d_->alloc(bytes); }
  void upload(Buffer& dst, size_t off, const void* src, size_t n) override {
    d_->upload(dst, off, src, n);
  }
  void download(const Buffer& src, size_t off, void* dst, size_t n) override {
    d_->download(src, off, dst, n);
  }
  void copy(const Buffer& s, size_t so, Buffer& d, size_t dof, size_t n) override {
    d_->copy(s, so, d, dof, n);
  }
  std::unique_ptr<Stream> create_stream() override {
    return std::make_unique<FaultyStream>(d_->create_stream());
  }

 private:
  std::unique_ptr<Device> d_;
  DeviceInfo info_;
};

bool any_failed(const std::vector<conformance::CaseResult>& cases) {
  for (const auto& c : cases) {
    if (!c.passed()) return true;
  }
  return false;
}

TEST(SuiteCatchesFaults, EveryInjectedBugFails) {
  FaultyDevice dev;
  for (OpKind op : {OpKind::kRmsNorm, OpKind::kMatMul, OpKind::kRope, OpKind::kAttention,
                    OpKind::kAdd, OpKind::kSetRows}) {
    const auto cases = conformance::run_op(dev, op, conformance::Depth::kQuick);
    ASSERT_FALSE(cases.empty()) << op_name(op);
    EXPECT_TRUE(any_failed(cases)) << op_name(op) << " fault went unnoticed";
    // A matmul gain of 3% fails every weight type, the coarse block types included.
    if (op == OpKind::kMatMul) {
      for (const auto& c : cases) EXPECT_FALSE(c.passed()) << c.name();
    }
  }
}

TEST(SuiteCatchesFaults, UntouchedOpsStillPass) {
  FaultyDevice dev;
  for (OpKind op :
       {OpKind::kGetRows, OpKind::kSwiGlu, OpKind::kMul, OpKind::kScale, OpKind::kSoftmax}) {
    for (const auto& c : conformance::run_op(dev, op, conformance::Depth::kQuick)) {
      EXPECT_TRUE(c.passed()) << c.name() << ": " << c.failure;
      EXPECT_EQ(c.error, 0.0) << c.name();  // the reference against itself
    }
  }
}

TEST(SuiteCatchesFaults, LimitsAreOrderedByPrecision) {
  using conformance::nmse_limit;
  EXPECT_LT(nmse_limit(OpKind::kMatMul, DType::kF32), nmse_limit(OpKind::kMatMul, DType::kF16));
  EXPECT_LT(nmse_limit(OpKind::kMatMul, DType::kF16), nmse_limit(OpKind::kMatMul, DType::kQ4_0));
  EXPECT_LT(nmse_limit(OpKind::kAttention, DType::kF32),
            nmse_limit(OpKind::kAttention, DType::kF16));
  for (int i = 0; i < static_cast<int>(OpKind::kCount); ++i) {
    EXPECT_GT(nmse_limit(static_cast<OpKind>(i), DType::kF32), 0.0);
  }
}

}  // namespace
}  // namespace luzao
