// SPDX-License-Identifier: Apache-2.0
// Top-k sparsification: the k elements of largest |x|, sent as k uint32 indices (ascending)
// followed by their k float32 values; the rest decode to 0. Ties at the k-th magnitude go to
// the lower indices. NaN counts as larger than infinity (it is kept, never hidden).
// Error: exact on the kept elements; every dropped |x| <= every kept |x|.
//
// Selection works on the magnitude's float32 bits (ordered like the values, NaN above inf):
//   1. Estimate a threshold t from 16 Ki evenly spaced samples, aiming at ~2k candidates.
//   2. One pass collects the indices and values with |x| >= t (AVX-512: 16 compares and a
//      compress per step; AVX2: 8 compares and a movemask), near memory speed.
//   3. A histogram of 64 Ki bins over the candidates' key range finds the bin holding the k-th
//      largest key; nth_element over that bin's keys alone gives the exact k-th largest T. A
//      pass over the candidates in index order keeps those above T and the first ones equal.
// Too few candidates (a skewed sample) or small inputs take every element as a candidate (t = 0).
// Every level collects the same candidates in the same order, so the output is the same.
// Cost: one read of x (4 bytes per element) plus O(candidates + 2^16) work; decode writes n
// floats.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
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

// Candidates: indices (ascending) and their values' bits, in two growing arrays (the values
// travel with the indices, so the output needs no second, random read of x). `kSlack` entries
// past the count stay writable, so a vector kernel may store a full register of which only the
// first few entries count.
class Candidates {
 public:
  static constexpr size_t kSlack = 16;
  size_t size = 0;
  uint32_t* idx() { return idx_.get(); }
  uint32_t* bits() { return bits_.get(); }

  // Room for `more` entries (plus the slack) past size.
  void reserve(size_t more) {
    size_t want = size + more + kSlack;
    if (want <= cap_) return;
    size_t cap = std::max(want, 2 * cap_);
    std::unique_ptr<uint32_t[]> i(new uint32_t[cap]), b(new uint32_t[cap]);
    if (size) {
      std::memcpy(i.get(), idx_.get(), size * 4);
      std::memcpy(b.get(), bits_.get(), size * 4);
    }
    idx_ = std::move(i), bits_ = std::move(b), cap_ = cap;
  }

 private:
  std::unique_ptr<uint32_t[]> idx_, bits_;
  size_t cap_ = 0;
};

// Appends the i in [b, e) with key >= t, ascending; the caller reserved e - b entries.
void collectBaseline(const float* x, size_t b, size_t e, uint32_t t, Candidates& c) {
  uint32_t *idx = c.idx(), *bits = c.bits();
  size_t m = c.size;
  for (size_t i = b; i < e; ++i) {
    uint32_t u;
    std::memcpy(&u, x + i, 4);
    if ((u & 0x7fffffffu) >= t) idx[m] = static_cast<uint32_t>(i), bits[m] = u, ++m;
  }
  c.size = m;
}

#if NODECCL_HAVE_X86_DISPATCH
// Keys are < 2^31, so a signed compare with t - 1 is key >= t (t = 0: -1, every key).
NODECCL_TARGET_AVX2 void collectAvx2(const float* x, size_t b, size_t e, uint32_t t,
                                     Candidates& c) {
  const __m256i mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i below = _mm256_set1_epi32(static_cast<int>(t) - 1);
  uint32_t *idx = c.idx(), *out = c.bits();
  size_t m = c.size, i = b;
  for (; i + 8 <= e; i += 8) {
    __m256i k = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)),
                                 mask);
    unsigned bits = static_cast<unsigned>(
        _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(k, below))));
    while (bits) {
      size_t j = i + __builtin_ctz(bits);
      idx[m] = static_cast<uint32_t>(j);
      std::memcpy(out + m, x + j, 4);
      ++m;
      bits &= bits - 1;
    }
  }
  c.size = m;
  collectBaseline(x, i, e, t, c);
}

