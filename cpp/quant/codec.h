// SPDX-License-Identifier: Apache-2.0
// Gradient codecs: lossy encodings of a float32 array into bytes for sending, each in its own
// file with its cost and error bound in the header. The encoded size depends only on the codec
// and the element count n, so every rank of a collective can size its buffers alike.
//
//   kind       file          bytes for n elements (nb = blocks)    round-trip error |x - x'|
//   float16    float16.cc    2n                                    <= 2^-11 |x| (normal range)
//   bfloat16   bfloat16.cc   2n                                    <= 2^-8 |x| (normal range)
//   int8       int8.cc       4 nb + n                              <= absmax(block) / 254
//   int4       int4.cc       4 nb + ceil(n / 2)                    <= absmax(block) / 14
//   sign1      sign1.cc      4 nb + ceil(n / 8)                    sign and block L1 norm kept
//   topk       topk.cc       8 k                                   0 on the k largest |x|
//   randomk    randomk.cc    8 + 4 k                               0 on the k chosen
// (bounds up to float32 rounding of the scale, a few ulp of absmax; nb = ceil(n / blockSize),
// or one block when blockSize is 0; k = min(n, max(1, ceil(ratio * n))), 0 when n is 0.)
//
// Non-finite input: float16/bfloat16 keep NaN and infinity (float16 saturates finite values
// beyond 65504 to +-65504 instead of overflowing); a block of int8/int4/sign1 holding a NaN or
// infinity decodes to all NaN; topk and randomk keep them as values. Nothing turns a non-finite
// input into a finite output.
//
// Thread safety: no state; encode/decode may run concurrently on different arrays.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nodeccl {
namespace quant {

enum class CodecKind : int {
  kFloat16 = 0, kBFloat16 = 1, kInt8 = 2, kInt4 = 3, kSign1 = 4, kTopK = 5, kRandomK = 6,
};

struct Codec {
  CodecKind kind = CodecKind::kInt8;
  size_t blockSize = 0;   // int8, int4, sign1: elements per scale; 0 = one scale per tensor
  double ratio = 0.01;    // topk, randomk: fraction of elements kept, in (0, 1]
  uint64_t seed = 0;      // randomk: picks the elements (recorded in the encoded bytes)
};

const char* codecName(CodecKind kind);

// Throws Error(kInvalidArgument) naming the unusable field (int4 needs blockSize > 0 and even,
// sign1 a multiple of 8 or 0).
void validate(const Codec& c);

// Bytes encode() writes for n elements.
size_t encodedBytes(const Codec& c, size_t n);

// Elements that topk/randomk keep out of n.
size_t keptCount(double ratio, size_t n);

// x[0..n) -> out[0..encodedBytes(c, n)). Throws kInvalidArgument if outBytes is not that size.
void encode(const Codec& c, const float* x, size_t n, uint8_t* out, size_t outBytes);

// in[0..encodedBytes(c, n)) -> y[0..n); with `accumulate` the decoded values are added to y
// (float32 adds) instead of replacing it. Throws kInvalidArgument on a size mismatch or bytes
// that could not come from encode (a top-k index out of range or out of order).
void decode(const Codec& c, const uint8_t* in, size_t inBytes, float* y, size_t n,
            bool accumulate);

// Error feedback (error_feedback.cc): encodes a = grad + residual (residual kept in float64),
// then sets residual = a - decode(encoded), so that over any number of steps
//   sum of decoded sends + residual == sum of grads
// exactly whenever the float64 subtractions are exact (they are when a and its decoded value
// are within 2^29 of each other in magnitude ratio, i.e. always in practice; tests check it).
// `scratch` holds 2n floats. Returns nothing; `out` gets encodedBytes(c, n) bytes.
void encodeWithFeedback(const Codec& c, const float* grad, double* residual, size_t n,
                        uint8_t* out, size_t outBytes, float* scratch);

// ---- per-file entry points (codec.cc dispatches to them) ----------------------------------
void encodeFloat16(const float* x, size_t n, uint8_t* out);
void decodeFloat16(const uint8_t* in, size_t n, float* y, bool accumulate);
void encodeBFloat16(const float* x, size_t n, uint8_t* out);
void decodeBFloat16(const uint8_t* in, size_t n, float* y, bool accumulate);
void encodeInt8(const float* x, size_t n, size_t block, uint8_t* out);
void decodeInt8(const uint8_t* in, size_t n, size_t block, float* y, bool accumulate);
void encodeInt4(const float* x, size_t n, size_t block, uint8_t* out);
void decodeInt4(const uint8_t* in, size_t n, size_t block, float* y, bool accumulate);
void encodeSign1(const float* x, size_t n, size_t block, uint8_t* out);
void decodeSign1(const uint8_t* in, size_t n, size_t block, float* y, bool accumulate);
void encodeTopK(const float* x, size_t n, size_t k, uint8_t* out);
void decodeTopK(const uint8_t* in, size_t n, size_t k, float* y, bool accumulate);
void encodeRandomK(const float* x, size_t n, size_t k, uint64_t seed, uint8_t* out);
void decodeRandomK(const uint8_t* in, size_t n, size_t k, float* y, bool accumulate);

// Blocks of `block` elements over n (one block when block is 0 and n > 0).
inline size_t blockCount(size_t n, size_t block) {
  if (n == 0) return 0;
  return block == 0 ? 1 : (n + block - 1) / block;
}

}  // namespace quant
}  // namespace nodeccl
