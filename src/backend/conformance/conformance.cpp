// The conformance sweeps: each op on the device under test and on the reference backend, same
// inputs, views with padded rows and leading offsets, outputs compared by normalised MSE.
#include "backend/conformance/conformance.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backend/reference/reference_backend.h"
#include "core/error.h"
#include "core/half.h"
#include "tensor/blocks.h"

namespace luzao::conformance {
namespace {

constexpr DType kAllTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                               DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ2_K, DType::kQ3_K,
                               DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kQ8_K};

struct Tensor {
  std::unique_ptr<Buffer> buffer;
  TensorView view;
};

// Rows `pad` bytes apart beyond their size, after `offset` leading bytes; zero-filled first, so
// that the result never depends on whether a device's alloc() clears memory.
Tensor make(Device& dev, DType dtype, int64_t rows, int64_t cols, const void* data, size_t pad = 0,
            size_t offset = 0) {
  const size_t rb = *row_bytes(dtype, static_cast<uint64_t>(cols));
  const size_t stride = rb + pad;
  Tensor t;
  const size_t bytes = offset + stride * static_cast<size_t>(rows);
  t.buffer = dev.alloc(bytes);
  t.view = TensorView{t.buffer.get(), offset, dtype, rows, cols, stride};
  std::vector<uint8_t> image(bytes, 0);
  if (data != nullptr) {
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(image.data() + offset + static_cast<size_t>(r) * stride,
                  static_cast<const uint8_t*>(data) + static_cast<size_t>(r) * rb, rb);
    }
  }
  dev.upload(*t.buffer, 0, image.data(), bytes);
  return t;
}

Tensor make_f32(Device& dev, int64_t rows, int64_t cols, const std::vector<float>& v,
                size_t pad = 0) {
  return make(dev, DType::kF32, rows, cols, v.empty() ? nullptr : v.data(), pad);
}

// The rows of a tensor as F32 (dequantized), padding dropped.
std::vector<float> read(Device& dev, const Tensor& t) {
  const size_t rb = *row_bytes(t.view.dtype, static_cast<uint64_t>(t.view.cols));
  std::vector<uint8_t> raw(rb);
  std::vector<float> out(static_cast<size_t>(t.view.rows * t.view.cols));
  for (int64_t r = 0; r < t.view.rows; ++r) {
    dev.download(*t.buffer, t.view.offset + static_cast<size_t>(r) * t.view.row_stride, raw.data(),
                 rb);
    dequantize_row(t.view.dtype, raw.data(), out.data() + r * t.view.cols, t.view.cols);
  }
  return out;
}

std::vector<float> uniform(std::mt19937& rng, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// `den_floor` keeps a result made of sums that nearly cancel from counting as a huge relative
// error: the squared error is then measured against the size of the terms instead.
double nmse(const std::vector<float>& got, const std::vector<float>& want, double den_floor = 0.0) {
  if (got.size() != want.size()) return INFINITY;
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  if (std::isnan(num)) return INFINITY;
  den = std::max(den, den_floor);
  if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
  return num / den;
}

// One op x dtype in progress: pools squared errors over its shapes.
class Case {
 public:
  Case(OpKind op, DType dtype) {
    r_.op = op;
    r_.dtype = dtype;
    r_.limit = nmse_limit(op, dtype);
  }
  void add(const std::string& shape, const std::vector<float>& got, const std::vector<float>& want,
           double den_floor = 0.0) {
    ++r_.shapes;
    const double e = nmse(got, want, den_floor);
    r_.worst = std::max(r_.worst, e);
    if (e > kSingleFactor * r_.limit && r_.failure.empty()) {
      r_.failure = fmt::format("{}: nmse {:.3g} above {:.3g}", shape, e, kSingleFactor * r_.limit);
    }
    for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
      const double d = static_cast<double>(got[i]) - want[i];
      num_ += d * d;
      den_ += static_cast<double>(want[i]) * want[i];
    }
  }
  void fail(const std::string& shape, const std::string& what) {
    if (r_.failure.empty()) r_.failure = fmt::format("{}: {}", shape, what);
  }
  CaseResult finish() {
    r_.error = den_ == 0.0 ? (num_ == 0.0 ? 0.0 : INFINITY) : num_ / den_;
    if (std::isnan(num_)) r_.error = INFINITY;
    if (r_.failure.empty() && r_.shapes == 0) r_.failure = "no shape ran";
    if (r_.failure.empty() && !(r_.error <= r_.limit)) {
      r_.failure = fmt::format("pooled nmse {:.3g} above {:.3g}", r_.error, r_.limit);
    }
    return r_;
  }

 private:
  CaseResult r_;
  double num_ = 0.0, den_ = 0.0;
};

