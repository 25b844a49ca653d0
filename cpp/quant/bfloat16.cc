// SPDX-License-Identifier: Apache-2.0
// bfloat16 codec: the top 16 bits of float32, round to nearest even, 2 bytes per element; NaN
// stays NaN (quieted), infinity stays infinity; finite values round as common/half.h does.
// Error: |x - x'| <= 2^-8 |x| (8 significant bits) for |x| >= 2^-126; below, <= 2^-134.
// Cost: read 4, write 2 bytes per element; integer arithmetic only, vectorized (simd.h; the
// AVX-512 encode is written out with intrinsics, same arithmetic).
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "optim/simd.h"
#include "quant/codec.h"

namespace nodeccl {
namespace quant {

namespace {

struct EncodeKernel {
  static NODECCL_INLINE void run(const float* __restrict x, size_t n, uint16_t* __restrict out) {
    for (size_t i = 0; i < n; ++i) {
      uint32_t u;
      std::memcpy(&u, x + i, 4);
      // Round to nearest even on bit 16; a NaN keeps its top bits and gains the quiet bit.
      uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
      uint32_t nan = (u >> 16) | 0x40u;
      out[i] = static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
    }
  }
};

struct DecodeKernel {
  static NODECCL_INLINE void run(const uint16_t* __restrict in, size_t n, float* __restrict y,
                                 bool accumulate) {
    if (accumulate) {
      for (size_t i = 0; i < n; ++i) y[i] = y[i] + widen(in[i]);
    } else {
      for (size_t i = 0; i < n; ++i) y[i] = widen(in[i]);
    }
  }
  static NODECCL_INLINE float widen(uint16_t h) {
    uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

#if NODECCL_HAVE_X86_DISPATCH
// EncodeKernel's arithmetic written out for AVX-512, narrowing with vpmovdw (one 32-byte store
// per 16 elements): the compiler's own vectorization of the loop above packs pairs of registers
// with a two-source word permute and runs ~1.5x slower than this.
NODECCL_TARGET_AVX512 void encodeAvx512(const float* x, size_t n, uint16_t* out) {
  const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff);
  const __m512i absMask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i quiet = _mm512_set1_epi32(0x40);
  // Scalar steps up to a 64-byte boundary of x: a 64-byte load that spans two cache lines
  // costs about twice one that does not.
  size_t i = (64 - reinterpret_cast<uintptr_t>(x) % 64) % 64 / 4;
  if (i > n) i = n;
  EncodeKernel::run(x, i, out);
  for (; i + 16 <= n; i += 16) {
    __m512i u = _mm512_load_si512(x + i);
    __m512i hi = _mm512_srli_epi32(u, 16);
    __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(u, half), _mm512_and_si512(hi, one)), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absMask), inf);
    __m512i r = _mm512_mask_or_epi32(rounded, nan, hi, quiet);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(r));
  }
  EncodeKernel::run(x + i, n - i, out + i);
}
#endif

}  // namespace

void encodeBFloat16(const float* x, size_t n, uint8_t* out) {
#if NODECCL_HAVE_X86_DISPATCH
  if (simd::isa() == simd::Isa::kAvx512) {
    return encodeAvx512(x, n, reinterpret_cast<uint16_t*>(out));
  }
#endif
  simd::run<EncodeKernel>(x, n, reinterpret_cast<uint16_t*>(out));
}

void decodeBFloat16(const uint8_t* in, size_t n, float* y, bool accumulate) {
  simd::run<DecodeKernel>(reinterpret_cast<const uint16_t*>(in), n, y, accumulate);
}

}  // namespace quant
}  // namespace nodeccl
