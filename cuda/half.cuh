// SPDX-License-Identifier: Apache-2.0
// float16 / bfloat16 <-> float32 on the device, bit for bit the conversions of
// cpp/common/half.h (round to nearest even; NaN kept as a quiet NaN with its sign), so a value
// encoded on the GPU decodes to what the CPU would give. CUDA's own __float2half_rn differs
// only in the NaN it returns, which the tests compare bit for bit.
#pragma once

#include <cstdint>

namespace nodeccl {
namespace cuda {

__device__ inline uint16_t deviceFloatToBf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

__device__ inline float deviceBf16ToFloat(uint16_t h) {
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
}

__device__ inline float deviceHalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return __uint_as_float(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    float v = __fmul_rn(static_cast<float>(man), 5.9604644775390625e-8f);  // man * 2^-24, exact
    return sign ? -v : v;
  }
  return __uint_as_float(sign | ((exp + 112u) << 23) | (man << 13));
}

__device__ inline uint16_t deviceFloatToHalf(float f) {
  uint32_t u = __float_as_uint(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (absu >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (absu < 0x38800000u) {
    // Subnormal or zero: the half mantissa is |f| * 2^24 rounded to nearest even.
    uint32_t m = __float2uint_rn(__fmul_rn(__uint_as_float(absu), 16777216.0f));
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t r = absu - (112u << 23);
  r += 0xfffu + ((r >> 13) & 1u);
  return static_cast<uint16_t>(sign | (r >> 13));
}

}  // namespace cuda
}  // namespace nodeccl
