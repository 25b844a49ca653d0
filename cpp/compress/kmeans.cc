// SPDX-License-Identifier: Apache-2.0
// Weight sharing by 1-D k-means (Han et al., Deep Compression): the weights of a tensor are
// replaced by k shared values, so each needs only log2(k) bits plus a k-entry codebook.
//
// Seeding is k-means++ (Arthur and Vassilvitskii): each next centroid is drawn with probability
// proportional to the squared distance to the nearest one already chosen; the draws come from a
// seeded splitmix64 stream, so a seed fixes the result on every platform. Lloyd iterations then
// alternate assignment and mean updates until no assignment changes.
//
// Cost: seeding O(n k); each Lloyd iteration O(n log k) (in 1-D the nearest of sorted centroids
// is found by binary search over the midpoints between neighbours) plus O(k log k). Memory: n
// doubles for the seeding distances and k midpoints.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/error.h"
#include "compress/compress.h"

namespace nodeccl {
namespace compress {

namespace {

// splitmix64 (Steele, Lea and Flood): a fixed, portable stream, unlike std distributions.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

void checkKMeansArgs(const float* x, size_t n, const KMeansOptions& o) {
  if (o.k < 1 || o.k > 256) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("kmeans1d: k must be 1..256 (codes are one byte), got ", o.k));
  }
  if (o.maxIterations < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("kmeans1d: maxIterations must be >= 0, got ", o.maxIterations));
  }
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat("kmeans1d: value ", x[i], " at index ", i,
                         " is not finite; only finite weights can be clustered"));
    }
  }
}

// k-means++ seeding into c[0..k). With fewer distinct values than k, every distance reaches 0
// and the remaining centroids repeat the last one chosen.
void seedPlusPlus(const float* x, size_t n, int k, uint64_t seed, std::vector<float>& c) {
  SplitMix64 rng{seed};
  c[0] = x[std::min(n - 1, static_cast<size_t>(rng.uniform() * static_cast<double>(n)))];
  std::vector<double> d2(n);
  for (size_t i = 0; i < n; ++i) d2[i] = (double{x[i]} - c[0]) * (double{x[i]} - c[0]);

  for (int j = 1; j < k; ++j) {
    double total = 0;
    for (size_t i = 0; i < n; ++i) total += d2[i];
    if (total <= 0) {
      c[j] = c[j - 1];
      continue;
    }
    // The first point whose running sum passes r; the last positive one if rounding overshoots.
    const double r = rng.uniform() * total;
    double run = 0;
    size_t pick = n;
    for (size_t i = 0; i < n && pick == n; ++i) {
      run += d2[i];
      if (run > r && d2[i] > 0) pick = i;
    }
    for (size_t i = n; pick == n && i-- > 0;) {
      if (d2[i] > 0) pick = i;
    }
    c[j] = x[pick];
    for (size_t i = 0; i < n; ++i) {
      const double d = double{x[i]} - c[j];
      d2[i] = std::min(d2[i], d * d);
    }
  }
}

// Sorts the centroids and sends each point to the nearest (the lower one on an exact tie).
// Returns whether any code changed.
bool assign(const float* x, size_t n, std::vector<float>& c, uint8_t* codes) {
  std::sort(c.begin(), c.end());
  std::vector<double> mids(c.size() - 1);
  for (size_t j = 0; j + 1 < c.size(); ++j) mids[j] = 0.5 * (double{c[j]} + double{c[j + 1]});
  bool changed = false;
  for (size_t i = 0; i < n; ++i) {
    const auto code = static_cast<uint8_t>(
        std::lower_bound(mids.begin(), mids.end(), double{x[i]}) - mids.begin());
    changed |= code != codes[i];
    codes[i] = code;
  }
  return changed;
}

// Moves each centroid to the mean of its points; an empty cluster keeps its centroid.
void update(const float* x, size_t n, const uint8_t* codes, std::vector<float>& c) {
  std::vector<double> sum(c.size(), 0.0);
  std::vector<size_t> count(c.size(), 0);
  for (size_t i = 0; i < n; ++i) sum[codes[i]] += x[i], ++count[codes[i]];
  for (size_t j = 0; j < c.size(); ++j) {
    if (count[j] > 0) c[j] = static_cast<float>(sum[j] / static_cast<double>(count[j]));
  }
}

}  // namespace

KMeansResult kmeans1d(const float* x, size_t n, const KMeansOptions& o, float* centroids,
                      uint8_t* codes) {
  checkKMeansArgs(x, n, o);
  KMeansResult result;
  std::vector<float> c(static_cast<size_t>(o.k), 0.0f);
  if (n == 0) {
    std::copy(c.begin(), c.end(), centroids);
    return result;
  }
  seedPlusPlus(x, n, o.k, o.seed, c);

  // Lloyd: the first assignment always counts as a change (codes start unknown).
  std::fill(codes, codes + n, uint8_t{0});
  for (int it = 0; it < o.maxIterations; ++it) {
    if (!assign(x, n, c, codes) && it > 0) break;
    update(x, n, codes, c);
    ++result.iterations;
  }
  assign(x, n, c, codes);  // codes index the final, sorted centroids

  for (size_t i = 0; i < n; ++i) {
    const double d = double{x[i]} - c[codes[i]];
    result.inertia += d * d;
  }
  std::copy(c.begin(), c.end(), centroids);
  return result;
}

}  // namespace compress
}  // namespace nodeccl
