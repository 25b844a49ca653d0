// SPDX-License-Identifier: Apache-2.0
// Symmetric int8 / int4 weight quantization for export: each group of weights (a channel, or a
// block of the flattened tensor) shares one float32 scale, max|x| / qmax, and each weight keeps
// round(x / scale) in [-qmax, qmax]. The error per weight is at most scale / 2.
//
// Cost: two passes over the n weights (group maxima, then codes) and one scale per group;
// storage n bytes (int8) or ceil(n / 2) bytes (int4) plus 4 bytes per group.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "compress/compress.h"

namespace nodeccl {
namespace compress {

namespace {

int qmaxOf(int bits) { return bits == 8 ? 127 : 7; }

void checkLayout(const char* who, const QuantLayout& l, int bits) {
  if (bits != 8 && bits != 4) {
    throw Error(ErrorCode::kInvalidArgument, strcat(who, ": bits must be 8 or 4, got ", bits));
  }
  if (l.blockSize == 0 && l.axis != 0 && l.axis != 1) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat(who, ": per-channel axis must be 0 (rows) or 1 (columns), got ", l.axis));
  }
}

// The group (scale index) of the element at flat index i = r * cols + c.
struct GroupOf {
  const QuantLayout& l;
  size_t operator()(size_t i) const {
    if (l.blockSize != 0) return i / l.blockSize;
    return l.axis == 0 ? i / l.cols : i % l.cols;
  }
};

}  // namespace

size_t quantGroups(const QuantLayout& l) {
  const size_t n = l.rows * l.cols;
  if (l.blockSize != 0) return (n + l.blockSize - 1) / l.blockSize;
  return l.axis == 0 ? l.rows : l.cols;
}

size_t quantBytes(size_t n, int bits) { return bits == 8 ? n : (n + 1) / 2; }

void quantize(const float* x, const QuantLayout& l, int bits, float* scales, uint8_t* q) {
  checkLayout("quantize", l, bits);
  const size_t n = l.rows * l.cols;
  const GroupOf group{l};
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat("quantize: value ", x[i], " at index ", i, " is not finite"));
    }
  }

  // Scales: the largest magnitude of each group over qmax (0 for an all-zero group).
  const int qmax = qmaxOf(bits);
  std::vector<float> amax(quantGroups(l), 0.0f);
  for (size_t i = 0; i < n; ++i) amax[group(i)] = std::max(amax[group(i)], std::fabs(x[i]));
  for (size_t g = 0; g < amax.size(); ++g) scales[g] = amax[g] / static_cast<float>(qmax);

  // Codes: nearbyint rounds half to even in the default rounding mode.
  if (bits == 4) std::memset(q, 0, quantBytes(n, 4));
  for (size_t i = 0; i < n; ++i) {
    const float s = scales[group(i)];
    float v = s > 0.0f ? std::nearbyint(x[i] / s) : 0.0f;
    v = std::min(std::max(v, static_cast<float>(-qmax)), static_cast<float>(qmax));
    const auto code = static_cast<int8_t>(v);
    if (bits == 8) {
      q[i] = static_cast<uint8_t>(code);
    } else {
      q[i >> 1] |= static_cast<uint8_t>((static_cast<uint8_t>(code) & 0xf) << ((i & 1) * 4));
    }
  }
}

void dequantize(const uint8_t* q, const float* scales, const QuantLayout& l, int bits,
                float* out) {
  checkLayout("dequantize", l, bits);
  const size_t n = l.rows * l.cols;
  const GroupOf group{l};
  for (size_t i = 0; i < n; ++i) {
    int code;
    if (bits == 8) {
      code = static_cast<int8_t>(q[i]);
    } else {
      const int nibble = (q[i >> 1] >> ((i & 1) * 4)) & 0xf;
      code = nibble >= 8 ? nibble - 16 : nibble;  // sign-extend the 4-bit two's complement
    }
    out[i] = static_cast<float>(code) * scales[group(i)];
  }
}

}  // namespace compress
}  // namespace nodeccl
