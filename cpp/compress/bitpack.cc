// SPDX-License-Identifier: Apache-2.0
// Packing of small integer codes (k-means indices, b = 1..8 bits each) into a dense bit stream,
// least significant bit first, so 4-bit codes take half a byte and 3-bit codes 3/8 of one.
//
// Cost: one pass over the n codes and ceil(n * b / 8) bytes; a code may straddle two bytes.
#include <cstring>

#include "common/error.h"
#include "compress/compress.h"

namespace nodeccl {
namespace compress {

namespace {

void checkBits(const char* who, int bits) {
  if (bits < 1 || bits > 8) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat(who, ": bits must be 1..8, got ", bits));
  }
}

}  // namespace

size_t packedBytes(size_t n, int bits) {
  return (n * static_cast<size_t>(bits) + 7) / 8;
}

void packBits(const uint8_t* codes, size_t n, int bits, uint8_t* out) {
  checkBits("packBits", bits);
  const unsigned limit = 1u << bits;
  for (size_t i = 0; i < n; ++i) {
    if (codes[i] >= limit) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat("packBits: code ", static_cast<unsigned>(codes[i]), " at index ", i,
                         " does not fit in ", bits, " bits"));
    }
  }

  // A 16-bit window: the code lands at bit offset (i * bits) % 8 of byte (i * bits) / 8.
  std::memset(out, 0, packedBytes(n, bits));
  size_t bit = 0;
  for (size_t i = 0; i < n; ++i, bit += static_cast<size_t>(bits)) {
    const unsigned shifted = static_cast<unsigned>(codes[i]) << (bit & 7);
    out[bit >> 3] |= static_cast<uint8_t>(shifted);
    if ((bit & 7) + static_cast<size_t>(bits) > 8) {
      out[(bit >> 3) + 1] |= static_cast<uint8_t>(shifted >> 8);
    }
  }
}

void unpackBits(const uint8_t* packed, size_t n, int bits, uint8_t* codes) {
  checkBits("unpackBits", bits);
  const unsigned mask = (1u << bits) - 1u;
  size_t bit = 0;
  for (size_t i = 0; i < n; ++i, bit += static_cast<size_t>(bits)) {
    unsigned window = packed[bit >> 3];
    if ((bit & 7) + static_cast<size_t>(bits) > 8) window |= unsigned{packed[(bit >> 3) + 1]} << 8;
    codes[i] = static_cast<uint8_t>((window >> (bit & 7)) & mask);
  }
}

}  // namespace compress
}  // namespace nodeccl
