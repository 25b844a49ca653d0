// SPDX-License-Identifier: Apache-2.0
// Random-k sparsification, stratified: the n elements are cut into k nearly equal ranges and
// one element of each is kept, chosen by a hash of (seed, range). Only the values travel: the
// encoded bytes are the 8-byte seed then k float32 values, and the decoder regenerates the
// indices from the seed. The same seed picks the same elements on every rank, so the senders of
// one step agree without exchanging indices; change the seed each step (the error-feedback
// wrapper does) to cover every element over time.
// Error: exact on the kept elements, the rest decode to 0 (no 1/ratio rescaling: with error
// feedback the dropped part is sent later, and rescaling would inflate the variance).
// Cost: k hashes and k random reads (the ranges are walked without a division); decode writes
// n floats in one pass (zeros around each kept value), or adds k values with `accumulate`.
#include <cstring>

#include "quant/codec.h"

namespace nodeccl {
namespace quant {

namespace {

// splitmix64: a well-mixed 64-bit hash.
inline uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The ranges in order: range j is [j n / k, (j + 1) n / k) (floors), walked without a
// division: with n = q k + r, each step adds q and carries 1 whenever the running remainder of
// j r passes k, which is the same integer as the 128-bit formula j n / k.
class Strata {
 public:
  Strata(size_t n, size_t k) : q_(n / k), r_(n % k), k_(k) {}
  size_t lo() const { return lo_; }
  size_t hi() const { return lo_ + q_ + (rem_ + r_ >= k_ ? 1 : 0); }
  void next() {
    lo_ = hi();
    rem_ = rem_ + r_ >= k_ ? rem_ + r_ - k_ : rem_ + r_;
  }

 private:
  size_t q_, r_, k_, lo_ = 0, rem_ = 0;
};

// Index kept from range j = [lo, hi): lo + floor(h (hi - lo) / 2^64) for the hash h of (seed, j).
inline size_t pick(uint64_t seed, size_t j, size_t lo, size_t hi) {
  using u128 = unsigned __int128;
  uint64_t h = mix(seed ^ mix(j));
  return lo + static_cast<size_t>((static_cast<u128>(h) * (hi - lo)) >> 64);
}

}  // namespace

void encodeRandomK(const float* x, size_t n, size_t k, uint64_t seed, uint8_t* out) {
  std::memcpy(out, &seed, 8);
  float* val = reinterpret_cast<float*>(out + 8);
  Strata s(n, k);
  for (size_t j = 0; j < k; ++j, s.next()) val[j] = x[pick(seed, j, s.lo(), s.hi())];
}

// Without accumulate, one pass writes each range: zeros around its kept value.
void decodeRandomK(const uint8_t* in, size_t n, size_t k, float* y, bool accumulate) {
  uint64_t seed;
  std::memcpy(&seed, in, 8);
  const float* val = reinterpret_cast<const float*>(in + 8);
  Strata s(n, k);
  for (size_t j = 0; j < k; ++j, s.next()) {
    size_t lo = s.lo(), hi = s.hi(), at = pick(seed, j, lo, hi);
    if (accumulate) {
      y[at] += val[j];
      continue;
    }
    for (size_t i = lo; i < hi; ++i) y[i] = 0.0f;
    y[at] = 0.0f + val[j];  // as an add to a zeroed array: a kept -0 decodes to +0
  }
}

}  // namespace quant
}  // namespace nodeccl
