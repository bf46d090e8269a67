// Argument validation shared by the host backends (see host_ops.h).
#include "backend/host_ops.h"

#include "core/checked_math.h"
#include "core/error.h"

namespace luzao {
namespace {

size_t dtype_alignment(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kQ8_K:
      return 4;  // float fields
    default:
      return 2;  // fp16 fields
  }
}

void expect_dtype(const HostView& v, DType t, std::string_view op, std::string_view field) {
  if (v.dtype != t) {
    fail(ErrorKind::kInvalidArgument, "{}: {} has dtype {}, expected {}", op, field,
         dtype_name(v.dtype), dtype_name(t));
  }
}

void expect_shape(const HostView& v, int64_t rows, int64_t cols, std::string_view op,
                  std::string_view field) {
  if (v.rows != rows || v.cols != cols) {
    fail(ErrorKind::kInvalidArgument, "{}: {} is [{}, {}], expected [{}, {}]", op, field, v.rows,
         v.cols, rows, cols);
  }
}

HostView f32_view(const TensorView& t, std::string_view op, std::string_view field) {
  HostView v = host_view(t, op, field);
  expect_dtype(v, DType::kF32, op, field);
  return v;
}

}  // namespace

bool host_can_dequantize(DType type) noexcept {
  switch (type) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ8_0:
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
    case DType::kQ8_K:
      return true;
  }
  return false;
}

bool host_can_store(DType type) noexcept {
  return type == DType::kF32 || type == DType::kF16 || type == DType::kBF16 || can_quantize(type);
}

bool host_supports(OpKind op, DType type) noexcept {
  switch (op) {
    case OpKind::kGetRows:
    case OpKind::kMatMul:
      return host_can_dequantize(type);
    case OpKind::kAttention:
      return type == DType::kF32 || type == DType::kF16 || type == DType::kQ8_0;
    case OpKind::kSetRows:
      return host_can_store(type);
    case OpKind::kRmsNorm:
    case OpKind::kRope:
    case OpKind::kSwiGlu:
    case OpKind::kAdd:
    case OpKind::kMul:
    case OpKind::kScale:
    case OpKind::kSoftmax:
      return type == DType::kF32;
    case OpKind::kCount:
      break;
  }
  return false;
}

HostView host_view(const TensorView& t, std::string_view op, std::string_view field) {
  if (t.buffer == nullptr) fail(ErrorKind::kInvalidArgument, "{}: {} has no buffer", op, field);
  if (!host_can_dequantize(t.dtype)) {
    fail(ErrorKind::kInvalidArgument, "{}: {} has unknown dtype id {}", op, field,
         static_cast<uint32_t>(t.dtype));
  }
  if (t.rows < 0 || t.cols < 0) {
    fail(ErrorKind::kInvalidArgument, "{}: {} has negative shape [{}, {}]", op, field, t.rows,
         t.cols);
  }
  const auto rb = row_bytes(t.dtype, static_cast<uint64_t>(t.cols));
  if (!rb) {
    fail(ErrorKind::kInvalidArgument, "{}: {} has {} columns, not a multiple of the {} block of {}",
         op, field, t.cols, dtype_name(t.dtype), dtype_info(t.dtype).block_size);
  }
  const size_t align = dtype_alignment(t.dtype);
  if (t.offset % align != 0 || (t.rows > 1 && t.row_stride % align != 0)) {
    fail(ErrorKind::kInvalidArgument, "{}: {} offset {} / row stride {} not {}-byte aligned", op,
         field, t.offset, t.row_stride, align);
  }
  if (t.rows > 1 && t.row_stride < *rb) {
    fail(ErrorKind::kInvalidArgument, "{}: {} row stride {} is below the row size {}", op, field,
         t.row_stride, *rb);
  }
  std::optional<uint64_t> end = t.offset;
  if (t.rows > 0) {
    const auto last = checked_mul(static_cast<uint64_t>(t.rows - 1), t.row_stride);
    end = last ? checked_add(t.offset, *last) : std::nullopt;
    if (end) end = checked_add(*end, *rb);
  }
  if (!end || *end > t.buffer->size()) {
    fail(ErrorKind::kInvalidArgument,
         "{}: {} ([{}, {}] {} at offset {}) overruns its {}-byte buffer", op, field, t.rows, t.cols,
         dtype_name(t.dtype), t.offset, t.buffer->size());
  }
  auto* base = static_cast<std::byte*>(t.buffer->host_data());
  if (base == nullptr && t.buffer->size() != 0) {
    fail(ErrorKind::kInvalidArgument, "{}: {} is not in host memory (buffer of another device)", op,
         field);
  }
  return HostView{base == nullptr ? nullptr : base + t.offset, t.dtype, t.rows, t.cols,
                  t.row_stride};
}

