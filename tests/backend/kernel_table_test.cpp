// The cpu matmul kernel tables: every portable kernel and every ISA kernel this machine can run
// against a double-precision dot of the dequantized weight and activation rows. Weights are raw
// random bits (with sane scales), so extreme codes such as a Q8_0 -128 are covered.
#include "backend/cpu/vec_dot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_math.h"
#include "core/half.h"
#include "tensor/blocks.h"
#include "tensor/quants.h"

namespace luzao {
namespace {

using cpu::KernelTable;
using cpu::MatMulKernel;

const DType kKernelTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                              DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ2_K, DType::kQ3_K,
                              DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

// Random bits, then every fp16 scale field (d, m, dmin) set to a small finite value.
std::vector<uint8_t> random_row(DType t, int64_t k, std::mt19937& rng) {
  std::vector<uint8_t> data(*row_bytes(t, static_cast<uint64_t>(k)));
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : data) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  const auto put = [&](size_t at, float v) {
    const uint16_t h = fp32_to_fp16(v);
    std::memcpy(data.data() + at, &h, 2);
  };
  if (t == DType::kF32) {
    for (int64_t i = 0; i < k; ++i) {
      const float v = val(rng);
      std::memcpy(data.data() + 4 * i, &v, 4);
    }
    return data;
  }
  if (t == DType::kF16 || t == DType::kBF16) {
    for (int64_t i = 0; i < k; ++i) {
      const uint16_t h = t == DType::kF16 ? fp32_to_fp16(val(rng)) : fp32_to_bf16(val(rng));
      std::memcpy(data.data() + 2 * i, &h, 2);
    }
    return data;
  }
  const size_t bb = dtype_info(t).block_bytes;
  for (size_t off = 0; off < data.size(); off += bb) {
    const float d = 0.001f + 0.02f * std::fabs(val(rng));
    switch (t) {
      case DType::kQ4_0:
      case DType::kQ5_0:
      case DType::kQ8_0:
        put(off, d);
        break;
      case DType::kQ4_1:
      case DType::kQ5_1:
        put(off, d);
        put(off + 2, val(rng));
        break;
      case DType::kQ2_K:
        put(off + offsetof(BlockQ2_K, d), d);
        put(off + offsetof(BlockQ2_K, dmin), d);
        break;
      case DType::kQ3_K:
        put(off + offsetof(BlockQ3_K, d), d);
        break;
      case DType::kQ4_K:
      case DType::kQ5_K:
        put(off, d);
        put(off + 2, d);
        break;
      case DType::kQ6_K:
        put(off + offsetof(BlockQ6_K, d), d);
        break;
      default:
        ADD_FAILURE() << dtype_name(t);
    }
  }
  return data;
}

// The activation row as the kernel sees it, widened back to F32.
std::vector<float> activation_as_f32(const MatMulKernel& kern, const void* act, int64_t k) {
  std::vector<float> out(static_cast<size_t>(k));
  const std::string_view name = kern.act.name;
  if (name == "f32") {
    std::memcpy(out.data(), act, static_cast<size_t>(k) * 4);
  } else if (name == "f16") {
    dequantize_row(DType::kF16, act, out.data(), k);
  } else if (name == "bf16") {
    dequantize_row(DType::kBF16, act, out.data(), k);
  } else if (name == "q8_0") {
    dequantize_row(DType::kQ8_0, act, out.data(), k);
  } else if (name == "q8_1") {
    dequantize_row_q8_1(static_cast<const BlockQ8_1*>(act), out.data(), k);
  } else if (name == "q8_K") {
    dequantize_row(DType::kQ8_K, act, out.data(), k);
  } else if (name == "q8_0x" || name == "q8_1x") {  // codes [k], then one float d per block
    const auto* qs = static_cast<const int8_t*>(act);
    const auto* d = reinterpret_cast<const float*>(qs + k);
    for (int64_t i = 0; i < k; ++i) out[i] = d[i / 32] * static_cast<float>(qs[i]);
  } else if (name == "f16x") {
    std::memcpy(out.data(), act, static_cast<size_t>(k) * 4);
  } else {
    ADD_FAILURE() << "unknown activation format " << name;
  }
  return out;
}

// Checks each kernel of `table` on random rows; returns how many kernels were checked.
int check_table(const KernelTable& table, std::mt19937& rng) {
  int checked = 0;
  for (DType t : kKernelTypes) {
    const MatMulKernel& kern = table[cpu::kernel_slot(t)];
    if (kern.dot == nullptr) continue;
    ++checked;
    const int64_t bs = dtype_info(t).block_size;
    for (int64_t k : {bs == 1 ? int64_t{13} : bs, bs == 1 ? int64_t{1} : 3 * bs,
                      bs == 1 ? int64_t{200} : 7 * bs}) {
      for (int rep = 0; rep < 8; ++rep) {
        const std::vector<uint8_t> w = random_row(t, k, rng);
        std::uniform_real_distribution<float> val(-1.0f, 1.0f);
        std::vector<float> x(static_cast<size_t>(k));
        for (float& v : x) v = val(rng);
        std::vector<uint8_t> act(kern.act.row_bytes(k) + 64);
        const void* act_ptr = x.data();
        if (kern.act.convert != nullptr) {
          kern.act.convert(x.data(), act.data(), k);
          act_ptr = act.data();
        }
        std::vector<float> wf(static_cast<size_t>(k));
        dequantize_row(t, w.data(), wf.data(), k);
        const std::vector<float> af = activation_as_f32(kern, act_ptr, k);
        double want = 0.0;
        double magnitude = 0.0;
        for (int64_t i = 0; i < k; ++i) {
          want += static_cast<double>(wf[i]) * af[i];
          magnitude += std::fabs(static_cast<double>(wf[i]) * af[i]);
        }
        double tol = 1e-5 * magnitude + 1e-30;
        // Q8_1 carries the block sum as fp16 (s), so Q4_1/Q5_1 weights see its rounding.
        const std::string_view act_name = kern.act.name;
        if (act_name == "q8_1" || act_name == "q8_1x") tol += 2e-3 * magnitude;
        const float got = kern.dot(k, w.data(), act_ptr);
        EXPECT_NEAR(got, want, tol) << dtype_name(t) << " " << kern.isa << " k=" << k;
      }
    }
  }
  return checked;
}

// The features with everything above AVX2 switched off, to test the AVX2 table on newer CPUs.
cpu::CpuFeatures avx2_only(cpu::CpuFeatures f) {
  f.avx512 = f.avx512_vnni = f.amx_int8 = false;
  return f;
}

TEST(KernelTable, PortableKernelsMatchDequantizedDot) {
  std::mt19937 rng(99);
  const KernelTable table = cpu::make_kernel_table(cpu::CpuFeatures{});
  EXPECT_EQ(check_table(table, rng), 13);
  for (DType t : kKernelTypes) EXPECT_STREQ(table[cpu::kernel_slot(t)].isa, "scalar");
  // Q8_K weights have no direct kernel: the matmul driver dequantizes them.
  EXPECT_EQ(table[cpu::kernel_slot(DType::kQ8_K)].dot, nullptr);
}

TEST(KernelTable, Avx2KernelsMatchDequantizedDot) {
  const cpu::CpuFeatures f = cpu::detect_cpu_features();
  if (!f.avx2) GTEST_SKIP() << "this CPU has no AVX2+FMA+F16C";
  std::mt19937 rng(100);
  const KernelTable table = cpu::make_kernel_table(avx2_only(f));
  EXPECT_STREQ(table[cpu::kernel_slot(DType::kQ4_1)].isa, "avx2");
  EXPECT_EQ(check_table(table, rng), 13);
}

TEST(KernelTable, Avx512VnniKernelsMatchDequantizedDot) {
  const cpu::CpuFeatures f = cpu::detect_cpu_features();
  if (!f.avx512_vnni) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  std::mt19937 rng(101);
  const KernelTable table = cpu::make_kernel_table(f);
  for (DType t : {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                  DType::kQ4_K, DType::kQ6_K, DType::kF16}) {
    EXPECT_STREQ(table[cpu::kernel_slot(t)].isa, "avx512vnni") << dtype_name(t);
    EXPECT_NE(table[cpu::kernel_slot(t)].gemm, nullptr) << dtype_name(t);
  }
  EXPECT_EQ(check_table(table, rng), 13);
}

TEST(KernelTable, Avx512Q8_0TakesMinus128) {
  const cpu::CpuFeatures f = cpu::detect_cpu_features();
  if (!f.avx512_vnni) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  const KernelTable table = cpu::make_kernel_table(f);
  const MatMulKernel& kern = table[cpu::kernel_slot(DType::kQ8_0)];
  // Two blocks of -128 weights against activations quantized to +-127 (x = +-1).
  BlockQ8_0 w[2] = {};
  for (BlockQ8_0& b : w) {
    b.d = fp32_to_fp16(1.0f);
    for (int8_t& q : b.qs) q = -128;
  }
  std::vector<float> x(64);
  for (int j = 0; j < 64; ++j) x[j] = j % 2 == 0 ? -1.0f : 1.0f;
  x[1] = -1.0f;  // 33 codes of -127, 31 of +127 -> sum = -2 * 127, times -128
  std::vector<uint8_t> act(kern.act.row_bytes(64));
  kern.act.convert(x.data(), act.data(), 64);
  const float d = fp16_to_fp32(fp32_to_fp16(1.0f / 127.0f));
  EXPECT_FLOAT_EQ(kern.dot(64, w, act.data()), d * 128.0f * 2.0f * 127.0f);
}

TEST(KernelTable, Avx2Q8_0TakesMinus128) {
  const cpu::CpuFeatures f = cpu::detect_cpu_features();
  if (!f.avx2) GTEST_SKIP() << "this CPU has no AVX2+FMA+F16C";
  const KernelTable table = cpu::make_kernel_table(avx2_only(f));
  BlockQ8_0 w{}, a{};
  w.d = fp32_to_fp16(1.0f);
  a.d = fp32_to_fp16(1.0f);
  for (int j = 0; j < 32; ++j) {
    w.qs[j] = -128;
    a.qs[j] = static_cast<int8_t>(j % 2 == 0 ? -127 : 127);
  }
  a.qs[0] = -127;
  // 16 * (-128 * -127) + 16 * (-128 * 127) = 0; then flip one pair to make it non-zero.
  a.qs[1] = -127;  // now 17 * 16256 - 15 * 16256 = 2 * 16256
  EXPECT_EQ(table[cpu::kernel_slot(DType::kQ8_0)].dot(32, &w, &a), 2.0f * 16256.0f);
}

TEST(CpuMath, Fp16WideningIsExactForEveryCode) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float a = cpu::fp16_to_f32(static_cast<uint16_t>(h));
    const float b = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(b)) {
      ASSERT_TRUE(std::isnan(a)) << h;
    } else {
      ASSERT_EQ(std::memcmp(&a, &b, 4), 0) << h;
    }
  }
}

}  // namespace
}  // namespace luzao
