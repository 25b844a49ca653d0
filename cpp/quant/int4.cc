// SPDX-License-Identifier: Apache-2.0
// 4-bit codec, absmax-scaled per block: s = absmax / 7, q = round(x / s) to nearest even, in
// [-7, 7], stored as the nibble q + 8, two per byte (element 2j in the low nibble of byte j).
// Layout: nb float32 scales s, then ceil(n / 2) bytes. Blocks hold an even number of elements,
// so no byte spans two blocks; an odd n leaves the last high nibble as 8 (zero).
// Error: |x - q s| <= s / 2 = absmax / 14 (plus float32 rounding of s). An all-zero block
// stores s = 0; a block with a NaN or infinity stores s = NaN and decodes to all NaN.
// Cost: two passes over each block, read 4 and write 0.5 bytes per element.
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
                                 float* __restrict scales, uint8_t* __restrict out) {
    for (size_t b = 0, k = 0; b < n; b += block, ++k) {
      size_t len = n - b < block ? n - b : block;
      scales[k] = one(x + b, len, out + b / 2);
    }
  }

  static NODECCL_INLINE float one(const float* __restrict x, size_t n, uint8_t* __restrict out) {
    uint32_t m = absMaxBits(x, n);
    size_t pairs = n / 2;
    if (m >= kNonFiniteBits || m == 0) {
      std::memset(out, 0x88, (n + 1) / 2);
      return m == 0 ? 0.0f : std::numeric_limits<float>::quiet_NaN();
    }
    float absmax = bitsToFloat(m);
    float inv = 7.0f / absmax;
    // (Below ~1e-37 the reciprocal overflows float32: scale in float64 instead, same rounding.)
    if (inv > 3.0e38f) return tiny(x, n, absmax, out);
    for (size_t j = 0; j < pairs; ++j) {
      int32_t lo = static_cast<int32_t>(roundNearest(x[2 * j] * inv)) + 8;
      int32_t hi = static_cast<int32_t>(roundNearest(x[2 * j + 1] * inv)) + 8;
      out[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
    if (n % 2) out[pairs] = static_cast<uint8_t>(
        (static_cast<int32_t>(roundNearest(x[n - 1] * inv)) + 8) | 0x80);
    return absmax / 7.0f;
  }

  static float tiny(const float* x, size_t n, float absmax, uint8_t* out) {
    double inv = 7.0 / absmax;
    std::memset(out, 0x88, (n + 1) / 2);
    for (size_t i = 0; i < n; ++i) {
      int code = static_cast<int>(std::nearbyint(x[i] * inv)) + 8;
      out[i / 2] = static_cast<uint8_t>(i % 2 ? (out[i / 2] & 15) | (code << 4)
                                              : (out[i / 2] & 0xf0) | code);
    }
    return absmax / 7.0f;
  }
};

struct DecodeKernel {
  static NODECCL_INLINE void run(const float* __restrict scales, const uint8_t* __restrict in,
                                 size_t n, size_t block, float* __restrict y, bool accumulate) {
    for (size_t b = 0, k = 0; b < n; b += block, ++k) {
      size_t len = n - b < block ? n - b : block;
      float s = scales[k];
      const uint8_t* ib = in + b / 2;
      float* yb = y + b;
      for (size_t j = 0; j < len / 2; ++j) {
        float lo = static_cast<float>(static_cast<int32_t>(ib[j] & 15) - 8) * s;
        float hi = static_cast<float>(static_cast<int32_t>(ib[j] >> 4) - 8) * s;
        yb[2 * j] = accumulate ? yb[2 * j] + lo : lo;
        yb[2 * j + 1] = accumulate ? yb[2 * j + 1] + hi : hi;
      }
      if (len % 2) {
        float lo = static_cast<float>(static_cast<int32_t>(ib[len / 2] & 15) - 8) * s;
        yb[len - 1] = accumulate ? yb[len - 1] + lo : lo;
      }
    }
  }
};

}  // namespace

void encodeInt4(const float* x, size_t n, size_t block, uint8_t* out) {
  float* scales = reinterpret_cast<float*>(out);
  simd::run<EncodeKernel>(x, n, block, scales, out + 4 * blockCount(n, block));
}

void decodeInt4(const uint8_t* in, size_t n, size_t block, float* y, bool accumulate) {
  const float* scales = reinterpret_cast<const float*>(in);
  simd::run<DecodeKernel>(scales, in + 4 * blockCount(n, block), n, block, y, accumulate);
}

}  // namespace quant
}  // namespace nodeccl