GetRowsArgs check_get_rows(const TensorView& table, std::span<const int32_t> ids,
                           const TensorView& out) {
  constexpr std::string_view op = "get_rows";
  GetRowsArgs a{host_view(table, op, "table"), f32_view(out, op, "out")};
  expect_shape(a.out, static_cast<int64_t>(ids.size()), a.table.cols, op, "out");
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= a.table.rows) {
      fail(ErrorKind::kInvalidArgument, "{}: ids[{}] = {} is outside the table's {} rows", op, i,
           ids[i], a.table.rows);
    }
  }
  return a;
}

RmsNormArgs check_rms_norm(const TensorView& x, const TensorView& weight, float eps,
                           const TensorView& out) {
  constexpr std::string_view op = "rms_norm";
  RmsNormArgs a{f32_view(x, op, "x"), f32_view(weight, op, "weight"), f32_view(out, op, "out")};
  expect_shape(a.weight, 1, a.x.cols, op, "weight");
  expect_shape(a.out, a.x.rows, a.x.cols, op, "out");
  if (!(eps >= 0.0f)) fail(ErrorKind::kInvalidArgument, "{}: eps {} is not >= 0", op, eps);
  return a;
}

MatMulArgs check_matmul(const TensorView& x, const TensorView& w, const TensorView& out) {
  constexpr std::string_view op = "matmul";
  MatMulArgs a{f32_view(x, op, "x"), host_view(w, op, "w"), f32_view(out, op, "out")};
  if (a.w.cols != a.x.cols) {
    fail(ErrorKind::kInvalidArgument, "{}: x has {} columns but w has {}", op, a.x.cols, a.w.cols);
  }
  expect_shape(a.out, a.x.rows, a.w.rows, op, "out");
  return a;
}

HostView check_rope(const TensorView& x, std::span<const int32_t> positions, const RopeParams& p) {
  constexpr std::string_view op = "rope";
  HostView v = f32_view(x, op, "x");
  if (p.n_heads <= 0 || p.head_dim <= 0 || p.rot_dim <= 0 || p.rot_dim > p.head_dim ||
      p.rot_dim % 2 != 0) {
    fail(ErrorKind::kInvalidArgument, "{}: bad params n_heads={} head_dim={} rot_dim={}", op,
         p.n_heads, p.head_dim, p.rot_dim);
  }
  if (!(p.freq_base > 0.0f)) {
    fail(ErrorKind::kInvalidArgument, "{}: freq_base {} is not positive", op, p.freq_base);
  }
  expect_shape(v, v.rows, static_cast<int64_t>(p.n_heads) * p.head_dim, op, "x");
  if (static_cast<int64_t>(positions.size()) != v.rows) {
    fail(ErrorKind::kInvalidArgument, "{}: {} positions for {} rows", op, positions.size(), v.rows);
  }
  return v;
}

AttentionArgs check_attention(const TensorView& q, const TensorView& k_pool,
                              const TensorView& v_pool, const AttentionParams& p,
                              const TensorView& out) {
  constexpr std::string_view op = "attention";
  AttentionArgs a{f32_view(q, op, "q"), host_view(k_pool, op, "k_pool"),
                  host_view(v_pool, op, "v_pool"), f32_view(out, op, "out")};
  if (p.n_heads <= 0 || p.n_kv_heads <= 0 || p.n_heads % p.n_kv_heads != 0 || p.head_dim <= 0 ||
      p.page_size <= 0 || p.max_blocks <= 0) {
    fail(ErrorKind::kInvalidArgument,
         "{}: bad params n_heads={} n_kv_heads={} head_dim={} page_size={} max_blocks={}", op,
         p.n_heads, p.n_kv_heads, p.head_dim, p.page_size, p.max_blocks);
  }
  for (const HostView* pool : {&a.k, &a.v}) {
    const char* name = pool == &a.k ? "k_pool" : "v_pool";
    if (pool->dtype != DType::kF32 && pool->dtype != DType::kF16 && pool->dtype != DType::kQ8_0) {
      fail(ErrorKind::kInvalidArgument, "{}: {} has dtype {}, expected f32, f16 or q8_0", op, name,
           dtype_name(pool->dtype));
    }
    // A Q8_0 head is read as whole 32-value blocks, so heads must start and end on blocks.
    if (pool->dtype == DType::kQ8_0 && p.head_dim % 32 != 0) {
      fail(ErrorKind::kUnsupported,
           "{}: a q8_0 KV cache needs a head size that is a multiple of 32 (this model's is {})",
           op, p.head_dim);
    }
    if (pool->cols != static_cast<int64_t>(p.n_kv_heads) * p.head_dim) {
      fail(ErrorKind::kInvalidArgument, "{}: {} has {} columns, expected n_kv_heads*head_dim = {}",
           op, name, pool->cols, static_cast<int64_t>(p.n_kv_heads) * p.head_dim);
    }
  }
  if (a.k.rows != a.v.rows) {
    fail(ErrorKind::kInvalidArgument, "{}: k_pool has {} rows but v_pool {}", op, a.k.rows,
         a.v.rows);
  }
  a.pool_pages = a.k.rows / p.page_size;
  const int64_t width = static_cast<int64_t>(p.n_heads) * p.head_dim;
  expect_shape(a.q, a.q.rows, width, op, "q");
  expect_shape(a.out, a.q.rows, width, op, "out");
  const auto n = static_cast<size_t>(a.q.rows);
  if (p.token_seq.size() != n || p.token_pos.size() != n) {
    fail(ErrorKind::kInvalidArgument, "{}: token_seq has {} and token_pos {} entries for {} rows",
         op, p.token_seq.size(), p.token_pos.size(), n);
  }
  if (p.block_table.size() % static_cast<size_t>(p.max_blocks) != 0) {
    fail(ErrorKind::kInvalidArgument, "{}: block_table has {} entries, not a multiple of {}", op,
         p.block_table.size(), p.max_blocks);
  }
  const auto n_seqs =
      static_cast<int64_t>(p.block_table.size() / static_cast<size_t>(p.max_blocks));
  for (size_t i = 0; i < n; ++i) {
    const int32_t s = p.token_seq[i];
    const int32_t pos = p.token_pos[i];
    if (s < 0 || s >= n_seqs) {
      fail(ErrorKind::kInvalidArgument, "{}: token_seq[{}] = {} outside the {} sequences", op, i, s,
           n_seqs);
    }
    if (pos < 0 || pos / p.page_size >= p.max_blocks) {
      fail(ErrorKind::kInvalidArgument, "{}: token_pos[{}] = {} outside 0..{}", op, i, pos,
           static_cast<int64_t>(p.max_blocks) * p.page_size - 1);
    }
    for (int32_t b = 0; b <= pos / p.page_size; ++b) {
      const int32_t page = p.block_table[static_cast<size_t>(s) * p.max_blocks + b];
      if (page < 0 || page >= a.pool_pages) {
        fail(ErrorKind::kInvalidArgument,
             "{}: block_table[{}][{}] = {} outside the pool's {} pages (row {})", op, s, b, page,
             a.pool_pages, i);
      }
    }
  }
  return a;
}

