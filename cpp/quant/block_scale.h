// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the block-scaled codecs (int8.cc, int4.cc, sign1.cc): the absolute maximum
// of a block found on the integer bits (so it vectorizes and sees NaN and infinity), and
// rounding to nearest even without a library call.
#pragma once

#include <cstdint>
#include <cstring>

#include "optim/simd.h"

namespace nodeccl {
namespace quant {

// Largest |x| of x[0..n) as float32 bits. For non-negative floats the bit patterns order like
// the values, and every NaN or infinity is >= 0x7f800000, so one unsigned max finds both.
NODECCL_INLINE uint32_t absMaxBits(const float* __restrict x, size_t n) {
  uint32_t m = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, x + i, 4);
    u &= 0x7fffffffu;
    m = u > m ? u : m;
  }
  return m;
}

constexpr uint32_t kNonFiniteBits = 0x7f800000u;

NODECCL_INLINE float bitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Nearest integer (ties to even) of y for |y| <= 2^22: adding and removing 1.5 * 2^23 leaves
// no fraction bits, under the default rounding mode. Needs fp-contract off (it is, per file).
NODECCL_INLINE float roundNearest(float y) {
  const float magic = 12582912.0f;
  return (y + magic) - magic;
}

}  // namespace quant
}  // namespace nodeccl
