// AVX-512 attention over an F16 or Q8_0 paged KV cache: the arithmetic of the portable kernel
// (F16: query and probabilities rounded to F16; Q8_0: neither; F32 scores, max-subtracted softmax
// summed in double, F32 accumulation of V) with 16 keys scored per step and a vector exp. Two
// kernels: blocks of query rows (prefill) stage each 16-key chunk in F32 once for all their
// queries; a single row (decode) widens K and V rows straight into registers.
#include "backend/cpu/cpu_ops.h"

#if defined(__x86_64__)

#include <algorithm>
#include <bit>
#include <cmath>
#include <utility>

#include "backend/cpu/avx512_math.h"
#include "core/half.h"
#include "tensor/blocks.h"

namespace luzao::cpu {
namespace {

// Lane j of the result is the sum of the lanes of v[j].
LUZAO_AVX512_INLINE __m512 transpose_sum16(const __m512 (&v)[16]) {
  __m512 t[8], u[4];
  for (int i = 0; i < 8; ++i) {
    t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[i], v[i + 8], 0x44),
                         _mm512_shuffle_f32x4(v[i], v[i + 8], 0xEE));
  }
  for (int i = 0; i < 4; ++i) {
    u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(t[i], t[i + 4], 0x88),
                         _mm512_shuffle_f32x4(t[i], t[i + 4], 0xDD));
  }
  const __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(u[0], u[1]), _mm512_unpackhi_ps(u[0], u[1]));
  const __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(u[2], u[3]), _mm512_unpackhi_ps(u[2], u[3]));
  const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(1, 0, 1, 0)),
                                 _mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm512_shuffle_f32x4(r, r, _MM_SHUFFLE(3, 1, 2, 0));
}

LUZAO_AVX512_INLINE __m512 load_half16(const std::byte* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// 16 values of a Q8_0 row from element `first` (a multiple of 16): one half of one block.
LUZAO_AVX512_INLINE __m512 load_q8_16(const std::byte* row, size_t first) {
  const auto* blk = reinterpret_cast<const BlockQ8_0*>(row) + first / 32;
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->qs + first % 32));
  return _mm512_mul_ps(_mm512_set1_ps(fp16_to_fp32(blk->d)),
                       _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)));
}

// 16 elements of a pool row from element `first` (a multiple of 16), widened to F32.
template <bool kQ8>
LUZAO_AVX512_INLINE __m512 load_16(const std::byte* row, size_t first) {
  return kQ8 ? load_q8_16(row, first) : load_half16(row + 2 * first);
}

// Token t of one sequence -> its pool row.
class PagedRows {
 public:
  PagedRows(const int32_t* pages, int32_t page_size)
      : pages_(pages),
        page_size_(page_size),
        pow2_(std::has_single_bit(static_cast<uint32_t>(page_size))),
        shift_(std::countr_zero(static_cast<uint32_t>(page_size))) {}
  int64_t operator()(int32_t t) const {
    if (pow2_) {  // pages are a power of two in practice: no divisions per key
      return (static_cast<int64_t>(pages_[t >> shift_]) << shift_) | (t & (page_size_ - 1));
    }
    return static_cast<int64_t>(pages_[t / page_size_]) * page_size_ + t % page_size_;
  }

 private:
  const int32_t* pages_;
  int32_t page_size_;
  bool pow2_;
  int shift_;
};

// Keys a decode step reads ahead of its use: a sequence's keys are scattered over pages and
// strided by the other heads, so the hardware prefetchers leave the loads waiting on memory
// (attention was mostly stalls before). Four chunks ahead: with the decode kernel's faster
// arithmetic two left it waiting (decode attention 12% slower), eight were slower again.
constexpr int32_t kPrefetchKeys = 64;

