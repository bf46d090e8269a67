// cpu matmul: activations are converted once to the weight's activation format, then tiles of
// (weight rows x tokens) are spread over the pool; weights stay in their stored format.
#include <algorithm>
#include <array>

#include "core/error.h"

#include "backend/cpu/cpu_ops.h"

namespace luzao::cpu {
namespace {

constexpr int64_t kRowTile = 16;    // weight rows per tile: a few KB that stay in L1
constexpr int64_t kTokenTile = 32;  // activation rows per tile when prefilling
// Tile kernels: a task covers this many weight rows x tokens (weights ~L2-resident across the
// task's tokens); inside it the kernel's register tiles sweep the tokens for each row group.
constexpr int64_t kGemmRows = 64;
constexpr int64_t kGemmTokens = 64;
// Up to kGemmTokens tokens (one token block) run as decode: row chunks per thread, every token
// tile of a row group while its weights are in L1 (16 sequences decoded 24% faster than as
// prefill tasks, which also split the fused matmuls again).
// Float activations take 4 bytes per element: their tiles sum k in chunks of this many elements
// (in every path, so the summation order stays the same for decode and prefill), which keeps a
// task's activations and weights in L2 for long rows.
constexpr int64_t kFloatChunk = 512;

size_t align64(size_t v) {
  return (v + 63) / 64 * 64;
}

// One matmul's tile work over rows x tokens. Rows below packed->rows() go through the 16-row
// packed kernel, the rest through the kernel table's tile kernel; each output row always takes
// the same path, so results depend neither on the token count, nor on the thread count, nor on
// the other matmuls it runs with.
struct GemmJob {
  CpuContext* ctx = nullptr;
  const MatMulArgs* a = nullptr;
  const MatMulKernel* kern = nullptr;
  const PackedMatrix* packed = nullptr;
  const std::byte* act = nullptr;
  size_t act_stride = 0;

  int64_t rows_per_unit() const { return packed != nullptr ? kPackRows : kern->tile_rows; }
  int64_t tokens_per_tile() const { return packed != nullptr ? kPackTokens : kern->tile_tokens; }
  int64_t units() const { return (a->w.rows + rows_per_unit() - 1) / rows_per_unit(); }

  // Rows [r0, r1) x tokens [t0, t1).
  void run(int64_t r0, int64_t r1, int64_t t0, int64_t t1, int thread) const {
    const int64_t tr = rows_per_unit(), tt = tokens_per_tile();
    const int64_t packed_rows = packed != nullptr ? packed->rows() : 0;
    const size_t os = a->out.stride / sizeof(float);
    float* out = a->out.f32(0);
    for (int64_t r = r0; r < r1; r += tr) {
      const int64_t rows = std::min(tr, r1 - r);
      for (int64_t t = t0; t < t1; t += tt) {
        const int tokens = static_cast<int>(std::min(tt, t1 - t));
        const std::byte* at = act + static_cast<size_t>(t) * act_stride;
        float* o = out + static_cast<size_t>(t) * os + static_cast<size_t>(r);
        if (r < packed_rows) {
          packed->gemm()(a->x.cols, packed->group(r / kPackRows), at, act_stride, tokens, o, os);
          continue;
        }
        for (int64_t rr = r; rr < r + rows; rr += kern->tile_rows) {  // the unpacked remainder
          for (int64_t t2 = 0; t2 < tokens; t2 += kern->tile_tokens) {
            unpacked_tile(rr, std::min<int64_t>(kern->tile_rows, r + rows - rr),
                          at + static_cast<size_t>(t2) * act_stride,
                          std::min<int64_t>(kern->tile_tokens, tokens - t2),
                          o + static_cast<size_t>(t2) * os + static_cast<size_t>(rr - r), os,
                          thread);
          }
        }
      }
    }
  }