// 16 keys a step; the hits' indices and values are packed to the front of a register (compress)
// and stored whole at every step, the count advancing by the number of hits (no branch: whether
// a step of 16 has a hit is unpredictable, and a mispredicted branch cost more than the stores).
NODECCL_TARGET_AVX512 void collectAvx512(const float* x, size_t b, size_t e, uint32_t t,
                                         Candidates& c) {
  const __m512i mask = _mm512_set1_epi32(0x7fffffff);
  const __m512i below = _mm512_set1_epi32(static_cast<int>(t) - 1);
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // Scalar steps up to a 64-byte boundary of x (a load spanning two cache lines costs double).
  size_t i = std::min(e, b + (64 - reinterpret_cast<uintptr_t>(x + b) % 64) % 64 / 4);
  collectBaseline(x, b, i, t, c);
  uint32_t *idx = c.idx(), *bits = c.bits();
  size_t m = c.size;
  for (; i + 16 <= e; i += 16) {
    __m512i v = _mm512_load_si512(x + i);
    __mmask16 hit = _mm512_cmpgt_epi32_mask(_mm512_and_si512(v, mask), below);
    __m512i at = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(i)), iota);
    _mm512_storeu_si512(idx + m, _mm512_maskz_compress_epi32(hit, at));
    _mm512_storeu_si512(bits + m, _mm512_maskz_compress_epi32(hit, v));
    m += static_cast<size_t>(__builtin_popcount(hit));
  }
  c.size = m;
  collectBaseline(x, i, e, t, c);
}
#endif

// Appends every i in [0, n) with key >= t, in chunks so the arrays grow only as hits need.
void collect(const float* x, size_t n, uint32_t t, Candidates& c) {
  const size_t chunk = 1 << 16;
  for (size_t b = 0; b < n; b += chunk) {
    size_t e = std::min(n, b + chunk);
    c.reserve(e - b);
#if NODECCL_HAVE_X86_DISPATCH
    if (simd::isa() == simd::Isa::kAvx512) {
      collectAvx512(x, b, e, t, c);
      continue;
    }
    if (simd::isa() == simd::Isa::kAvx2) {
      collectAvx2(x, b, e, t, c);
      continue;
    }
#endif
    collectBaseline(x, b, e, t, c);
  }
}

// The k-th largest key (|x| as bits) of the values bits[0..m) (1 <= k <= m). A histogram of
// 64 Ki bins spread evenly over the candidates' key range finds the bin holding it; then
// nth_element runs over that bin's keys only (a few on smooth data; all of them when most keys
// are equal, which is still correct).
uint32_t kthLargest(const uint32_t* bits, size_t m, size_t k) {
  uint32_t lo = 0x7fffffffu, hi = 0;
  for (size_t j = 0; j < m; ++j) {
    uint32_t key = bits[j] & 0x7fffffffu;
    lo = key < lo ? key : lo;
    hi = key > hi ? key : hi;
  }
  int shift = 0;
  while (((hi - lo) >> shift) >= (1u << 16)) ++shift;
  std::vector<uint32_t> count(((hi - lo) >> shift) + 1, 0);
  for (size_t j = 0; j < m; ++j) ++count[((bits[j] & 0x7fffffffu) - lo) >> shift];

  // The bin: walking down from the top until k keys are covered.
  size_t bin = count.size(), above = 0;
  while (above + count[bin - 1] < k) above += count[--bin];
  --bin;

  // Its keys (stored unconditionally, counted when they belong: no unpredictable branch).
  std::vector<uint32_t> in(count[bin] + 1);
  size_t got = 0;
  for (size_t j = 0; j < m; ++j) {
    uint32_t key = bits[j] & 0x7fffffffu;
    in[got] = key;
    got += ((key - lo) >> shift) == bin;
    if (got == count[bin]) break;
  }
  size_t r = k - above;
  std::nth_element(in.begin(), in.begin() + (got - r), in.begin() + got);
  return in[got - r];
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
  Candidates cand;
  uint32_t t = estimateThreshold(x, n, k);
  if (t > 0) cand.reserve(3 * k);  // ~2k expected: one allocation, pages touched as filled
  collect(x, n, t, cand);
  if (cand.size < k) {
    cand.size = 0;
    collect(x, n, 0, cand);
  }
  const uint32_t* ci = cand.idx();
  const uint32_t* cb = cand.bits();
  uint32_t kth = kthLargest(cb, cand.size, k);

  // Keep keys above kth, and the first ones equal to it until k are kept.
  size_t above = 0;
  for (size_t j = 0; j < cand.size; ++j) above += (cb[j] & 0x7fffffffu) > kth;
  // (Branch-free: every candidate is written at m, which advances only when it is kept; the
  // loop ends once k are kept, so the writes stay inside idx[0..k) and val[0..k).)
  size_t equalLeft = k - above, m = 0;
  for (size_t j = 0; j < cand.size && m < k; ++j) {
    uint32_t key = cb[j] & 0x7fffffffu;
    size_t equal = key == kth;
    size_t keep = (key > kth) | (equal & (equalLeft > 0));
    equalLeft -= equal & keep;
    idx[m] = ci[j];
    std::memcpy(val + m, cb + j, 4);
    m += keep;
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