// Runs `body(device, stream)` -> output on the device under test and on the reference; adds the
// pair to `c`, or records the exception.
class Runner {
 public:
  Runner(Device& dev, Depth depth, uint32_t seed)
      : dev_(dev), ref_(make_reference_device()), depth_(depth), rng_(seed) {
    dev_stream_ = dev_.create_stream();
    ref_stream_ = ref_->create_stream();
  }

  template <typename Body>
  void both(Case& c, const std::string& shape, Body&& body, double den_floor = 0.0) {
    try {
      std::vector<float> got = body(dev_, *dev_stream_);
      std::vector<float> want = body(*ref_, *ref_stream_);
      c.add(shape, got, want, den_floor);
    } catch (const std::exception& e) {
      c.fail(shape, e.what());
    }
  }

  bool full() const { return depth_ == Depth::kFull; }
  std::mt19937& rng() { return rng_; }

  void matmul(Case& c, DType t);
  void get_rows(Case& c, DType t);
  void set_rows(Case& c, DType t);
  void row_op(Case& c, OpKind op);
  void rope(Case& c);
  void attention(Case& c, DType pool_type);

 private:
  Device& dev_;
  std::unique_ptr<Device> ref_;
  std::unique_ptr<Stream> dev_stream_, ref_stream_;
  Depth depth_;
  std::mt19937 rng_;
};

// Half the expected sum of squared outputs for dot products of unrelated vectors:
// sum over (t, i) of |x_t|^2 |w_i|^2 / k.
double dot_scale(const std::vector<float>& x, const std::vector<uint8_t>& w, DType t, int64_t n,
                 int64_t m, int64_t k) {
  const size_t rb = *row_bytes(t, static_cast<uint64_t>(k));
  std::vector<float> row(static_cast<size_t>(k));
  double xs = 0.0, ws = 0.0;
  for (int64_t i = 0; i < n * k; ++i) xs += static_cast<double>(x[i]) * x[i];
  for (int64_t i = 0; i < m; ++i) {
    dequantize_row(t, w.data() + static_cast<size_t>(i) * rb, row.data(), k);
    for (float v : row) ws += static_cast<double>(v) * v;
  }
  return 0.5 * xs * ws / static_cast<double>(k);
}

void Runner::matmul(Case& c, DType t) {
  const int64_t b = dtype_info(t).block_size;
  std::vector<int64_t> ks = b == 1       ? std::vector<int64_t>{1, 7, 33, 97, 160}
                            : b == kQK_K ? std::vector<int64_t>{256, 768}
                                         : std::vector<int64_t>{32, 96, 224, 608};
  std::vector<int64_t> ns{1, 3, 7, 17}, ms{1, 5, 19, 37};
  if (!full()) {
    ks = {ks[1 % ks.size()]};
    ns = {1, 3};
    ms = {5, 19};
  }
  for (int64_t k : ks) {
    for (int64_t n : ns) {
      for (int64_t m : ms) {
        const std::vector<uint8_t> w = random_rows(t, m, k, rng_);
        const std::vector<float> x = uniform(rng_, static_cast<size_t>(n * k));
        both(
            c, fmt::format("n={} m={} k={}", n, m, k),
            [&](Device& d, Stream& s) {
              Tensor wt = make(d, t, m, k, w.data(), /*pad=*/4, /*offset=*/64);
              Tensor xt = make_f32(d, n, k, x, /*pad=*/12);
              Tensor out = make_f32(d, n, m, {}, /*pad=*/8);
              s.matmul(xt.view, wt.view, out.view);
              s.synchronize();
              return read(d, out);
            },
            dot_scale(x, w, t, n, m, k));
      }
      // Two weights of one input in one call (the decoder's q/k/v and gate/up), outputs
      // concatenated; on devices that fuse them this is a path of its own.
      const int64_t m0 = ms.front(), m1 = ms.back();
      const std::vector<uint8_t> w0 = random_rows(t, m0, k, rng_), w1 = random_rows(t, m1, k, rng_);
      const std::vector<float> x = uniform(rng_, static_cast<size_t>(n * k));
      both(
          c, fmt::format("shared input n={} m={}+{} k={}", n, m0, m1, k),
          [&](Device& d, Stream& s) {
            Tensor wt0 = make(d, t, m0, k, w0.data(), 4, 64), wt1 = make(d, t, m1, k, w1.data());
            Tensor xt = make_f32(d, n, k, x, 12);
            Tensor out0 = make_f32(d, n, m0, {}, 8), out1 = make_f32(d, n, m1, {});
            const TensorView ws[] = {wt0.view, wt1.view}, outs[] = {out0.view, out1.view};
            s.matmul_shared_input(xt.view, ws, outs);
            s.synchronize();
            std::vector<float> got = read(d, out0);
            const std::vector<float> second = read(d, out1);
            got.insert(got.end(), second.begin(), second.end());
            return got;
          },
          dot_scale(x, w0, t, n, m0, k) + dot_scale(x, w1, t, n, m1, k));
    }
  }
}

