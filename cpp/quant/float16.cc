// SPDX-License-Identifier: Apache-2.0
// float16 codec: IEEE binary16, round to nearest even, 2 bytes per element. Finite values beyond
// +-65504 saturate to +-65504 (an overflow to infinity would poison an error-feedback residual
// and every sum it enters; with error feedback the excess is sent in later steps); NaN and
// infinity pass through.
// Error: |x - x'| <= 2^-11 |x| for |x| in [2^-14, 65504]; <= 2^-25 absolute below (subnormals).
// Cost: read 4, write 2 bytes per element (decode: read 2, write 4; accumulate also reads 4).
// On AVX2 CPUs the F16C instructions convert 8 elements at a time; elsewhere common/half.h.
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>

#include <cmath>

#include "common/half.h"
#include "optim/simd.h"
#include "quant/codec.h"

namespace nodeccl {
namespace quant {

namespace {

constexpr float kMaxHalf = 65504.0f;

inline float saturate(float v) {
  if (v == INFINITY || v == -INFINITY) return v;
  return v > kMaxHalf ? kMaxHalf : (v < -kMaxHalf ? -kMaxHalf : v);
}

void encodeScalar(const float* x, size_t n, uint16_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = floatToHalf(saturate(x[i]));
}

void decodeScalar(const uint16_t* in, size_t n, float* y, bool accumulate) {
  for (size_t i = 0; i < n; ++i) y[i] = accumulate ? y[i] + halfToFloat(in[i]) : halfToFloat(in[i]);
}

#if NODECCL_HAVE_X86_DISPATCH
// min/max take the second operand when either is NaN: the input goes second so NaN survives;
// infinities are put back after the clamp.
NODECCL_TARGET_AVX2 void encodeF16c(const float* x, size_t n, uint16_t* out) {
  const __m256 hi = _mm256_set1_ps(kMaxHalf), lo = _mm256_set1_ps(-kMaxHalf);
  const __m256 inf = _mm256_set1_ps(INFINITY), absMask = _mm256_castsi256_ps(
      _mm256_set1_epi32(0x7fffffff));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x8 = _mm256_loadu_ps(x + i);
    __m256 v = _mm256_max_ps(lo, _mm256_min_ps(hi, x8));
    v = _mm256_blendv_ps(v, x8, _mm256_cmp_ps(_mm256_and_ps(x8, absMask), inf, _CMP_EQ_OQ));
    __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  encodeScalar(x + i, n - i, out + i);
}

NODECCL_TARGET_AVX2 void decodeF16c(const uint16_t* in, size_t n, float* y, bool accumulate) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)));
    if (accumulate) v = _mm256_add_ps(_mm256_loadu_ps(y + i), v);
    _mm256_storeu_ps(y + i, v);
  }
  decodeScalar(in + i, n - i, y + i, accumulate);
}
#endif

bool haveF16c() {
  return NODECCL_HAVE_X86_DISPATCH && simd::isa() != simd::Isa::kBaseline;
}

}  // namespace

void encodeFloat16(const float* x, size_t n, uint8_t* out) {
  uint16_t* h = reinterpret_cast<uint16_t*>(out);
#if NODECCL_HAVE_X86_DISPATCH
  if (haveF16c()) return encodeF16c(x, n, h);
#endif
  encodeScalar(x, n, h);
}

void decodeFloat16(const uint8_t* in, size_t n, float* y, bool accumulate) {
  const uint16_t* h = reinterpret_cast<const uint16_t*>(in);
#if NODECCL_HAVE_X86_DISPATCH
  if (haveF16c()) return decodeF16c(h, n, y, accumulate);
#endif
  decodeScalar(h, n, y, accumulate);
}

}  // namespace quant
}  // namespace nodeccl
