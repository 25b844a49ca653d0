// SPDX-License-Identifier: Apache-2.0
// Builds the dynamic quantization maps of dynamic_map.h once, on first use.
#include "quant/dynamic_map.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace nodeccl {
namespace quant {

namespace {

// Signed: decades 1..6 below 1 with 64, 32, ..., 2 values; unsigned: decades 1..7 with
// 128, 64, ..., 2. Each decade's values are the midpoints of equal parts of [0.1, 1] scaled into
// it (decade 1 is [0.1, 1], decade 2 is [0.01, 0.1], ...). Plus 0 and 1: 128 or 256 values.
DynamicMap* build(bool isSigned) {
  std::vector<double> v = {0.0, 1.0};
  int decades = isSigned ? 6 : 7;
  for (int k = 1; k <= decades; ++k) {
    int items = 1 << (decades + 1 - k);
    double scale = std::pow(10.0, -(k - 1));
    for (int j = 0; j < items; ++j) {
      double lo = 0.1 + 0.9 * j / items, hi = 0.1 + 0.9 * (j + 1) / items;
      v.push_back(scale * (lo + hi) / 2);
    }
  }
  std::sort(v.begin(), v.end());
  auto* d = new DynamicMap();
  d->size = static_cast<int>(v.size());
  for (int i = 0; i < d->size; ++i) d->value[i] = static_cast<float>(v[i]);
  for (int i = 0; i + 1 < d->size; ++i) d->mid[i] = (d->value[i] + d->value[i + 1]) / 2;
  d->mid[d->size - 1] = std::numeric_limits<float>::infinity();

  // Bucket table: nearest entry to the lowest float of each bucket (NaN buckets: the last).
  // (bits >> 15 grows with a for non-negative floats, so the search resumes where it was.)
  int c = 0;
  for (uint32_t k = 0; k < (1u << 16); ++k) {
    uint32_t bits = k << 15;
    float a;
    std::memcpy(&a, &bits, 4);
    while (c + 1 < d->size && a > d->mid[c]) ++c;
    if (std::isnan(a)) c = d->size - 1;
    d->bucket[k] = static_cast<uint8_t>(c);
  }
  return d;
}

}  // namespace

const DynamicMap& signedMagnitudes() {
  static const DynamicMap* d = build(true);
  return *d;
}

const DynamicMap& unsignedMagnitudes() {
  static const DynamicMap* d = build(false);
  return *d;
}

}  // namespace quant
}  // namespace nodeccl