void Runner::get_rows(Case& c, DType t) {
  const int64_t b = dtype_info(t).block_size;
  const std::vector<int64_t> ks =
      b == 1 ? std::vector<int64_t>{37, 64} : std::vector<int64_t>{2 * b};
  for (int64_t k : ks) {
    const std::vector<uint8_t> table = random_rows(t, 9, k, rng_);
    const std::vector<int32_t> ids = {8, 0, 3, 3, 7};
    both(c, fmt::format("k={}", k), [&](Device& d, Stream& s) {
      Tensor tt = make(d, t, 9, k, table.data(), 4, 32);
      Tensor out = make_f32(d, static_cast<int64_t>(ids.size()), k, {}, 4);
      s.get_rows(tt.view, ids, out.view);
      s.synchronize();
      return read(d, out);
    });
  }
}

void Runner::set_rows(Case& c, DType t) {
  const int64_t b = dtype_info(t).block_size;
  std::vector<int64_t> ks = b == 1 ? std::vector<int64_t>{24, 7} : std::vector<int64_t>{b, 3 * b};
  if (b == kQK_K || !full()) ks.resize(1);
  // Distinct ids, then repeated ids (the last source row wins).
  const std::vector<std::vector<int32_t>> id_sets = {{4, 1, 6}, {2, 5, 2}};
  for (int64_t k : ks) {
    for (const auto& ids : id_sets) {
      const auto n = static_cast<int64_t>(ids.size());
      const std::vector<float> src = uniform(rng_, static_cast<size_t>(n * k), -2.0f, 2.0f);
      both(c, fmt::format("k={} ids={}", k, fmt::join(ids, ",")), [&](Device& d, Stream& s) {
        Tensor st = make_f32(d, n, k, src, 4);
        Tensor dst = make(d, t, 7, k, nullptr, 4, 16);
        s.set_rows(st.view, ids, dst.view);
        s.synchronize();
        return read(d, dst);
      });
    }
  }
}

