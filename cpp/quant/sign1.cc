// SPDX-License-Identifier: Apache-2.0
// 1-bit codec (signSGD with a scale, as 1-bit Adam sends its momentum): one sign bit per
// element (bit j of byte i is the sign bit of element 8i + j, set for negative, -0 included)
// and per block s = mean |x|, so x' = +-s. Layout: nb float32 scales, then ceil(n / 8) bytes.
// Error: not bounded per element; what is kept: sign(x') = sign(x) wherever x != 0, and each
// block's L1 norm (sum |x'| = sum |x| up to float32 rounding of s). Used with error feedback,
// the rest is sent in later steps. A block with a NaN or infinity decodes to all NaN.
// Cost: two passes over each block (L1 norm in float64, then the bits), read 4 and write 1/8
// byte per element. On AVX2, movemask packs 8 signs per instruction and decode unpacks them.
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>

#include <cstring>
#include <limits>

#include "quant/block_scale.h"
#include "quant/codec.h"

namespace nodeccl {
namespace quant {

namespace {

// Mean |x| in float64 (8 partial sums), or NaN when the block holds a NaN or infinity.
NODECCL_INLINE float blockScale(const float* __restrict x, size_t n) {
  if (absMaxBits(x, n) >= kNonFiniteBits) return std::numeric_limits<float>::quiet_NaN();
  double part[8] = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t j = 0; j < 8; ++j) part[j] += x[i + j] < 0 ? -x[i + j] : x[i + j];
  }
  for (; i < n; ++i) part[0] += x[i] < 0 ? -x[i] : x[i];
  double sum = 0;
  for (double p : part) sum += p;
  return static_cast<float>(sum / static_cast<double>(n));
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
NODECCL_TARGET_AVX2 void packAvx2(const float* x, size_t n, uint8_t* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) out[i / 8] = static_cast<uint8_t>(_mm256_movemask_ps(
      _mm256_loadu_ps(x + i)));
  if (i < n) out[i / 8] = packScalar(x + i, n - i);
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

struct ScaleKernel {
  static NODECCL_INLINE float run(const float* x, size_t n) { return blockScale(x, n); }
};

}  // namespace

void encodeSign1(const float* x, size_t n, size_t block, uint8_t* out) {
  if (block == 0) block = n;
  float* scales = reinterpret_cast<float*>(out);
  uint8_t* bits = out + 4 * blockCount(n, block);
  for (size_t b = 0, k = 0; b < n; b += block, ++k) {
    size_t len = n - b < block ? n - b : block;
    scales[k] = simd::run<ScaleKernel>(x + b, len);
#if NODECCL_HAVE_X86_DISPATCH
    if (useAvx2()) {
      packAvx2(x + b, len, bits + b / 8);
      continue;
    }
#endif
    PackBaseline::run(x + b, len, bits + b / 8);
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
