// SPDX-License-Identifier: Apache-2.0
// Top-k sparsification: the k elements of largest |x|, sent as k uint32 indices (ascending)
// followed by their k float32 values; the rest decode to 0. Ties at the k-th magnitude go to
// the lower indices. NaN counts as larger than infinity (it is kept, never hidden).
// Error: exact on the kept elements; every dropped |x| <= every kept |x|.
//
// Selection works on the magnitude's float32 bits (ordered like the values, NaN above inf):
//   1. Estimate a threshold t from 16 Ki evenly spaced samples, aiming at ~2k candidates.
//   2. One pass collects the indices with |x| >= t (AVX2: 8 compares and a movemask per step;
//      hits are rare, so the pass runs near memory speed).
//   3. nth_element over the candidates' magnitudes gives the exact k-th largest T; a pass over
//      the candidates in index order keeps those above T and the first ones equal to it.
// Too few candidates (a skewed sample) or small inputs fall back to nth_element over all n.
// Cost: one read of x (4 bytes per element) plus O(k) work; decode writes n floats.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "optim/simd.h"
#include "quant/codec.h"

namespace nodeccl {
namespace quant {

namespace {

inline uint32_t keyOf(const float* x, size_t i) {
  uint32_t u;
  std::memcpy(&u, x + i, 4);
  return u & 0x7fffffffu;
}

// Indices with key >= t, ascending.
void collectBaseline(const float* x, size_t n, uint32_t t, std::vector<uint32_t>& out) {
  for (size_t i = 0; i < n; ++i) {
    if (keyOf(x, i) >= t) out.push_back(static_cast<uint32_t>(i));
  }
}

#if NODECCL_HAVE_X86_DISPATCH
// Keys are < 2^31, so a signed compare with t - 1 is key >= t.
NODECCL_TARGET_AVX2 void collectAvx2(const float* x, size_t n, uint32_t t,
                                     std::vector<uint32_t>& out) {
  const __m256i mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i below = _mm256_set1_epi32(static_cast<int>(t) - 1);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i k = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)),
                                 mask);
    unsigned bits = static_cast<unsigned>(
        _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(k, below))));
    while (bits) {
      out.push_back(static_cast<uint32_t>(i + __builtin_ctz(bits)));
      bits &= bits - 1;
    }
  }
  for (; i < n; ++i) {
    if (keyOf(x, i) >= t) out.push_back(static_cast<uint32_t>(i));
  }
}
#endif

void collect(const float* x, size_t n, uint32_t t, std::vector<uint32_t>& out) {
#if NODECCL_HAVE_X86_DISPATCH
  if (simd::isa() != simd::Isa::kBaseline) return collectAvx2(x, n, t, out);
#endif
  collectBaseline(x, n, t, out);
}

// The k-th largest key among x[cand[...]].
uint32_t kthLargest(const float* x, const std::vector<uint32_t>& cand, size_t k) {
  std::vector<uint32_t> keys(cand.size());
  for (size_t j = 0; j < cand.size(); ++j) keys[j] = keyOf(x, cand[j]);
  std::nth_element(keys.begin(), keys.begin() + (keys.size() - k), keys.end());
  return keys[keys.size() - k];
}

// A threshold that ~2k of the n keys reach, from evenly spaced samples; 0 (all) when unsure.
uint32_t estimateThreshold(const float* x, size_t n, size_t k) {
  const size_t samples = 16384;
  if (n < 8 * samples || 8 * k > n) return 0;
  std::vector<uint32_t> keys(samples);
  size_t stride = n / samples;
  for (size_t j = 0; j < samples; ++j) keys[j] = keyOf(x, j * stride);
  size_t want = static_cast<size_t>(2.0 * static_cast<double>(k) / n * samples) + 16;
  if (want >= samples) return 0;
  std::nth_element(keys.begin(), keys.begin() + (samples - want), keys.end());
  return keys[samples - want];
}

}  // namespace

void encodeTopK(const float* x, size_t n, size_t k, uint8_t* out) {
  uint32_t* idx = reinterpret_cast<uint32_t*>(out);
  float* val = reinterpret_cast<float*>(out + 4 * k);
  if (n > 0xffffffffu) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("codec topk: ", n, " elements; indices are uint32, so at most 2^32 - 1 "
                       "(LIMITATION: split the tensor)"));
  }

  // Candidates (all elements when the estimate is unusable), then the exact threshold.
  std::vector<uint32_t> cand;
  cand.reserve(4 * k + 64);
  uint32_t t = estimateThreshold(x, n, k);
  if (t > 0) collect(x, n, t, cand);
  if (cand.size() < k) {
    cand.resize(n);
    for (size_t i = 0; i < n; ++i) cand[i] = static_cast<uint32_t>(i);
  }
  uint32_t kth = kthLargest(x, cand, k);

  // Keep keys above kth, and the first ones equal to it until k are kept.
  size_t above = 0;
  for (uint32_t i : cand) above += keyOf(x, i) > kth;
  size_t equalLeft = k - above, m = 0;
  for (uint32_t i : cand) {
    uint32_t key = keyOf(x, i);
    if (key > kth || (key == kth && equalLeft > 0)) {
      if (key == kth) --equalLeft;
      idx[m] = i;
      val[m] = x[i];
      ++m;
    }
  }
}

void decodeTopK(const uint8_t* in, size_t n, size_t k, float* y, bool accumulate) {
  const uint32_t* idx = reinterpret_cast<const uint32_t*>(in);
  const float* val = reinterpret_cast<const float*>(in + 4 * k);
  for (size_t j = 0; j < k; ++j) {
    if (idx[j] >= n || (j > 0 && idx[j] <= idx[j - 1])) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat("codec topk: index ", j, " is ", idx[j], " (previous ",
                         j > 0 ? idx[j - 1] : 0, ", n ", n,
                         "); the bytes were not written by encode for this size"));
    }
  }
  if (!accumulate) std::memset(y, 0, n * sizeof(float));
  for (size_t j = 0; j < k; ++j) y[idx[j]] += val[j];
}

}  // namespace quant
}  // namespace nodeccl
