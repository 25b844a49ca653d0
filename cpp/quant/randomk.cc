// SPDX-License-Identifier: Apache-2.0
// Random-k sparsification, stratified: the n elements are cut into k nearly equal ranges and
// one element of each is kept, chosen by a hash of (seed, range). Only the values travel: the
// encoded bytes are the 8-byte seed then k float32 values, and the decoder regenerates the
// indices from the seed. The same seed picks the same elements on every rank, so the senders of
// one step agree without exchanging indices; change the seed each step (the error-feedback
// wrapper does) to cover every element over time.
// Error: exact on the kept elements, the rest decode to 0 (no 1/ratio rescaling: with error
// feedback the dropped part is sent later, and rescaling would inflate the variance).
// Cost: k hashes and k random reads; decode writes n floats.
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

// Index kept from range j of k over n: range [j n / k, (j + 1) n / k), computed in 128 bits.
inline size_t pick(uint64_t seed, size_t j, size_t n, size_t k) {
  using u128 = unsigned __int128;
  size_t lo = static_cast<size_t>(static_cast<u128>(j) * n / k);
  size_t hi = static_cast<size_t>(static_cast<u128>(j + 1) * n / k);
  uint64_t h = mix(seed ^ mix(j));
  return lo + static_cast<size_t>((static_cast<u128>(h) * (hi - lo)) >> 64);
}

}  // namespace

void encodeRandomK(const float* x, size_t n, size_t k, uint64_t seed, uint8_t* out) {
  std::memcpy(out, &seed, 8);
  float* val = reinterpret_cast<float*>(out + 8);
  for (size_t j = 0; j < k; ++j) val[j] = x[pick(seed, j, n, k)];
}

void decodeRandomK(const uint8_t* in, size_t n, size_t k, float* y, bool accumulate) {
  uint64_t seed;
  std::memcpy(&seed, in, 8);
  const float* val = reinterpret_cast<const float*>(in + 8);
  if (!accumulate) std::memset(y, 0, n * sizeof(float));
  for (size_t j = 0; j < k; ++j) y[pick(seed, j, n, k)] += val[j];
}

}  // namespace quant
}  // namespace nodeccl