// Walks the rows a kernel reads, K then V (index n_keys + t is V's key t), asking for the cache
// lines of one head's elements [first, first + hd) of each row.
template <int kChunks, bool kQ8>
class RowPrefetcher {
 public:
  RowPrefetcher(const AttentionArgs& a, const PagedRows& rows, int32_t n_keys, size_t first)
      : a_(a), rows_(rows), n_keys_(n_keys), first_(first) {}
  // Prefetches every row before index `until` not yet asked for.
  void to(int32_t until) {
    constexpr size_t kBytes = kQ8 ? 16 * kChunks / 32 * sizeof(BlockQ8_0) : 32 * kChunks;
    const size_t start = kQ8 ? first_ / 32 * sizeof(BlockQ8_0) : 2 * first_;
    for (until = std::min(until, 2 * n_keys_); fetched_ < until; ++fetched_) {
      const bool is_v = fetched_ >= n_keys_;
      const HostView& pool = is_v ? a_.v : a_.k;
      const char* base =
          reinterpret_cast<const char*>(pool.row(rows_(is_v ? fetched_ - n_keys_ : fetched_))) +
          start;
      for (size_t b = 0; b < kBytes; b += 64) _mm_prefetch(base + b, _MM_HINT_T0);
      _mm_prefetch(base + kBytes - 1, _MM_HINT_T0);
    }
  }
  // The index of V's key t.
  int32_t v(int32_t t) const { return n_keys_ + t; }

 private:
  const AttentionArgs& a_;
  const PagedRows& rows_;
  int32_t n_keys_;
  size_t first_;
  int32_t fetched_ = 0;
};

// Rows rows16[j] (-1: none, zeros) of an F16 or Q8_0 pool, elements first.., widened into
// dst[16][kHd].
template <int kChunks, bool kQ8>
LUZAO_AVX512_INLINE void load_chunk(const HostView& pool, const int64_t* rows16, size_t first,
                                    float* dst) {
  constexpr int kHd = 16 * kChunks;
  for (int j = 0; j < 16; ++j) {
    for (int c = 0; c < kChunks; ++c) {
      const __m512 v =
          rows16[j] >= 0 ? load_16<kQ8>(pool.row(rows16[j]), first + 16 * c) : _mm512_setzero_ps();
      _mm512_storeu_ps(dst + j * kHd + 16 * c, v);
    }
  }
}

// Softmax of scores pr[0, n) in place: exp, sum in double, normalise, round to F16 for an F16
// cache (see attention.cpp). Lanes from n to the next multiple of 16 become 0.
template <bool kQ8>
LUZAO_AVX512_INLINE void softmax_probs(float* pr, int32_t n) {
  const auto mask_at = [n](int32_t t) {
    return n - t >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - t)) - 1);
  };
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  for (int32_t t = 0; t < n; t += 16) {
    vmax = _mm512_mask_max_ps(vmax, mask_at(t), vmax, _mm512_loadu_ps(pr + t));
  }
  const __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
  __m512d dsum = _mm512_setzero_pd();
  for (int32_t t = 0; t < n; t += 16) {
    const __m512 e =
        _mm512_maskz_mov_ps(mask_at(t), exp_ps(_mm512_sub_ps(_mm512_loadu_ps(pr + t), vm)));
    _mm512_storeu_ps(pr + t, e);
    dsum = _mm512_add_pd(dsum, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    dsum = _mm512_add_pd(dsum, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
  }
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / _mm512_reduce_add_pd(dsum)));
  for (int32_t t = 0; t < n; t += 16) {
    const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(pr + t), inv);
    _mm512_storeu_ps(pr + t,
                     kQ8 ? v : _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)));
  }
}

