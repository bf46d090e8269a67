// AVX-512 attention over an F16 or Q8_0 paged KV cache: the arithmetic of the portable kernel
// (F16: query and probabilities rounded to F16; Q8_0: neither; F32 scores, max-subtracted softmax
// summed in double, F32 accumulation of V) with 16 keys scored per step and a vector exp.
#include "backend/cpu/cpu_ops.h"

#if defined(__x86_64__)

#include <algorithm>
#include <cmath>

#include "backend/cpu/avx512_math.h"
#include "core/half.h"
#include "tensor/blocks.h"

namespace luzao::cpu {
namespace {

constexpr int kMaxHeadDim = 256;

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

// Asks for the cache lines of one head's elements [first, first + hd) of one pool row.
template <int kChunks, bool kQ8>  // plain SSE: callable from the lambdas below
inline void prefetch_row(const HostView& pool, int64_t row, size_t first) {
  constexpr size_t kBytes = kQ8 ? 16 * kChunks / 32 * sizeof(BlockQ8_0) : 32 * kChunks;
  const size_t start = kQ8 ? first / 32 * sizeof(BlockQ8_0) : 2 * first;
  const char* base = reinterpret_cast<const char*>(pool.row(row)) + start;
  for (size_t b = 0; b < kBytes; b += 64) _mm_prefetch(base + b, _MM_HINT_T0);
  _mm_prefetch(base + kBytes - 1, _MM_HINT_T0);
}

// Keys a decode step reads ahead of its use: a sequence's keys are scattered over pages and
// strided by the other heads, so the hardware prefetchers leave the loads waiting on memory
// (attention was mostly stalls before). Two chunks ahead hide the latency of a cache miss.
constexpr int32_t kPrefetchKeys = 32;

// Rows rows16[j] (-1: none, zeros) of an F16 or Q8_0 pool, elements first.., widened into
// dst[16][hd].
template <int kChunks, bool kQ8>
LUZAO_AVX512_INLINE void load_chunk(const HostView& pool, const int64_t* rows16, size_t first,
                                    float* dst) {
  constexpr int hd = 16 * kChunks;
  for (int j = 0; j < 16; ++j) {
    for (int c = 0; c < kChunks; ++c) {
      __m512 v = _mm512_setzero_ps();
      if (rows16[j] >= 0) {
        v = kQ8 ? load_q8_16(pool.row(rows16[j]), first + 16 * c)
                : load_half16(pool.row(rows16[j]) + 2 * (first + 16 * c));
      }
      _mm512_storeu_ps(dst + j * hd + 16 * c, v);
    }
  }
}

constexpr int kBlockRows = 16;  // query rows of one sequence that share each converted K/V chunk

// Rows [row0, row0 + rows) of one sequence (pages `pages`) against kv head `kvh`: every query
// head of the group, K and V converted to F32 once per 16-key chunk for all of them.
template <int kChunks, bool kQ8>  // head_dim / 16; pools in Q8_0 (else F16)
LUZAO_AVX512 void attend_block(const AttentionArgs& a, const AttentionParams& p,
                               const int32_t* pages, int64_t row0, int rows, int kvh,
                               Scratch& scratch) {
  constexpr int hd = 16 * kChunks;
  const int group = p.n_heads / p.n_kv_heads;
  const int nq = rows * group;
  int32_t max_pos = 0;
  for (int i = 0; i < rows; ++i) max_pos = std::max(max_pos, p.token_pos[row0 + i]);
  const int32_t n_keys = max_pos + 1;
  const size_t stride = (static_cast<size_t>(n_keys) + 15) / 16 * 16;  // probs per query
  // Scratch: K/V chunk [16][hd] F32, then probs [nq][stride].
  float* kv32 = scratch.get_as<float>(16 * hd + static_cast<size_t>(nq) * stride);
  float* probs = kv32 + 16 * hd;
  const size_t off = static_cast<size_t>(kvh) * hd;  // first element of the head
  const auto pool_row = [&](int32_t t) {
    return static_cast<int64_t>(pages[t / p.page_size]) * p.page_size + t % p.page_size;
  };
  const auto query = [&](int i) {  // query i: row i / group, head kvh * group + i % group
    return a.q.f32(row0 + i / group) + static_cast<int64_t>(kvh * group + i % group) * hd;
  };
  const auto output = [&](int i) {
    return a.out.f32(row0 + i / group) + static_cast<int64_t>(kvh * group + i % group) * hd;
  };
  const auto pos_of = [&](int i) { return p.token_pos[row0 + i / group]; };
  const auto chunk_rows = [&](int32_t t0, int64_t* out_rows) {
    for (int j = 0; j < 16; ++j) out_rows[j] = t0 + j < n_keys ? pool_row(t0 + j) : -1;
  };
  int64_t rows16[16];

  // Scores: 16 keys at a time, the 16 sums of one query transposed into one vector.
  const __m512 scale = _mm512_set1_ps(p.scale);
  // Walks the rows to read, K then V (index n_keys + t is V's key t), kPrefetchKeys ahead.
  int32_t fetched = 0;
  const auto prefetch_to = [&](int32_t until) {
    for (until = std::min(until, 2 * n_keys); fetched < until; ++fetched) {
      const bool is_v = fetched >= n_keys;
      prefetch_row<kChunks, kQ8>(is_v ? a.v : a.k, pool_row(is_v ? fetched - n_keys : fetched),
                                 off);
    }
  };
  for (int32_t t0 = 0; t0 < n_keys; t0 += 16) {
    prefetch_to(t0 + 16 + kPrefetchKeys);
    chunk_rows(t0, rows16);
    load_chunk<kChunks, kQ8>(a.k, rows16, off, kv32);
    for (int i = 0; i < nq; ++i) {
      if (pos_of(i) < t0) continue;
      const float* q = query(i);
      __m512 qv[kChunks];
      for (int c = 0; c < kChunks; ++c) {
        qv[c] = _mm512_loadu_ps(q + 16 * c);
        if (!kQ8) qv[c] = _mm512_cvtph_ps(_mm512_cvtps_ph(qv[c], _MM_FROUND_TO_NEAREST_INT));
      }
      __m512 acc[16];
      for (int j = 0; j < 16; ++j) {
        __m512 sum = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kv32 + j * hd));
        for (int c = 1; c < kChunks; ++c) {
          sum = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kv32 + j * hd + 16 * c), sum);
        }
        acc[j] = sum;
      }
      _mm512_storeu_ps(probs + i * stride + t0, _mm512_mul_ps(transpose_sum16(acc), scale));
    }
  }

  // Softmax of each query over its keys 0..pos: exp, sum in double, normalise, round to F16
  // (see attention.cpp).
  for (int i = 0; i < nq; ++i) {
    float* pr = probs + i * stride;
    const int32_t n = pos_of(i) + 1;
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
    for (int32_t t = 0; t < n; t += 16) {  // lanes past pos stay 0
      const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(pr + t), inv);
      _mm512_storeu_ps(pr + t,
                       kQ8 ? v : _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)));
    }
    float* o = output(i);
    for (int c = 0; c < kChunks; ++c) _mm512_storeu_ps(o + 16 * c, _mm512_setzero_ps());
  }

  // Weighted sum of V, accumulated in each query's output row.
  for (int32_t t0 = 0; t0 < n_keys; t0 += 16) {
    prefetch_to(n_keys + t0 + 16 + kPrefetchKeys);
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
          acc[c] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(kv32 + j * hd + 16 * c), acc[c]);
        }
      }
      for (int c = 0; c < kChunks; ++c) _mm512_storeu_ps(o + 16 * c, acc[c]);
    }
  }
}

