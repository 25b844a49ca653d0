// SPDX-License-Identifier: Apache-2.0
// bfloat16 codec: the top 16 bits of float32, round to nearest even, 2 bytes per element; NaN
// stays NaN (quieted), infinity stays infinity; finite values round as common/half.h does.
// Error: |x - x'| <= 2^-8 |x| (8 significant bits) for |x| >= 2^-126; below, <= 2^-134.
// Cost: read 4, write 2 bytes per element; integer arithmetic only, vectorized (simd.h).
#pragma GCC optimize("fp-contract=off")
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

}  // namespace

void encodeBFloat16(const float* x, size_t n, uint8_t* out) {
  simd::run<EncodeKernel>(x, n, reinterpret_cast<uint16_t*>(out));
}

void decodeBFloat16(const uint8_t* in, size_t n, float* y, bool accumulate) {
  simd::run<DecodeKernel>(reinterpret_cast<const uint16_t*>(in), n, y, accumulate);
}

}  // namespace quant
}  // namespace nodeccl