// The query as the dot products see it: rounded to F16 for an F16 cache.
template <bool kQ8>
LUZAO_AVX512_INLINE __m512 load_query16(const float* q) {
  const __m512 v = _mm512_loadu_ps(q);
  return kQ8 ? v : _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

constexpr int kBlockRows = 16;  // query rows of one sequence that share each converted K/V chunk

// Rows [row0, row0 + rows) of one sequence (pages `pages`) against kv head `kvh`: every query
// head of the group, K and V converted to F32 once per 16-key chunk for all of them.
template <int kChunks, bool kQ8>  // head_dim / 16; pools in Q8_0 (else F16)
LUZAO_AVX512 void attend_block(const AttentionArgs& a, const AttentionParams& p,
                               const int32_t* pages, int64_t row0, int rows, int kvh,
                               Scratch& scratch) {
  constexpr int kHd = 16 * kChunks;
  const int group = p.n_heads / p.n_kv_heads;
  const int nq = rows * group;
  int32_t max_pos = 0;
  for (int i = 0; i < rows; ++i) max_pos = std::max(max_pos, p.token_pos[row0 + i]);
  const int32_t n_keys = max_pos + 1;
  const size_t stride = (static_cast<size_t>(n_keys) + 15) / 16 * 16;  // probs per query
  // Scratch: K/V chunk [16][kHd] F32, then probs [nq][stride].
  float* kv32 = scratch.get_as<float>(16 * kHd + static_cast<size_t>(nq) * stride);
  float* probs = kv32 + 16 * kHd;
  const size_t off = static_cast<size_t>(kvh) * kHd;  // first element of the head
  const PagedRows pool_row(pages, p.page_size);
  const auto query = [&](int i) {  // query i: row i / group, head kvh * group + i % group
    return a.q.f32(row0 + i / group) + static_cast<int64_t>(kvh * group + i % group) * kHd;
  };
  const auto output = [&](int i) {
    return a.out.f32(row0 + i / group) + static_cast<int64_t>(kvh * group + i % group) * kHd;
  };
  const auto pos_of = [&](int i) { return p.token_pos[row0 + i / group]; };
  const auto chunk_rows = [&](int32_t t0, int64_t* out_rows) {
    for (int j = 0; j < 16; ++j) out_rows[j] = t0 + j < n_keys ? pool_row(t0 + j) : -1;
  };
  int64_t rows16[16];
  RowPrefetcher<kChunks, kQ8> prefetch(a, pool_row, n_keys, off);

  // Scores: 16 keys at a time, the 16 sums of one query transposed into one vector.
  const __m512 scale = _mm512_set1_ps(p.scale);
  for (int32_t t0 = 0; t0 < n_keys; t0 += 16) {
    prefetch.to(t0 + 16 + kPrefetchKeys);
    chunk_rows(t0, rows16);
    load_chunk<kChunks, kQ8>(a.k, rows16, off, kv32);
    for (int i = 0; i < nq; ++i) {
      if (pos_of(i) < t0) continue;
      const float* q = query(i);
      __m512 qv[kChunks];
      for (int c = 0; c < kChunks; ++c) qv[c] = load_query16<kQ8>(q + 16 * c);
      __m512 acc[16];
      for (int j = 0; j < 16; ++j) {
        __m512 sum = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kv32 + j * kHd));
        for (int c = 1; c < kChunks; ++c) {
          sum = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kv32 + j * kHd + 16 * c), sum);
        }
        acc[j] = sum;
      }
      _mm512_storeu_ps(probs + i * stride + t0, _mm512_mul_ps(transpose_sum16(acc), scale));
    }
  }

  // Softmax of each query over its keys 0..pos.
  for (int i = 0; i < nq; ++i) {
    softmax_probs<kQ8>(probs + i * stride, pos_of(i) + 1);
    float* o = output(i);
    for (int c = 0; c < kChunks; ++c) _mm512_storeu_ps(o + 16 * c, _mm512_setzero_ps());
  }

  // Weighted sum of V, accumulated in each query's output row.
  for (int32_t t0 = 0; t0 < n_keys; t0 += 16) {
    prefetch.to(prefetch.v(t0 + 16 + kPrefetchKeys));
    chunk_rows(t0, rows16);
    load_chunk<kChunks, kQ8>(a.v, rows16, off, kv32);
    for (int i = 0; i < nq; ++i) {
      const int32_t n = pos_of(i) + 1;
      if (n <= t0) continue;
      const float* pr = probs + i * stride + t0;
      float* o = output(i);
      __m512 acc[kChunks];
      for (int c = 0; c < kChunks; ++c) acc[c] = _mm512_loadu_ps(o + 16 * c);
      const int keys = std::min(16, n - t0);
      for (int j = 0; j < keys; ++j) {
        const __m512 pj = _mm512_set1_ps(pr[j]);
        for (int c = 0; c < kChunks; ++c) {
          acc[c] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(kv32 + j * kHd + 16 * c), acc[c]);
        }
      }
      for (int c = 0; c < kChunks; ++c) _mm512_storeu_ps(o + 16 * c, acc[c]);
    }
  }
}

// Most query heads the decode kernel takes at once: their queries (scores) or accumulators (V)
// stay in 16 registers.
constexpr int kRowRegisters = 16;

