// SPDX-License-Identifier: Apache-2.0
// Magnitude pruning: keep-masks that remove the given fraction of smallest-|w| elements, over
// one tensor or a whole list at once, and their application after each optimizer step.
//
// Cost: one copy of every |w| (4 bytes per element), one nth_element (expected O(n)), and two
// passes over the weights to write the masks; applyMask is one pass.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/error.h"
#include "compress/compress.h"

namespace nodeccl {
namespace compress {

namespace {

// Refuses a sparsity outside [0, 1] and NaN weights, naming where the first one is.
void checkPruneArgs(const float* const* tensors, const size_t* sizes, size_t count,
                    double sparsity) {
  if (!(sparsity >= 0.0 && sparsity <= 1.0)) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("magnitudeMask: sparsity must be in [0, 1], got ", sparsity));
  }
  for (size_t t = 0; t < count; ++t) {
    for (size_t i = 0; i < sizes[t]; ++i) {
      if (std::isnan(tensors[t][i])) {
        throw Error(ErrorCode::kInvalidArgument,
                    strcat("magnitudeMask: tensor ", t, " holds NaN at index ", i,
                           "; a NaN weight has no magnitude to rank"));
      }
    }
  }
}

}  // namespace

size_t magnitudeMask(const float* const* tensors, const size_t* sizes, size_t count,
                     double sparsity, uint8_t* const* masks) {
  checkPruneArgs(tensors, sizes, count, sparsity);
  size_t total = 0;
  for (size_t t = 0; t < count; ++t) total += sizes[t];
  const size_t prune = static_cast<size_t>(std::llround(sparsity * static_cast<double>(total)));

  // The threshold is the prune-th smallest magnitude: everything below it goes.
  float threshold = -1.0f;
  if (prune > 0) {
    std::vector<float> mags;
    mags.reserve(total);
    for (size_t t = 0; t < count; ++t) {
      for (size_t i = 0; i < sizes[t]; ++i) mags.push_back(std::fabs(tensors[t][i]));
    }
    std::nth_element(mags.begin(), mags.begin() + (prune - 1), mags.end());
    threshold = mags[prune - 1];
  }

  // Strictly smaller magnitudes are pruned first; the rest of the quota comes from the ties.
  size_t below = 0;
  for (size_t t = 0; t < count; ++t) {
    for (size_t i = 0; i < sizes[t]; ++i) below += std::fabs(tensors[t][i]) < threshold;
  }
  size_t tiesLeft = prune - below;
  for (size_t t = 0; t < count; ++t) {
    for (size_t i = 0; i < sizes[t]; ++i) {
      const float m = std::fabs(tensors[t][i]);
      bool pruned = m < threshold;
      if (!pruned && m == threshold && tiesLeft > 0) pruned = true, --tiesLeft;
      masks[t][i] = pruned ? 0 : 1;
    }
  }
  NODECCL_CHECK_EQ(tiesLeft, size_t{0});
  return prune;
}

void applyMask(float* const* tensors, const uint8_t* const* masks, const size_t* sizes,
               size_t count) {
  for (size_t t = 0; t < count; ++t) {
    float* w = tensors[t];
    const uint8_t* m = masks[t];
    for (size_t i = 0; i < sizes[t]; ++i) w[i] = m[i] ? w[i] : 0.0f;
  }
}

}  // namespace compress
}  // namespace nodeccl