TernaryArgs check_swiglu(const TensorView& gate, const TensorView& up, const TensorView& out) {
  constexpr std::string_view op = "swiglu";
  TernaryArgs a{f32_view(gate, op, "gate"), f32_view(up, op, "up"), f32_view(out, op, "out")};
  expect_shape(a.b, a.a.rows, a.a.cols, op, "up");
  expect_shape(a.out, a.a.rows, a.a.cols, op, "out");
  return a;
}

TernaryArgs check_binary(std::string_view op, const TensorView& a_, const TensorView& b_,
                         const TensorView& out) {
  TernaryArgs a{f32_view(a_, op, "a"), f32_view(b_, op, "b"), f32_view(out, op, "out")};
  if (a.b.cols != a.a.cols || (a.b.rows != a.a.rows && a.b.rows != 1)) {
    fail(ErrorKind::kInvalidArgument, "{}: b is [{}, {}], expected [{}, {}] or [1, {}]", op,
         a.b.rows, a.b.cols, a.a.rows, a.a.cols, a.a.cols);
  }
  expect_shape(a.out, a.a.rows, a.a.cols, op, "out");
  return a;
}

UnaryArgs check_scale(const TensorView& x, const TensorView& out) {
  constexpr std::string_view op = "scale";
  UnaryArgs a{f32_view(x, op, "x"), f32_view(out, op, "out")};
  expect_shape(a.out, a.x.rows, a.x.cols, op, "out");
  return a;
}

HostView check_softmax(const TensorView& x) {
  return f32_view(x, "softmax", "x");
}

SetRowsArgs check_set_rows(const TensorView& src, std::span<const int32_t> row_ids,
                           const TensorView& dst) {
  constexpr std::string_view op = "set_rows";
  SetRowsArgs a{f32_view(src, op, "src"), host_view(dst, op, "dst")};
  if (!host_can_store(a.dst.dtype)) {
    fail(ErrorKind::kInvalidArgument, "{}: cannot convert to dst dtype {}", op,
         dtype_name(a.dst.dtype));
  }
  if (a.dst.cols != a.src.cols) {
    fail(ErrorKind::kInvalidArgument, "{}: src has {} columns but dst has {}", op, a.src.cols,
         a.dst.cols);
  }
  if (static_cast<int64_t>(row_ids.size()) != a.src.rows) {
    fail(ErrorKind::kInvalidArgument, "{}: {} row ids for {} source rows", op, row_ids.size(),
         a.src.rows);
  }
  for (size_t i = 0; i < row_ids.size(); ++i) {
    if (row_ids[i] < 0 || row_ids[i] >= a.dst.rows) {
      fail(ErrorKind::kInvalidArgument, "{}: row_ids[{}] = {} outside dst's {} rows", op, i,
           row_ids[i], a.dst.rows);
    }
  }
  return a;
}

}  // namespace luzao
