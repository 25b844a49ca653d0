// SPDX-License-Identifier: Apache-2.0
// Bitmap sparse storage: one presence bit per element plus the nonzero values in order. At 90%
// sparsity a float32 tensor shrinks from 32 to 0.1 * 32 + 1 = 4.2 bits per element; a CSR form
// with 16-bit column indices would need 0.1 * 48 = 4.8 bits plus row pointers.
//
// Cost: encode and decode are one pass over the n elements and ceil(n / 8) bitmap bytes.
#include <cstring>

#include "common/error.h"
#include "compress/compress.h"

namespace nodeccl {
namespace compress {

size_t countNonzero(const float* x, size_t n) {
  size_t nnz = 0;
  for (size_t i = 0; i < n; ++i) nnz += x[i] != 0.0f;
  return nnz;
}

size_t sparseEncode(const float* x, size_t n, uint8_t* bitmap, float* values, size_t capacity) {
  const size_t nnz = countNonzero(x, n);
  if (nnz > capacity) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("sparseEncode: ", nnz, " nonzeros do not fit in values of length ",
                       capacity, "; size it with countNonzero"));
  }
  std::memset(bitmap, 0, (n + 7) / 8);
  size_t k = 0;
  for (size_t i = 0; i < n; ++i) {
    if (x[i] != 0.0f) {
      bitmap[i >> 3] |= static_cast<uint8_t>(1u << (i & 7));
      values[k++] = x[i];
    }
  }
  return k;
}

void sparseDecode(const uint8_t* bitmap, const float* values, size_t nnz, size_t n, float* out) {
  // Validate first, so a corrupted record never writes a partial tensor.
  const size_t bytes = (n + 7) / 8;
  size_t set = 0;
  for (size_t b = 0; b < bytes; ++b) set += static_cast<size_t>(__builtin_popcount(bitmap[b]));
  const unsigned tail = static_cast<unsigned>(n & 7);
  if (tail != 0 && (bitmap[bytes - 1] >> tail) != 0) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("sparseDecode: bitmap has bits set past element ", n,
                       "; the record is corrupted or belongs to another shape"));
  }
  if (set != nnz) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("sparseDecode: bitmap marks ", set, " nonzeros but ", nnz,
                       " values were given; the record is corrupted or mismatched"));
  }
  size_t k = 0;
  for (size_t i = 0; i < n; ++i) {
    out[i] = (bitmap[i >> 3] >> (i & 7)) & 1u ? values[k++] : 0.0f;
  }
}

}  // namespace compress
}  // namespace nodeccl