using AttendFn = void (*)(const AttentionArgs&, const AttentionParams&, const int32_t*, int64_t,
                          int, int, Scratch&);

template <bool kQ8>
AttendFn pick(int head_dim) {
  switch (head_dim) {
    case 32:
      return attend_block<2, kQ8>;
    case 48:
      return kQ8 ? nullptr : attend_block<3, kQ8>;
    case 64:
      return attend_block<4, kQ8>;
    case 80:
      return kQ8 ? nullptr : attend_block<5, kQ8>;
    case 96:
      return attend_block<6, kQ8>;
    case 128:
      return attend_block<8, kQ8>;
    case 160:
      return attend_block<10, kQ8>;
    case 192:
      return attend_block<12, kQ8>;
    case 256:
      return attend_block<16, kQ8>;
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
  const AttendFn attend = p.head_dim > kMaxHeadDim ? nullptr
                          : q8                     ? pick<true>(p.head_dim)
                                                   : pick<false>(p.head_dim);
  if (attend == nullptr) return false;
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
  const int64_t units = n_blocks * p.n_kv_heads;
  ctx.pool.parallel_for_dynamic(units, 1, [&](int64_t begin, int64_t end, int thread) {
    Scratch& scratch = ctx.per_thread[static_cast<size_t>(thread)];
    for (int64_t u = begin; u < end; ++u) {
      const int64_t b = u / p.n_kv_heads;
      const int kvh = static_cast<int>(u % p.n_kv_heads);
      const int64_t r0 = starts[b];
      const int32_t seq = p.token_seq[static_cast<size_t>(r0)];
      const int32_t* pages = p.block_table.data() + static_cast<size_t>(seq) * p.max_blocks;
      attend(a, p, pages, r0, static_cast<int>(starts[b + 1] - r0), kvh, scratch);
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