// One query row (decode) against kv head `kvh`, for the NQ query heads head0.. of its group. Each
// K and V row is widened straight into registers and used by all NQ queries: with a handful of
// queries per row, staging chunks in F32 (attend_block) costs more than it saves. The same
// arithmetic as attend_block: per-key F32 dot products in the same order, the same softmax, V
// accumulated key by key.
template <int kChunks, int NQ, bool kQ8>
LUZAO_AVX512 void attend_row(const AttentionArgs& a, const AttentionParams& p, const int32_t* pages,
                             int64_t row, int kvh, int head0, Scratch& scratch) {
  static_assert(NQ * kChunks <= kRowRegisters);
  constexpr int kHd = 16 * kChunks;
  const int32_t n_keys = p.token_pos[row] + 1;
  const size_t stride = (static_cast<size_t>(n_keys) + 15) / 16 * 16;  // probs per query
  // Scratch: per-key partial sums [NQ][16][16], then probs [NQ][stride].
  float* partial = scratch.get_as<float>(NQ * 256 + NQ * stride);
  float* probs = partial + NQ * 256;
  const size_t off = static_cast<size_t>(kvh) * kHd;
  const PagedRows pool_row(pages, p.page_size);
  RowPrefetcher<kChunks, kQ8> prefetch(a, pool_row, n_keys, off);
  __m512 qv[NQ][kChunks];
  for (int q = 0; q < NQ; ++q) {
    const float* src = a.q.f32(row) + static_cast<int64_t>(head0 + q) * kHd;
    for (int c = 0; c < kChunks; ++c) qv[q][c] = load_query16<kQ8>(src + 16 * c);
  }

  // Scores: each key's products summed over the chunks into one vector per query, the 16
  // vectors of a chunk of keys then transposed into one vector of sums.
  const __m512 scale = _mm512_set1_ps(p.scale);
  for (int32_t t0 = 0; t0 < n_keys; t0 += 16) {
    prefetch.to(t0 + 16 + kPrefetchKeys);
    const int keys = std::min(16, n_keys - t0);
    for (int j = 0; j < 16; ++j) {
      if (j < keys) {
        const std::byte* k = a.k.row(pool_row(t0 + j));
        __m512 kv[kChunks];
        for (int c = 0; c < kChunks; ++c) kv[c] = load_16<kQ8>(k, off + 16 * c);
        for (int q = 0; q < NQ; ++q) {
          __m512 sum = _mm512_mul_ps(qv[q][0], kv[0]);
          for (int c = 1; c < kChunks; ++c) sum = _mm512_fmadd_ps(qv[q][c], kv[c], sum);
          _mm512_store_ps(partial + (q * 16 + j) * 16, sum);
        }
      } else {
        for (int q = 0; q < NQ; ++q) {
          _mm512_store_ps(partial + (q * 16 + j) * 16, _mm512_setzero_ps());
        }
      }
    }
    for (int q = 0; q < NQ; ++q) {
      __m512 sums[16];
      for (int j = 0; j < 16; ++j) sums[j] = _mm512_load_ps(partial + (q * 16 + j) * 16);
      _mm512_storeu_ps(probs + q * stride + t0, _mm512_mul_ps(transpose_sum16(sums), scale));
    }
  }
  for (int q = 0; q < NQ; ++q) softmax_probs<kQ8>(probs + q * stride, n_keys);

  // Weighted sum of V in registers.
  __m512 acc[NQ][kChunks];
  for (int q = 0; q < NQ; ++q) {
    for (int c = 0; c < kChunks; ++c) acc[q][c] = _mm512_setzero_ps();
  }
  for (int32_t t = 0; t < n_keys; ++t) {
    if (t % 16 == 0) prefetch.to(prefetch.v(t + 16 + kPrefetchKeys));
    const std::byte* v = a.v.row(pool_row(t));
    __m512 vv[kChunks];
    for (int c = 0; c < kChunks; ++c) vv[c] = load_16<kQ8>(v, off + 16 * c);
    for (int q = 0; q < NQ; ++q) {
      const __m512 pt = _mm512_set1_ps(probs[q * stride + t]);
      for (int c = 0; c < kChunks; ++c) acc[q][c] = _mm512_fmadd_ps(pt, vv[c], acc[q][c]);
    }
  }
  for (int q = 0; q < NQ; ++q) {
    float* o = a.out.f32(row) + static_cast<int64_t>(head0 + q) * kHd;
    for (int c = 0; c < kChunks; ++c) _mm512_storeu_ps(o + 16 * c, acc[q][c]);
  }
}

using AttendFn = void (*)(const AttentionArgs&, const AttentionParams&, const int32_t*, int64_t,
                          int, int, Scratch&);
using AttendRowFn = void (*)(const AttentionArgs&, const AttentionParams&, const int32_t*, int64_t,
                             int, int, Scratch&);

