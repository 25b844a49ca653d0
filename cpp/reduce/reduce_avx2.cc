// SPDX-License-Identifier: Apache-2.0
// The AVX2 kernels: generic.inl vectorized for AVX2 by `#pragma GCC target` (this file only;
// the rest of the binary stays baseline x86-64), plus half-precision kernels written with
// intrinsics: float16 through F16C (8 conversions per instruction, where the portable code needs
// a dozen integer operations and a branch per element) and bfloat16 through integer shifts.
// reduce.cc calls into this table only after checking the CPU has avx2, fma and f16c.
// Cost of every kernel: one pass over the operands, 8 float32 lanes per instruction.
#include <cstdint>
#include <type_traits>

#include "common/half.h"
#include "reduce/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

namespace nodeccl {
namespace {
using reduce_detail::KernelTable;

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

#include "reduce/generic.inl"

// float32 vector operators with the scalar reference's exact semantics. vminps/vmaxps return
// their second operand when either is NaN or both are zero, so min(b, a) is `b < a ? b : a`
// and max(b, a) is `a < b ? b : a`; a NaN in b is then blended in as the reference does.
struct VSum {
  static __m256 apply(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
};
struct VProd {
  static __m256 apply(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
};
struct VMin {
  static __m256 apply(__m256 a, __m256 b) {
    __m256 r = _mm256_min_ps(b, a);
    return _mm256_blendv_ps(r, b, _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
  }
};
struct VMax {
  static __m256 apply(__m256 a, __m256 b) {
    __m256 r = _mm256_max_ps(b, a);
    return _mm256_blendv_ps(r, b, _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
  }
};

constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

// float16 through F16C, 8 at a time; the tail uses scalar F16C, so every element rounds
// through the same instruction family.
struct F16x8 {
  static __m256 load8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static void store8(uint16_t* p, __m256 x) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(x, kRound));
  }
  static float load1(uint16_t h) { return _cvtsh_ss(h); }
  static uint16_t store1(float f) { return static_cast<uint16_t>(_cvtss_sh(f, kRound)); }
};

// bfloat16 with integer instructions: widening is a 16-bit shift; narrowing is the scalar
// reference's round-to-nearest-even bit trick (add 0x7fff plus the lowest kept bit, keep the
// top half) with NaNs made quiet, then a pack of the 32-bit lanes to 16 bits.
struct B16x8 {
  static __m256 load8(const uint16_t* p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static void store8(uint16_t* p, __m256 x) {
    const __m256i u = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    const __m256i quiet = _mm256_or_si256(u, _mm256_set1_epi32(0x400000));
    const __m256 isNan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    r = _mm256_srli_epi32(_mm256_castps_si256(_mm256_blendv_ps(
                              _mm256_castsi256_ps(r), _mm256_castsi256_ps(quiet), isNan)),
                          16);
    // packus works within 128-bit halves: lanes come out 0-3, 0-3 (dup), 4-7, 4-7 (dup).
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
  static float load1(uint16_t h) { return bf16ToFloat(h); }
  static uint16_t store1(float f) { return floatToBf16(f); }
};

// dst[i] = op(a[i], b[i]) in half precision F through float32. Each vector is loaded before it
// is stored, so dst == a is safe (reduceInto is this with dst = a).
template <typename F, typename VOp, typename Op>
void halfTo(void* dstv, const void* av, const void* bv, size_t count) {
  auto* dst = static_cast<uint16_t*>(dstv);
  auto* a = static_cast<const uint16_t*>(av);
  auto* b = static_cast<const uint16_t*>(bv);
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    F::store8(dst + i, VOp::apply(F::load8(a + i), F::load8(b + i)));
  }
  for (; i < count; ++i) dst[i] = F::store1(Op::apply(F::load1(a[i]), F::load1(b[i])));
}

template <typename F, typename VOp, typename Op>
void halfInto(void* dst, const void* src, size_t count) {
  halfTo<F, VOp, Op>(dst, dst, src, count);
}

template <typename F>
void halfDivide(void* datav, size_t count, int divisor) {
  auto* data = static_cast<uint16_t*>(datav);
  const float d = static_cast<float>(divisor);
  const __m256 dv = _mm256_set1_ps(d);
  size_t i = 0;
  for (; i + 8 <= count; i += 8) F::store8(data + i, _mm256_div_ps(F::load8(data + i), dv));
  for (; i < count; ++i) data[i] = F::store1(F::load1(data[i]) / d);
}

template <typename F>
void halfWiden(const uint16_t* src, float* dst, size_t count) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, F::load8(src + i));
  for (; i < count; ++i) dst[i] = F::load1(src[i]);
}

template <typename F>
void halfNarrow(const float* src, uint16_t* dst, size_t count) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8) F::store8(dst + i, _mm256_loadu_ps(src + i));
  for (; i < count; ++i) dst[i] = F::store1(src[i]);
}

#pragma GCC pop_options

// Replaces the generic kernels of one half type with the vector ones for format F.
template <typename F>
void setHalfRow(KernelTable& t, DataType dtype) {
  const int h = static_cast<int>(dtype);
  auto setOp = [&](ReduceOp op, reduce_detail::InPlaceFn into, reduce_detail::OutOfPlaceFn to) {
    t.into[h][static_cast<int>(op)] = into;
    t.to[h][static_cast<int>(op)] = to;
  };
  setOp(ReduceOp::kSum, halfInto<F, VSum, SumOp>, halfTo<F, VSum, SumOp>);
  setOp(ReduceOp::kAvg, halfInto<F, VSum, SumOp>, halfTo<F, VSum, SumOp>);
  setOp(ReduceOp::kProd, halfInto<F, VProd, ProdOp>, halfTo<F, VProd, ProdOp>);
  setOp(ReduceOp::kMin, halfInto<F, VMin, MinOp>, halfTo<F, VMin, MinOp>);
  setOp(ReduceOp::kMax, halfInto<F, VMax, MaxOp>, halfTo<F, VMax, MaxOp>);
  t.divide[h] = halfDivide<F>;
  t.widen[dtype == DataType::kFloat16 ? 0 : 1] = halfWiden<F>;
  t.narrow[dtype == DataType::kFloat16 ? 0 : 1] = halfNarrow<F>;
}

KernelTable avx2Table() {
  KernelTable t = genericTable();
  setHalfRow<F16x8>(t, DataType::kFloat16);
  setHalfRow<B16x8>(t, DataType::kBFloat16);
  return t;
}

}  // namespace

namespace reduce_detail {
const KernelTable& avx2Kernels() {
  static const KernelTable table = avx2Table();
  return table;
}
}  // namespace reduce_detail
}  // namespace nodeccl

#else  // not x86: never chosen (simdLevelSupported is false), kept so the table links.

namespace nodeccl {
namespace reduce_detail {
const KernelTable& avx2Kernels() { return scalarKernels(); }
}  // namespace reduce_detail
}  // namespace nodeccl

#endif
