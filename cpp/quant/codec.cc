// SPDX-License-Identifier: Apache-2.0
// The codec table: names, checks, encoded sizes, and dispatch to each codec's own file.
#include "quant/codec.h"

#include <cmath>

#include "common/error.h"

namespace nodeccl {
namespace quant {

const char* codecName(CodecKind kind) {
  switch (kind) {
    case CodecKind::kFloat16: return "float16";
    case CodecKind::kBFloat16: return "bfloat16";
    case CodecKind::kInt8: return "int8";
    case CodecKind::kInt4: return "int4";
    case CodecKind::kSign1: return "sign1";
    case CodecKind::kTopK: return "topk";
    case CodecKind::kRandomK: return "randomk";
  }
  return "unknown";
}

void validate(const Codec& c) {
  int k = static_cast<int>(c.kind);
  if (k < 0 || k > static_cast<int>(CodecKind::kRandomK)) {
    throw Error(ErrorCode::kInvalidArgument, strcat("codec: unknown kind ", k));
  }
  if (c.kind == CodecKind::kInt4 && (c.blockSize == 0 || c.blockSize % 2 != 0)) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("codec int4: blockSize must be even and > 0, got ", c.blockSize,
                       "; 64 is the usual choice"));
  }
  if (c.kind == CodecKind::kSign1 && c.blockSize % 8 != 0) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("codec sign1: blockSize must be a multiple of 8 (or 0 for one scale per "
                       "tensor), got ", c.blockSize));
  }
  if ((c.kind == CodecKind::kTopK || c.kind == CodecKind::kRandomK) &&
      !(c.ratio > 0 && c.ratio <= 1)) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("codec ", codecName(c.kind), ": ratio must be in (0, 1], got ", c.ratio));
  }
}

size_t keptCount(double ratio, size_t n) {
  if (n == 0) return 0;
  double k = std::ceil(ratio * static_cast<double>(n));
  if (k < 1) return 1;
  return k >= static_cast<double>(n) ? n : static_cast<size_t>(k);
}

size_t encodedBytes(const Codec& c, size_t n) {
  size_t nb = blockCount(n, c.blockSize);
  switch (c.kind) {
    case CodecKind::kFloat16:
    case CodecKind::kBFloat16: return 2 * n;
    case CodecKind::kInt8: return 4 * nb + n;
    case CodecKind::kInt4: return 4 * nb + (n + 1) / 2;
    case CodecKind::kSign1: return 4 * nb + (n + 7) / 8;
    case CodecKind::kTopK: return 8 * keptCount(c.ratio, n);
    case CodecKind::kRandomK: return n == 0 ? 0 : 8 + 4 * keptCount(c.ratio, n);
  }
  return 0;
}

namespace {

void checkBytes(const Codec& c, size_t n, size_t bytes, const char* what) {
  size_t want = encodedBytes(c, n);
  if (bytes != want) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("codec ", codecName(c.kind), ": ", what, " has ", bytes, " bytes but ", n,
                       " elements encode to ", want, "; size it with encodedBytes"));
  }
}

}  // namespace

void encode(const Codec& c, const float* x, size_t n, uint8_t* out, size_t outBytes) {
  validate(c);
  checkBytes(c, n, outBytes, "the output");
  if (n == 0) return;
  switch (c.kind) {
    case CodecKind::kFloat16: return encodeFloat16(x, n, out);
    case CodecKind::kBFloat16: return encodeBFloat16(x, n, out);
    case CodecKind::kInt8: return encodeInt8(x, n, c.blockSize, out);
    case CodecKind::kInt4: return encodeInt4(x, n, c.blockSize, out);
    case CodecKind::kSign1: return encodeSign1(x, n, c.blockSize, out);
    case CodecKind::kTopK: return encodeTopK(x, n, keptCount(c.ratio, n), out);
    case CodecKind::kRandomK: return encodeRandomK(x, n, keptCount(c.ratio, n), c.seed, out);
  }
}

void decode(const Codec& c, const uint8_t* in, size_t inBytes, float* y, size_t n,
            bool accumulate) {
  validate(c);
  checkBytes(c, n, inBytes, "the input");
  if (n == 0) return;
  switch (c.kind) {
    case CodecKind::kFloat16: return decodeFloat16(in, n, y, accumulate);
    case CodecKind::kBFloat16: return decodeBFloat16(in, n, y, accumulate);
    case CodecKind::kInt8: return decodeInt8(in, n, c.blockSize, y, accumulate);
    case CodecKind::kInt4: return decodeInt4(in, n, c.blockSize, y, accumulate);
    case CodecKind::kSign1: return decodeSign1(in, n, c.blockSize, y, accumulate);
    case CodecKind::kTopK: return decodeTopK(in, n, keptCount(c.ratio, n), y, accumulate);
    case CodecKind::kRandomK: return decodeRandomK(in, n, keptCount(c.ratio, n), y, accumulate);
  }
}

}  // namespace quant
}  // namespace nodeccl
