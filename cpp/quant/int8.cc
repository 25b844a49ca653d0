// SPDX-License-Identifier: Apache-2.0
// int8 codec, absmax-scaled per block (or per tensor): s = absmax / 127, q = round(x / s) to
// nearest even, in [-127, 127]. Layout: nb float32 scales s, then n int8 codes.
// Error: |x - q s| <= s / 2 = absmax / 254 (plus float32 rounding of s and 127 / absmax, a few
// ulp of absmax). An all-zero block stores s = 0 and codes 0; a block with a NaN or infinity
// stores s = NaN and decodes to all NaN.
// Cost: two passes over each block (absmax, then quantize; a block of <= 16 KiB is still in
// L1 for the second), read 4 and write 1 byte per element; decode reads 1 and writes 4.
#pragma GCC optimize("fp-contract=off")
#include <cmath>
#include <cstring>
#include <limits>

#include "quant/block_scale.h"
#include "quant/codec.h"

namespace nodeccl {
namespace quant {

namespace {

struct EncodeKernel {
  static NODECCL_INLINE void run(const float* __restrict x, size_t n, size_t block,
                                 float* __restrict scales, int8_t* __restrict q) {
    if (block == 0) block = n;
    for (size_t b = 0, k = 0; b < n; b += block, ++k) {
      size_t len = n - b < block ? n - b : block;
      scales[k] = one(x + b, len, q + b);
    }
  }

  // One block; returns its scale.
  static NODECCL_INLINE float one(const float* __restrict x, size_t n, int8_t* __restrict q) {
    uint32_t m = absMaxBits(x, n);
    if (m >= kNonFiniteBits || m == 0) {
      std::memset(q, 0, n);
      return m == 0 ? 0.0f : std::numeric_limits<float>::quiet_NaN();
    }
    float absmax = bitsToFloat(m);
    float inv = 127.0f / absmax;
    // (Below ~1e-37 the reciprocal overflows float32: scale in float64 instead, same rounding.)
    if (inv > 3.0e38f) return tiny(x, n, absmax, q);
    for (size_t i = 0; i < n; ++i) {
      q[i] = static_cast<int8_t>(static_cast<int32_t>(roundNearest(x[i] * inv)));
    }
    return absmax / 127.0f;
  }

  static float tiny(const float* x, size_t n, float absmax, int8_t* q) {
    double inv = 127.0 / absmax;
    for (size_t i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * inv));
    return absmax / 127.0f;
  }
};

struct DecodeKernel {
  static NODECCL_INLINE void run(const float* __restrict scales, const int8_t* __restrict q,
                                 size_t n, size_t block, float* __restrict y, bool accumulate) {
    if (block == 0) block = n;
    for (size_t b = 0, k = 0; b < n; b += block, ++k) {
      size_t len = n - b < block ? n - b : block;
      float s = scales[k];
      const int8_t* qb = q + b;
      float* yb = y + b;
      if (accumulate) {
        for (size_t i = 0; i < len; ++i) yb[i] = yb[i] + static_cast<float>(qb[i]) * s;
      } else {
        for (size_t i = 0; i < len; ++i) yb[i] = static_cast<float>(qb[i]) * s;
      }
    }
  }
};

}  // namespace

void encodeInt8(const float* x, size_t n, size_t block, uint8_t* out) {
  float* scales = reinterpret_cast<float*>(out);
  int8_t* q = reinterpret_cast<int8_t*>(out + 4 * blockCount(n, block));
  simd::run<EncodeKernel>(x, n, block, scales, q);
}

void decodeInt8(const uint8_t* in, size_t n, size_t block, float* y, bool accumulate) {
  const float* scales = reinterpret_cast<const float*>(in);
  const int8_t* q = reinterpret_cast<const int8_t*>(in + 4 * blockCount(n, block));
  simd::run<DecodeKernel>(scales, q, n, block, y, accumulate);
}

}  // namespace quant
}  // namespace nodeccl
