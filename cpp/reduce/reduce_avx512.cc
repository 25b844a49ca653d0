// SPDX-License-Identifier: Apache-2.0
// The AVX-512 kernels: generic.inl vectorized for AVX-512 F/BW/VL with 512-bit vectors by
// `#pragma GCC target` (this file only; the rest of the binary stays baseline x86-64), plus
// half-precision kernels written with intrinsics, 16 elements per instruction with masked
// loads and stores for the tail: float16 through the F16C conversions, bfloat16 through shifts.
// reduce.cc calls into this table only after checking the CPU has avx512f/bw/vl/dq and f16c.
//
// bfloat16 rounds with the reference's bit trick rather than AVX512_BF16's vcvtneps2bf16:
// that instruction flushes subnormal inputs and outputs to zero, so its results would differ
// from the scalar reference for values below 2^-126.
// Cost of every kernel: one pass over the operands, 16 float32 lanes per instruction.
#include <cstdint>
#include <type_traits>

#include "common/half.h"
#include "reduce/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized on the _mm512_undefined_* values inside
// _mm512_cvtph_ps and _mm512_cvtps_ph (a false positive in the compiler's own header).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

namespace nodeccl {
namespace {
using reduce_detail::KernelTable;

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,prefer-vector-width=512")

#include "reduce/generic.inl"

// float32 vector operators with the scalar reference's exact semantics: vminps/vmaxps return
// their second operand when either is NaN or both are zero, so min(b, a) is `b < a ? b : a`
// and max(b, a) is `a < b ? b : a`; a NaN in b is then merged in as the reference does.
struct VSum {
  static __m512 apply(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
};
struct VProd {
  static __m512 apply(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
};
struct VMin {
  static __m512 apply(__m512 a, __m512 b) {
    return _mm512_mask_mov_ps(_mm512_min_ps(b, a), _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q), b);
  }
};
struct VMax {
  static __m512 apply(__m512 a, __m512 b) {
    return _mm512_mask_mov_ps(_mm512_max_ps(b, a), _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q), b);
  }
};

constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

// Up to 16 halves at p (mask m selects lanes; unselected lanes read as 0 and are not written).
inline __m256i loadBits16(const uint16_t* p, __mmask16 m) { return _mm256_maskz_loadu_epi16(m, p); }
inline void storeBits16(uint16_t* p, __mmask16 m, __m256i x) { _mm256_mask_storeu_epi16(p, m, x); }

// float16 through the AVX-512 forms of the F16C conversions.
struct F16x16 {
  static __m512 load(const uint16_t* p, __mmask16 m) { return _mm512_cvtph_ps(loadBits16(p, m)); }
  static void store(uint16_t* p, __mmask16 m, __m512 x) {
    storeBits16(p, m, _mm512_cvtps_ph(x, kRound));
  }
};

// bfloat16 with integer instructions: widening is a 16-bit shift; narrowing is the scalar
// reference's round-to-nearest-even bit trick (add 0x7fff plus the lowest kept bit, keep the
// top half) with NaNs made quiet, then vpmovdw to 16-bit lanes.
struct B16x16 {
  static __m512 load(const uint16_t* p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(loadBits16(p, m)), 16));
  }
  static void store(uint16_t* p, __mmask16 m, __m512 x) {
    const __m512i u = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    const __m512i quiet = _mm512_or_si512(u, _mm512_set1_epi32(0x400000));
    const __mmask16 isNan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __m512i r = _mm512_srli_epi32(_mm512_mask_mov_epi32(rounded, isNan, quiet), 16);
    storeBits16(p, m, _mm512_cvtepi32_epi16(r));
  }
};

inline __mmask16 maskFor(size_t left) {
  return left >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
}

// dst[i] = op(a[i], b[i]) in half precision F through float32; the last partial vector is
// masked. Each vector is loaded before it is stored, so dst == a is safe (reduceInto is this
// with dst = a).
template <typename F, typename VOp>
void halfTo(void* dstv, const void* av, const void* bv, size_t count) {
  auto* dst = static_cast<uint16_t*>(dstv);
  auto* a = static_cast<const uint16_t*>(av);
  auto* b = static_cast<const uint16_t*>(bv);
  for (size_t i = 0; i < count; i += 16) {
    const __mmask16 m = maskFor(count - i);
    F::store(dst + i, m, VOp::apply(F::load(a + i, m), F::load(b + i, m)));
  }
}

template <typename F, typename VOp>
void halfInto(void* dst, const void* src, size_t count) {
  halfTo<F, VOp>(dst, dst, src, count);
}

template <typename F>
void halfDivide(void* datav, size_t count, int divisor) {
  auto* data = static_cast<uint16_t*>(datav);
  const __m512 d = _mm512_set1_ps(static_cast<float>(divisor));
  for (size_t i = 0; i < count; i += 16) {
    const __mmask16 m = maskFor(count - i);
    F::store(data + i, m, _mm512_div_ps(F::load(data + i, m), d));
  }
}

template <typename F>
void halfWiden(const uint16_t* src, float* dst, size_t count) {
  for (size_t i = 0; i < count; i += 16) {
    const __mmask16 m = maskFor(count - i);
    _mm512_mask_storeu_ps(dst + i, m, F::load(src + i, m));
  }
}

template <typename F>
void halfNarrow(const float* src, uint16_t* dst, size_t count) {
  for (size_t i = 0; i < count; i += 16) {
    const __mmask16 m = maskFor(count - i);
    F::store(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
  }
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
  setOp(ReduceOp::kSum, halfInto<F, VSum>, halfTo<F, VSum>);
  setOp(ReduceOp::kAvg, halfInto<F, VSum>, halfTo<F, VSum>);
  setOp(ReduceOp::kProd, halfInto<F, VProd>, halfTo<F, VProd>);
  setOp(ReduceOp::kMin, halfInto<F, VMin>, halfTo<F, VMin>);
  setOp(ReduceOp::kMax, halfInto<F, VMax>, halfTo<F, VMax>);
  t.divide[h] = halfDivide<F>;
  t.widen[dtype == DataType::kFloat16 ? 0 : 1] = halfWiden<F>;
  t.narrow[dtype == DataType::kFloat16 ? 0 : 1] = halfNarrow<F>;
}

KernelTable avx512Table() {
  KernelTable t = genericTable();
  setHalfRow<F16x16>(t, DataType::kFloat16);
  setHalfRow<B16x16>(t, DataType::kBFloat16);
  return t;
}

}  // namespace

namespace reduce_detail {
const KernelTable& avx512Kernels() {
  static const KernelTable table = avx512Table();
  return table;
}
}  // namespace reduce_detail
}  // namespace nodeccl

#else  // not x86: never chosen (simdLevelSupported is false), kept so the table links.

namespace nodeccl {
namespace reduce_detail {
const KernelTable& avx512Kernels() { return scalarKernels(); }
}  // namespace reduce_detail
}  // namespace nodeccl

#endif
