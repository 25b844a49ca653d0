// SPDX-License-Identifier: Apache-2.0
// 1-bit codec (signSGD with a scale, as 1-bit Adam sends its momentum): one sign bit per
// element (bit j of byte i is the sign bit of element 8i + j, set for negative, -0 included)
// and per block s = mean |x|, so x' = +-s. Layout: nb float32 scales, then ceil(n / 8) bytes.
// Error: not bounded per element; what is kept: sign(x') = sign(x) wherever x != 0, and each
// block's L1 norm (sum |x'| = sum |x| up to float32 rounding of s). Used with error feedback,
// the rest is sent in later steps. A block with a NaN or infinity decodes to all NaN.
// Cost: one pass over each block on AVX2/AVX-512 (the bits, the absolute maximum and the L1
// norm in float64 together), read 4 and write 1/8 byte per element; the baseline reference
// makes three passes. Every level sums in the same order (8 float64 partial sums, element i + j
// of each group of 8 into sum j, the remainder into sum 0, then sums 0..7 in order), so the
// scales agree to the bit. On AVX2, movemask packs 8 signs per instruction and decode unpacks
// them; on AVX-512 a mask register takes 16.
#pragma GCC optimize("fp-contract=off")
// GCC 12's avx512fintrin.h trips -W(maybe-)uninitialized on the _mm512_undefined_* values in
// its own inline functions (a false positive in the compiler's header).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstring>
#include <limits>

#include "quant/block_scale.h"
#include "quant/codec.h"

namespace nodeccl {
namespace quant {

namespace {

// The block's scale from its 8 partial sums of |x| (elements 8q + j in part[j]) and its largest
// |x| as bits: mean |x|, or NaN when the block holds a NaN or infinity. `from` is the first
// element not yet in a partial sum; those left go into part[0], in order.
float finishScale(double* part, uint32_t maxBits, const float* x, size_t from, size_t n) {
  if (maxBits >= kNonFiniteBits) return std::numeric_limits<float>::quiet_NaN();
  for (size_t i = from; i < n; ++i) part[0] += x[i] < 0 ? -x[i] : x[i];
  double sum = 0;
  for (size_t j = 0; j < 8; ++j) sum += part[j];
  return static_cast<float>(sum / static_cast<double>(n));
}

// The reference: mean |x| in float64 (8 partial sums), a pass for the maximum and one for the
// sums (a third packs the bits).
float blockScale(const float* x, size_t n) {
  uint32_t maxBits = absMaxBits(x, n);
  double part[8] = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t j = 0; j < 8; ++j) part[j] += x[i + j] < 0 ? -x[i + j] : x[i + j];
  }
  return finishScale(part, maxBits, x, i, n);
}

inline uint8_t packScalar(const float* x, size_t count) {
  uint8_t byte = 0;
  for (size_t j = 0; j < count; ++j) {
    uint32_t u;
    std::memcpy(&u, x + j, 4);
    byte |= static_cast<uint8_t>((u >> 31) << j);
  }
  return byte;
}

struct PackBaseline {
  static void run(const float* x, size_t n, uint8_t* out) {
    for (size_t i = 0; i < n; i += 8) out[i / 8] = packScalar(x + i, n - i < 8 ? n - i : 8);
  }
};

void unpackScalar(uint8_t byte, size_t count, float s, float* y, bool accumulate) {
  for (size_t j = 0; j < count; ++j) {
    float v = (byte >> j) & 1 ? -s : s;
    y[j] = accumulate ? y[j] + v : v;
  }
}

void unpackBaseline(const uint8_t* in, size_t n, float s, float* y, bool accumulate) {
  for (size_t i = 0; i < n; i += 8) {
    unpackScalar(in[i / 8], n - i < 8 ? n - i : 8, s, y + i, accumulate);
  }
}

#if NODECCL_HAVE_X86_DISPATCH
// One pass: 8 signs per movemask, |x| as bits for the maximum, and two float64 vectors holding
// partial sums 0-3 and 4-7 (float32 to float64 is exact, so each add rounds as the scalar one).
NODECCL_TARGET_AVX2 float encodeBlockAvx2(const float* x, size_t n, uint8_t* out) {
  const __m256i absMask = _mm256_set1_epi32(0x7fffffff);
  __m256i maxBits = _mm256_setzero_si256();
  __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    out[i / 8] = static_cast<uint8_t>(_mm256_movemask_ps(v));
    __m256i a = _mm256_and_si256(_mm256_castps_si256(v), absMask);
    maxBits = _mm256_max_epu32(maxBits, a);
    __m256 av = _mm256_castsi256_ps(a);
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(av)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(av, 1)));
  }
  if (i < n) out[i / 8] = packScalar(x + i, n - i);
  alignas(32) uint32_t m[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(m), maxBits);
  uint32_t mb = absMaxBits(x + i, n - i);
  for (uint32_t v : m) mb = v > mb ? v : mb;
  alignas(32) double part[8];
  _mm256_store_pd(part, lo);
  _mm256_store_pd(part + 4, hi);
  return finishScale(part, mb, x, i, n);
}