 private:
  void unpacked_tile(int64_t r, int64_t rows, const std::byte* at, int64_t tokens, float* o,
                     size_t os, int thread) const {
    const int64_t k = a->x.cols;
    const int64_t kc = kern->act.block_size == 1 ? std::min(k, kFloatChunk) : k;
    const size_t w_elem = dtype_info(a->w.dtype).block_bytes;  // float types: bytes per element
    const int nr = static_cast<int>(rows), nt = static_cast<int>(tokens);
    kern->gemm(kc, a->w.row(r), a->w.stride, nr, at, act_stride, nt, o, os);
    if (kc == k) return;
    float* part = ctx->per_thread[static_cast<size_t>(thread)].get_as<float>(
        static_cast<size_t>(kern->tile_rows * kern->tile_tokens));
    for (int64_t c = kc; c < k; c += kc) {
      const int64_t len = std::min(kc, k - c);
      kern->gemm(len, a->w.row(r) + static_cast<size_t>(c) * w_elem, a->w.stride, nr,
                 at + static_cast<size_t>(c) * kern->act.block_bytes, act_stride, nt, part,
                 static_cast<size_t>(nr));
      for (int t = 0; t < nt; ++t) {
        for (int i = 0; i < nr; ++i) o[static_cast<size_t>(t) * os + i] += part[t * nr + i];
      }
    }
  }
};

// Decoding (up to kGemmTokens tokens): the row units of all jobs handed out in two
// chunks per thread, so that a thread the OS has descheduled leaves its share to the others.
// Not more: each thread then streams long runs of rows, and an 8-sequence step was 8% faster
// than with four chunks per thread.
void run_decode(CpuContext& ctx, std::span<const GemmJob> jobs) {
  int64_t total = 0;
  for (const GemmJob& j : jobs) total += j.units();
  const int64_t grain = std::max<int64_t>(1, total / (2 * ctx.pool.size()));
  ctx.pool.parallel_for_dynamic(total, grain, [&](int64_t begin, int64_t end, int thread) {
    int64_t first = 0;  // the first unit of job j
    for (const GemmJob& j : jobs) {
      const int64_t units = j.units();
      const int64_t b = std::max(begin, first), e = std::min(end, first + units);
      if (b < e) {
        const int64_t tr = j.rows_per_unit();
        j.run((b - first) * tr, std::min(j.a->w.rows, (e - first) * tr), 0, j.a->x.rows, thread);
      }
      first += units;
    }
  });
}

// Prefill: tasks of kGemmRows x kGemmTokens, weights ~L2-resident across a task's tokens.
void run_prefill(CpuContext& ctx, const GemmJob& j) {
  const int64_t m = j.a->w.rows, n = j.a->x.rows;
  const int64_t row_blocks = (m + kGemmRows - 1) / kGemmRows;
  const int64_t token_blocks = (n + kGemmTokens - 1) / kGemmTokens;
  ctx.pool.parallel_for_dynamic(
      row_blocks * token_blocks, 1, [&](int64_t begin, int64_t end, int thread) {
        for (int64_t task = begin; task < end; ++task) {
          const int64_t r0 = (task % row_blocks) * kGemmRows;
          const int64_t t0 = (task / row_blocks) * kGemmTokens;
          j.run(r0, std::min(m, r0 + kGemmRows), t0, std::min(n, t0 + kGemmTokens), thread);
        }
      });
}

// Converts the rows of x into kern's activation format in the shared scratch; returns the rows
// and sets `stride`. Activations already in the format (F32 kernels) are used where they are.
const std::byte* convert_activations(CpuContext& ctx, const HostView& x, const MatMulKernel& kern,
                                     size_t& stride) {
  stride = x.stride;
  if (kern.act.convert == nullptr) return x.data;
  const int64_t n = x.rows, k = x.cols;
  stride = align64(kern.act.row_bytes(k));
  auto* buf = static_cast<std::byte*>(ctx.shared.get(static_cast<size_t>(n) * stride));
  const auto convert = [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) {
      kern.act.convert(x.f32(t), buf + static_cast<size_t>(t) * stride, k);
    }
  };
  if (n == 1) {
    convert(0, 1, 0);
  } else {
    ctx.pool.parallel_for(n, convert);
  }
  return buf;
}

}  // namespace

