// SPDX-License-Identifier: Apache-2.0
// Dynamic (logarithmic) 8-bit quantization maps, after bitsandbytes' "dynamic tree" maps: most
// codes sit near zero in steps of ten, so a block normalized by its absolute maximum keeps
// ~2-3 significant digits over seven decades. Used for 8-bit optimizer state (adam8bit.cc).
//
// Two magnitude tables, each sorted ascending from 0 to exactly 1:
//   signedMagnitudes():   128 entries; a signed code is (negative << 7) | index  (m of Adam)
//   unsignedMagnitudes(): 256 entries; the code is the index                       (v of Adam)
// Decade k ([0.1, 1] times 10^-(k-1)) holds 2^(7-k) values in the signed table (k = 1..6) and
// 2^(8-k) in the unsigned one (k = 1..7), at the midpoints of an even split; plus 0 and 1.
//
// Encoding a magnitude a in [0, 1] to the nearest entry costs one table lookup and one
// comparison: a 64 Ki-entry table indexed by the top 17 bits of a's float32 representation
// (exponent and 8 mantissa bits) gives the nearest entry to the bucket's lowest value, and since
// every bucket is narrower (0.4% relative) than the gap between neighbouring entries (>= 0.7%),
// the answer is that entry or the next, decided by their midpoint. Ties go to the lower entry.
#pragma once

#include <cstdint>
#include <cstring>

namespace nodeccl {
namespace quant {

struct DynamicMap {
  int size;             // 128 or 256
  float value[256];     // ascending, value[0] = 0, value[size - 1] = 1
  float mid[256];       // (value[i] + value[i + 1]) / 2; +inf for the last
  uint8_t bucket[1 << 16];  // nearest index to the lowest float of bucket (bits >> 15)
};

const DynamicMap& signedMagnitudes();
const DynamicMap& unsignedMagnitudes();

// Index of the entry of `d` nearest to a (a >= 0; values above 1 give the last entry, and so
// does a NaN of either sign: the sign bit is dropped before the lookup, so the index stays
// inside the table even for the negative NaN that x86 makes of inf * 0).
inline uint8_t encodeMagnitude(const DynamicMap& d, float a) {
  uint32_t bits;
  std::memcpy(&bits, &a, 4);
  uint8_t c = d.bucket[(bits & 0x7fffffffu) >> 15];
  return static_cast<uint8_t>(c + (a > d.mid[c] ? 1 : 0));
}

}  // namespace quant
}  // namespace nodeccl