// As encodeBlockAvx2 with 16 elements a step: one float64 vector holds all 8 partial sums, and
// the two halves of a step are added in element order (elements i + j, then i + 8 + j).
NODECCL_TARGET_AVX512 float encodeBlockAvx512(const float* x, size_t n, uint8_t* out) {
  const __m512i absMask = _mm512_set1_epi32(0x7fffffff);
  __m512i maxBits = _mm512_setzero_si512();
  __m512d acc = _mm512_setzero_pd();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i v = _mm512_loadu_si512(x + i);
    uint16_t signs = static_cast<uint16_t>(_mm512_movepi32_mask(v));
    std::memcpy(out + i / 8, &signs, 2);
    __m512i a = _mm512_and_si512(v, absMask);
    maxBits = _mm512_max_epu32(maxBits, a);
    __m512 av = _mm512_castsi512_ps(a);
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(av)));
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(
        _mm512_castps_pd(av), 1))));
  }
  if (i + 8 <= n) {
    __m256 v = _mm256_loadu_ps(x + i);
    out[i / 8] = static_cast<uint8_t>(_mm256_movemask_ps(v));
    __m256i a = _mm256_and_si256(_mm256_castps_si256(v), _mm512_castsi512_si256(absMask));
    maxBits = _mm512_max_epu32(maxBits, _mm512_zextsi256_si512(a));
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_castsi256_ps(a)));
    i += 8;
  }
  if (i < n) out[i / 8] = packScalar(x + i, n - i);
  uint32_t mb = _mm512_reduce_max_epu32(maxBits), rest = absMaxBits(x + i, n - i);
  alignas(64) double part[8];
  _mm512_store_pd(part, acc);
  return finishScale(part, rest > mb ? rest : mb, x, i, n);
}

// Lane j takes bit j of the byte: broadcast it, keep bit j, compare, turn into the sign bit.
NODECCL_TARGET_AVX2 void unpackAvx2(const uint8_t* in, size_t n, float s, float* y,
                                    bool accumulate) {
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256 scale = _mm256_set1_ps(s);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i b = _mm256_and_si256(_mm256_set1_epi32(in[i / 8]), bit);
    __m256i neg = _mm256_slli_epi32(_mm256_cmpeq_epi32(b, bit), 31);
    __m256 v = _mm256_xor_ps(scale, _mm256_castsi256_ps(neg));
    if (accumulate) v = _mm256_add_ps(_mm256_loadu_ps(y + i), v);
    _mm256_storeu_ps(y + i, v);
  }
  if (i < n) unpackScalar(in[i / 8], n - i, s, y + i, accumulate);
}
#endif

bool useAvx2() { return NODECCL_HAVE_X86_DISPATCH && simd::isa() != simd::Isa::kBaseline; }

// One block's bits into out, returning its scale, with the kernel of the current level.
float encodeBlock(const float* x, size_t n, uint8_t* out) {
#if NODECCL_HAVE_X86_DISPATCH
  if (simd::isa() == simd::Isa::kAvx512) return encodeBlockAvx512(x, n, out);
  if (useAvx2()) return encodeBlockAvx2(x, n, out);
#endif
  PackBaseline::run(x, n, out);
  return blockScale(x, n);
}

}  // namespace

void encodeSign1(const float* x, size_t n, size_t block, uint8_t* out) {
  if (block == 0) block = n;
  float* scales = reinterpret_cast<float*>(out);
  uint8_t* bits = out + 4 * blockCount(n, block);
  for (size_t b = 0, k = 0; b < n; b += block, ++k) {
    size_t len = n - b < block ? n - b : block;
    scales[k] = encodeBlock(x + b, len, bits + b / 8);
  }
}

void decodeSign1(const uint8_t* in, size_t n, size_t block, float* y, bool accumulate) {
  if (block == 0) block = n;
  const float* scales = reinterpret_cast<const float*>(in);
  const uint8_t* bits = in + 4 * blockCount(n, block);
  for (size_t b = 0, k = 0; b < n; b += block, ++k) {
    size_t len = n - b < block ? n - b : block;
#if NODECCL_HAVE_X86_DISPATCH
    if (useAvx2()) {
      unpackAvx2(bits + b / 8, len, scales[k], y + b, accumulate);
      continue;
    }
#endif
    unpackBaseline(bits + b / 8, len, scales[k], y + b, accumulate);
  }
}

}  // namespace quant
}  // namespace nodeccl