void matmul(CpuContext& ctx, const MatMulArgs& a, const PackedMatrix* packed) {
  const int64_t n = a.x.rows;
  const int64_t m = a.w.rows;
  const int64_t k = a.x.cols;
  if (n == 0 || m == 0) return;
  const MatMulKernel& kern = ctx.kernels[kernel_slot(a.w.dtype)];

  if (kern.dot == nullptr) {
    // No direct kernel: dequantize each weight row once and dot it with every token in F32.
    const VecDotFn dot_f32 = ctx.kernels[kernel_slot(DType::kF32)].dot;
    ctx.pool.parallel_for(m, [&](int64_t begin, int64_t end, int thread) {
      float* wrow = ctx.per_thread[static_cast<size_t>(thread)].get_as<float>(
          static_cast<size_t>(std::max<int64_t>(k, 1)));
      for (int64_t i = begin; i < end; ++i) {
        dequantize_row(a.w.dtype, a.w.row(i), wrow, k);
        for (int64_t t = 0; t < n; ++t) a.out.f32(t)[i] = dot_f32(k, wrow, a.x.f32(t));
      }
    });
    return;
  }

  size_t act_stride = 0;
  const std::byte* act = convert_activations(ctx, a.x, kern, act_stride);
  if (kern.gemm != nullptr) {
    const GemmJob job{&ctx, &a, &kern, packed, act, act_stride};
    if (n <= kGemmTokens) {
      run_decode(ctx, std::span(&job, 1));
    } else {
      run_prefill(ctx, job);
    }
    return;
  }
  const VecDotFn dot = kern.dot;
  if (n == 1) {
    ctx.pool.parallel_for(m, [&](int64_t begin, int64_t end, int) {
      float* o = a.out.f32(0);
      for (int64_t i = begin; i < end; ++i) o[i] = dot(k, a.w.row(i), act);
    });
    return;
  }
  const int64_t row_tiles = (m + kRowTile - 1) / kRowTile;
  const int64_t token_tiles = (n + kTokenTile - 1) / kTokenTile;
  ctx.pool.parallel_for_dynamic(row_tiles * token_tiles, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t r0 = (tile % row_tiles) * kRowTile;
      const int64_t r1 = std::min(m, r0 + kRowTile);
      const int64_t t0 = (tile / row_tiles) * kTokenTile;
      const int64_t t1 = std::min(n, t0 + kTokenTile);
      for (int64_t t = t0; t < t1; ++t) {
        const std::byte* at = act + static_cast<size_t>(t) * act_stride;
        float* o = a.out.f32(t);
        for (int64_t i = r0; i < r1; ++i) o[i] = dot(k, a.w.row(i), at);
      }
    }
  });
}

void matmul_shared_input(CpuContext& ctx, std::span<const MatMulArgs> args,
                         std::span<const PackedMatrix* const> packed) {
  LUZAO_CHECK(args.size() == packed.size());
  if (args.empty()) return;
  const MatMulKernel& kern = ctx.kernels[kernel_slot(args[0].w.dtype)];
  bool together = kern.gemm != nullptr && kern.dot != nullptr;
  for (const MatMulArgs& a : args) {
    const MatMulKernel& other = ctx.kernels[kernel_slot(a.w.dtype)];
    together = together && other.gemm != nullptr && other.dot != nullptr &&
               other.act.convert == kern.act.convert && a.w.rows > 0;
  }
  if (!together || args[0].x.rows == 0) {  // different activation formats: one at a time
    for (size_t i = 0; i < args.size(); ++i) matmul(ctx, args[i], packed[i]);
    return;
  }
  size_t act_stride = 0;
  const std::byte* act = convert_activations(ctx, args[0].x, kern, act_stride);
  constexpr size_t kMaxJobs = 8;
  LUZAO_CHECK(args.size() <= kMaxJobs);
  std::array<GemmJob, kMaxJobs> jobs;
  bool decode = true;
  for (size_t i = 0; i < args.size(); ++i) {
    jobs[i] = {&ctx,      &args[i], &ctx.kernels[kernel_slot(args[i].w.dtype)],
               packed[i], act,      act_stride};
    decode = decode && args[i].x.rows <= kGemmTokens;
  }
  if (decode) {
    run_decode(ctx, std::span(jobs.data(), args.size()));
    return;
  }
  for (size_t i = 0; i < args.size(); ++i) run_prefill(ctx, jobs[i]);
}

}  // namespace luzao::cpu