void Runner::row_op(Case& c, OpKind op) {
  std::vector<int64_t> rows_set{1, 3, 17, 70}, cols_set{1, 7, 64, 576};
  if (!full()) {
    rows_set = {3};
    cols_set = {7, 64};
  }
  for (int64_t rows : rows_set) {
    for (int64_t cols : cols_set) {
      const auto n = static_cast<size_t>(rows * cols);
      const std::vector<float> a = uniform(rng_, n, -4.0f, 4.0f);
      const std::vector<float> b = uniform(rng_, n, -4.0f, 4.0f);
      const std::vector<float> w = uniform(rng_, static_cast<size_t>(cols));
      // Variant 0: separate output; 1: broadcast b / in place, where the op has one.
      for (int variant = 0; variant < 2; ++variant) {
        const std::string shape = fmt::format("rows={} cols={}{}", rows, cols,
                                              variant == 1 ? " (in place / broadcast)" : "");
        both(c, shape, [&](Device& d, Stream& s) {
          Tensor ta = make_f32(d, rows, cols, a, 4);
          Tensor tb = variant == 1 ? make_f32(d, 1, cols, w) : make_f32(d, rows, cols, b);
          Tensor tw = make_f32(d, 1, cols, w);
          Tensor out = make_f32(d, rows, cols, {}, 8);
          const TensorView& o = variant == 1 ? ta.view : out.view;
          switch (op) {
            case OpKind::kRmsNorm:
              s.rms_norm(ta.view, tw.view, 1e-5f, o);
              break;
            case OpKind::kSwiGlu:
              s.swiglu(ta.view, variant == 1 ? ta.view : tb.view, o);
              break;
            case OpKind::kAdd:
              s.add(ta.view, tb.view, o);
              break;
            case OpKind::kMul:
              s.mul(ta.view, tb.view, o);
              break;
            case OpKind::kScale:
              s.scale(ta.view, variant == 1 ? 3.5f : -0.37f, o);
              break;
            case OpKind::kSoftmax:
              s.softmax(ta.view);
              break;
            default:
              LUZAO_CHECK(false);
          }
          s.synchronize();
          return read(d, variant == 1 || op == OpKind::kSoftmax ? ta : out);
        });
      }
    }
  }
}

void Runner::rope(Case& c) {
  struct Shape {
    int head_dim, rot_dim;
  };
  std::vector<Shape> shapes{{64, 64}, {64, 32}, {40, 40}, {128, 64}};
  if (!full()) shapes.resize(1);
  const std::vector<int32_t> pos = {0, 1, 2, 5, 17, 100, 511, 512, 1000, 2047, 3};
  for (bool neox : {false, true}) {
    for (const Shape& sh : shapes) {
      const RopeParams p{.n_heads = 3,
                         .head_dim = sh.head_dim,
                         .rot_dim = sh.rot_dim,
                         .freq_base = neox ? 1000000.0f : 10000.0f,
                         .neox = neox};
      const auto rows = static_cast<int64_t>(pos.size());
      const int64_t cols = 3 * sh.head_dim;
      const std::vector<float> x = uniform(rng_, static_cast<size_t>(rows * cols));
      both(c, fmt::format("neox={} head_dim={} rot_dim={}", neox, sh.head_dim, sh.rot_dim),
           [&](Device& d, Stream& s) {
             Tensor t = make_f32(d, rows, cols, x, 4);
             s.rope(t.view, pos, p);
             s.synchronize();
             return read(d, t);
           });
    }
  }
}

