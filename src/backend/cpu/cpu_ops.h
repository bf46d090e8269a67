// Op implementations of the cpu backend, called by CpuStream after argument validation
// (backend/host_ops.h). One source file per op family: matmul.cpp, attention.cpp, elementwise.cpp.
#pragma once

#include <span>
#include <vector>

#include "backend/cpu/cpu_math.h"
#include "backend/cpu/packed.h"
#include "backend/cpu/vec_dot.h"
#include "backend/cpu/worker_pool.h"
#include "backend/host_ops.h"

namespace luzao::cpu {

// What an op may use: the device's pool and kernels, and the calling stream's scratch (one area
// shared by the op, one per pool thread). Scratch only grows, so steady-state decoding allocates
// nothing.
struct CpuContext {
  WorkerPool& pool;
  const KernelTable& kernels;
  const CpuFeatures& features;  // what the non-matmul kernels may use
  Scratch& shared;
  std::vector<Scratch>& per_thread;  // indexed by the pool's thread number
};

// `packed`: the packed form of the first rows of a.w (or nullptr); its kernel takes the
// activation format of the kernel table's entry for a.w.dtype.
void matmul(CpuContext& ctx, const MatMulArgs& a, const PackedMatrix* packed = nullptr);
// Several matmuls of one input (args[i].x all the same view), packed[i] as above: the input is
// converted once and, when decoding, the rows of all of them share one pass over the pool. The
// same bits as separate matmul calls. At most 8.
void matmul_shared_input(CpuContext& ctx, std::span<const MatMulArgs> args,
                         std::span<const PackedMatrix* const> packed);
void attention(CpuContext& ctx, const AttentionArgs& a, const AttentionParams& p);
// The AVX-512 path of attention (F16 K and V); false when this call is not one it handles.
bool attention_avx512(CpuContext& ctx, const AttentionArgs& a, const AttentionParams& p);

// AVX-512 row kernels (elementwise_avx512.cpp); call only when CpuFeatures::avx512.
void swiglu_row_avx512(const float* g, const float* u, float* o, int64_t n);
void rms_norm_row_avx512(const float* x, const float* w, float* o, int64_t n, float eps);
void f32_to_f16_row_avx512(const float* s, uint16_t* d, int64_t n);

void get_rows(CpuContext& ctx, const GetRowsArgs& a, std::span<const int32_t> ids);
void rms_norm(CpuContext& ctx, const RmsNormArgs& a, float eps);
// llama.cpp's formula: theta_i = pos * base^(-2i/rot_dim) computed by repeated F32
// multiplication, so results match it to the last bit rather than the double-precision reference.
void rope(CpuContext& ctx, const HostView& x, std::span<const int32_t> positions,
          const RopeParams& p);
void swiglu(CpuContext& ctx, const TernaryArgs& a);
void add(CpuContext& ctx, const TernaryArgs& a);
void mul(CpuContext& ctx, const TernaryArgs& a);
void scale(CpuContext& ctx, const UnaryArgs& a, float s);
void softmax(CpuContext& ctx, const HostView& x);
void set_rows(CpuContext& ctx, const SetRowsArgs& a, std::span<const int32_t> row_ids);

}  // namespace luzao::cpu