// The kernels of one head size: attend_block, and attend_row for 1..kRowRegisters / kChunks
// query heads at once. Tables built at compile time: attention picks one per call.
struct Kernels {
  AttendFn block = nullptr;
  AttendRowFn row[kRowRegisters + 1] = {};  // by query heads; nullptr: not instantiated
  int max_row_heads = 0;
};

template <int kChunks, bool kQ8, int... NQ>
constexpr Kernels kernels_for(std::integer_sequence<int, NQ...>) {
  Kernels k;
  k.block = attend_block<kChunks, kQ8>;
  ((k.row[NQ + 1] = attend_row<kChunks, NQ + 1, kQ8>), ...);
  k.max_row_heads = kRowRegisters / kChunks;
  return k;
}

template <int kChunks, bool kQ8>
constexpr Kernels kKernels =
    kernels_for<kChunks, kQ8>(std::make_integer_sequence<int, kRowRegisters / kChunks>());

// The kernels for `head_dim`; nullptr where there are none (Q8_0 heads must fill whole blocks).
template <bool kQ8>
const Kernels* pick(int head_dim) {
  switch (head_dim) {
    case 32:
      return &kKernels<2, kQ8>;
    case 48:
      return kQ8 ? nullptr : &kKernels<3, kQ8>;
    case 64:
      return &kKernels<4, kQ8>;
    case 80:
      return kQ8 ? nullptr : &kKernels<5, kQ8>;
    case 96:
      return &kKernels<6, kQ8>;
    case 128:
      return &kKernels<8, kQ8>;
    case 160:
      return &kKernels<10, kQ8>;
    case 192:
      return &kKernels<12, kQ8>;
    case 256:
      return &kKernels<16, kQ8>;
    default:
      return nullptr;
  }
}

}  // namespace

bool attention_avx512(CpuContext& ctx, const AttentionArgs& a, const AttentionParams& p) {
  if (!ctx.features.avx512 || a.k.dtype != a.v.dtype ||
      (a.k.dtype != DType::kF16 && a.k.dtype != DType::kQ8_0)) {
    return false;
  }
  const bool q8 = a.k.dtype == DType::kQ8_0;
  const Kernels* found = q8 ? pick<true>(p.head_dim) : pick<false>(p.head_dim);
  if (found == nullptr) return false;
  const Kernels& kernels = *found;
  // Blocks of up to kBlockRows consecutive query rows of one sequence.
  const int64_t rows = a.q.rows;
  auto* starts = ctx.shared.get_as<int64_t>(static_cast<size_t>(rows) + 1);
  int64_t n_blocks = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (r == 0 || r - starts[n_blocks - 1] == kBlockRows ||
        p.token_seq[static_cast<size_t>(r)] != p.token_seq[static_cast<size_t>(r - 1)]) {
      starts[n_blocks++] = r;
    }
  }
  starts[n_blocks] = rows;
  const int group = p.n_heads / p.n_kv_heads;
  // A block of one row takes the query heads of its group in parts of at most max_row_heads.
  const int parts = (group + kernels.max_row_heads - 1) / kernels.max_row_heads;
  const int64_t units = n_blocks * p.n_kv_heads;
  ctx.pool.parallel_for_dynamic(units, 1, [&](int64_t begin, int64_t end, int thread) {
    Scratch& scratch = ctx.per_thread[static_cast<size_t>(thread)];
    for (int64_t u = begin; u < end; ++u) {
      const int64_t b = u / p.n_kv_heads;
      const int kvh = static_cast<int>(u % p.n_kv_heads);
      const int64_t r0 = starts[b];
      const int n_rows = static_cast<int>(starts[b + 1] - r0);
      const int32_t seq = p.token_seq[static_cast<size_t>(r0)];
      const int32_t* pages = p.block_table.data() + static_cast<size_t>(seq) * p.max_blocks;
      if (n_rows > 1) {
        kernels.block(a, p, pages, r0, n_rows, kvh, scratch);
        continue;
      }
      for (int part = 0, head = kvh * group; part < parts; ++part) {
        const int heads = (group - (head - kvh * group) + (parts - part) - 1) / (parts - part);
        kernels.row[heads](a, p, pages, r0, kvh, head, scratch);
        head += heads;
      }
    }
  });
  return true;
}

}  // namespace luzao::cpu

#else

namespace luzao::cpu {
bool attention_avx512(CpuContext&, const AttentionArgs&, const AttentionParams&) {
  return false;
}
}  // namespace luzao::cpu

#endif