// Three sequences share one pool of 16-token pages handed out in shuffled order; the query batch
// mixes a prefill (every token of sequence 1) with the last token of the others.
void Runner::attention(Case& c, DType pool_type) {
  constexpr int kPage = 16;
  constexpr int kMaxBlocks = 4;
  const std::vector<int32_t> lens =
      full() ? std::vector<int32_t>{1, 17, 45} : std::vector<int32_t>{3, 9, 20};
  std::vector<int> ratios{1, 3, 4}, head_dims{64, 40, 128};
  if (pool_type == DType::kQ8_0) head_dims = {64, 32, 128};  // heads are whole Q8_0 blocks
  if (!full()) {
    ratios = {2};
    head_dims = {64};
  }
  for (int ratio : ratios) {
    for (int head_dim : head_dims) {
      const int n_kv = 2;
      const int n_heads = n_kv * ratio;
      const int n_pages = 12;
      std::vector<int32_t> pages(n_pages);
      std::iota(pages.begin(), pages.end(), 0);
      std::shuffle(pages.begin(), pages.end(), rng_);
      std::vector<int32_t> table(lens.size() * kMaxBlocks, -1);
      size_t next = 0;
      for (size_t s = 0; s < lens.size(); ++s) {
        for (int b = 0; b < (lens[s] + kPage - 1) / kPage; ++b) {
          table[s * kMaxBlocks + b] = pages[next++];
        }
      }
      const int64_t kv_cols = static_cast<int64_t>(n_kv) * head_dim;
      const int64_t pool_rows = int64_t{n_pages} * kPage;
      // Pools filled on the host in their storage type; unused rows stay random too.
      const std::vector<float> kf = uniform(rng_, static_cast<size_t>(pool_rows * kv_cols), -2, 2);
      const std::vector<float> vf = uniform(rng_, static_cast<size_t>(pool_rows * kv_cols), -2, 2);
      const size_t row = *row_bytes(pool_type, static_cast<uint64_t>(kv_cols));
      std::vector<uint8_t> kb(row * static_cast<size_t>(pool_rows)), vb(kb.size());
      for (int64_t r = 0; r < pool_rows; ++r) {
        quantize_row(pool_type, kf.data() + r * kv_cols, kb.data() + r * row, kv_cols);
        quantize_row(pool_type, vf.data() + r * kv_cols, vb.data() + r * row, kv_cols);
      }
      std::vector<int32_t> q_seq, q_pos;
      for (int t = 0; t < lens[1]; ++t) {
        q_seq.push_back(1);
        q_pos.push_back(t);
      }
      q_seq.insert(q_seq.end(), {0, 2});
      q_pos.insert(q_pos.end(), {lens[0] - 1, lens[2] - 1});
      const auto nq = static_cast<int64_t>(q_seq.size());
      const int64_t q_cols = static_cast<int64_t>(n_heads) * head_dim;
      const std::vector<float> q = uniform(rng_, static_cast<size_t>(nq * q_cols), -2, 2);
      const AttentionParams p{.n_heads = n_heads,
                              .n_kv_heads = n_kv,
                              .head_dim = head_dim,
                              .page_size = kPage,
                              .max_blocks = kMaxBlocks,
                              .scale = 1.0f / std::sqrt(static_cast<float>(head_dim)),
                              .token_seq = q_seq,
                              .token_pos = q_pos,
                              .block_table = table};
      both(c, fmt::format("gqa={} head_dim={}", ratio, head_dim), [&](Device& d, Stream& s) {
        Tensor kp = make(d, pool_type, pool_rows, kv_cols, kb.data());
        Tensor vp = make(d, pool_type, pool_rows, kv_cols, vb.data());
        Tensor qt = make_f32(d, nq, q_cols, q, 4);
        Tensor out = make_f32(d, nq, q_cols, {});
        s.attention(qt.view, kp.view, vp.view, p, out.view);
        s.synchronize();
        return read(d, out);
      });
    }
  }
}

bool plain_op(OpKind op) {
  return op != OpKind::kGetRows && op != OpKind::kMatMul && op != OpKind::kAttention &&
         op != OpKind::kSetRows;
}

}  // namespace

std::string CaseResult::name() const {
  return fmt::format("{}/{}", op_name(op), dtype_name(dtype));
}

std::span<const DType> all_dtypes() {
  return kAllTypes;
}

double nmse_limit(OpKind op, DType dtype) {
  switch (op) {
    case OpKind::kMatMul:
      switch (dtype) {
        case DType::kF32:
          return 1e-11;  // F32 accumulation in any order against double
        case DType::kF16:
          return 1e-6;  // activations may be rounded to F16
        case DType::kBF16:
          return 5e-5;  // ... or to BF16
        default:
          return 3e-4;  // ... or quantized to 8 bits per block
      }
    case OpKind::kGetRows:
      return 1e-13;  // dequantization: a rounding of d * q (+ m) at most
    case OpKind::kSetRows:
      // F16/BF16 rounding is exact (nearest even); a block quantizer may round one value the
      // other way on a tie computed with another instruction order.
      return dtype_info(dtype).block_size == 1 ? 1e-14 : 1e-6;
    case OpKind::kAttention:
      if (dtype == DType::kQ8_0) return 2e-5;      // the query may be quantized to Q8_0 (llama.cpp)
      return dtype == DType::kF32 ? 1e-10 : 2e-6;  // F16 pools: query and weights rounded to F16
    case OpKind::kRope:
      return 1e-5;  // angles by iterated F32 products (llama.cpp) against double
    case OpKind::kRmsNorm:
    case OpKind::kSwiGlu:
    case OpKind::kSoftmax:
      return 1e-11;
    case OpKind::kAdd:
    case OpKind::kMul:
    case OpKind::kScale:
      return 1e-14;  // one correctly rounded operation per element
    case OpKind::kCount:
      break;
  }
  return 0.0;
}

std::vector<CaseResult> run_op(Device& device, OpKind op, Depth depth, uint32_t seed) {
  std::vector<CaseResult> out;
  Runner runner(device, depth, seed + static_cast<uint32_t>(op) * 7919u);
  if (plain_op(op)) {
    if (!device.supports(op, DType::kF32)) return out;
    Case c(op, DType::kF32);
    if (op == OpKind::kRope) {
      runner.rope(c);
    } else {
      runner.row_op(c, op);
    }
    out.push_back(c.finish());
    return out;
  }
  for (DType t : kAllTypes) {
    if (!device.supports(op, t)) continue;
    if (op == OpKind::kAttention && t != DType::kF32 && t != DType::kF16 && t != DType::kQ8_0)
      continue;
    if (op == OpKind::kSetRows && !can_quantize(t)) continue;  // no reference conversion
    Case c(op, t);
    switch (op) {
      case OpKind::kMatMul:
        runner.matmul(c, t);
        break;
      case OpKind::kGetRows:
        runner.get_rows(c, t);
        break;
      case OpKind::kSetRows:
        runner.set_rows(c, t);
        break;
      default:
        runner.attention(c, t);
        break;
    }
    out.push_back(c.finish());
  }
  return out;
}

std::vector<CaseResult> run_all(Device& device, Depth depth, uint32_t seed) {
  std::vector<CaseResult> out;
  for (int i = 0; i < static_cast<int>(OpKind::kCount); ++i) {
    const auto op = static_cast<OpKind>(i);
    for (DType t : {DType::kF32, DType::kF16}) {
      const bool required = t == DType::kF32 || op == OpKind::kAttention || op == OpKind::kSetRows;
      if (required && !device.supports(op, t)) {
        CaseResult missing;
        missing.op = op;
        missing.dtype = t;
        missing.failure = "required but not supported";
        out.push_back(missing);
      }
    }
    std::vector<CaseResult> cases = run_op(device, op, depth, seed);
    out.insert(out.end(), cases.begin(), cases.end());
  }
  return out;
}

std::vector<uint8_t> random_rows(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  const size_t rb = *row_bytes(t, static_cast<uint64_t>(cols));
  std::vector<uint8_t> data(rb * static_cast<size_t>(rows));
  if (can_quantize(t)) {
    const std::vector<float> x = uniform(rng, static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
      quantize_row(t, x.data() + r * cols, data.data() + static_cast<size_t>(r) * rb, cols);
    }
    return data;
  }
  // Every bit pattern of a block is valid; only the fp16 scales are made small and finite.
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : data) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> scale(0.001f, 0.02f);
  const DTypeInfo& info = dtype_info(t);
  for (size_t i = 0; i < data.size() / info.block_bytes; ++i) {
    uint8_t* blk = data.data() + i * info.block_bytes;
    const uint16_t d = fp32_to_fp16(scale(rng));
    const uint16_t dmin = fp32_to_fp16(scale(rng));
    switch (t) {
      case DType::kQ2_K:
        std::memcpy(blk + offsetof(BlockQ2_K, d), &d, 2);
        std::memcpy(blk + offsetof(BlockQ2_K, dmin), &dmin, 2);
        break;
      case DType::kQ3_K:
        std::memcpy(blk + offsetof(BlockQ3_K, d), &d, 2);
        break;
      case DType::kQ4_K:
        std::memcpy(blk + offsetof(BlockQ4_K, d), &d, 2);
        std::memcpy(blk + offsetof(BlockQ4_K, dmin), &dmin, 2);
        break;
      case DType::kQ5_K:
        std::memcpy(blk + offsetof(BlockQ5_K, d), &d, 2);
        std::memcpy(blk + offsetof(BlockQ5_K, dmin), &dmin, 2);
        break;
      case DType::kQ6_K:
        std::memcpy(blk + offsetof(BlockQ6_K, d), &d, 2);
        break;
      default:
        std::memcpy(blk, &d, 2);  // the legacy formats start with their fp16 scale
        break;
    }
  }
  return data;
}

}  // namespace luzao::conformance
