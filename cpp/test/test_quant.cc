// SPDX-License-Identifier: Apache-2.0
// Tests the gradient codecs (quant/codec.h) for their documented round-trip error bounds on
// random inputs with zeros, subnormals and non-finite values, against plain references, for
// identical bytes at every instruction-set level, and the error-feedback invariant over steps.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "optim/simd.h"
#include "quant/codec.h"
#include "quant/dynamic_map.h"
#include "test/harness.h"

using namespace nodeccl;
using namespace nodeccl::quant;

namespace {

const std::vector<size_t> kSizes = {0, 1, 3, 17, 1000, 4099, 100003};

// Normal values with a zero block, a subnormal block and a few exact zeros.
std::vector<float> sample(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  for (size_t i = 0; i < n && i < 64; ++i) x[i] = 0.0f;              // an all-zero block
  for (size_t i = 64; i < n && i < 128; ++i) x[i] = 1e-40f * normal(rng);  // subnormals
  if (n > 300) x[300] = -0.0f;
  return x;
}

std::vector<float> roundTrip(const Codec& c, const std::vector<float>& x) {
  std::vector<uint8_t> bytes(encodedBytes(c, x.size()));
  std::vector<float> y(x.size(), 123.0f);
  encode(c, x.data(), x.size(), bytes.data(), bytes.size());
  decode(c, bytes.data(), bytes.size(), y.data(), y.size(), false);
  return y;
}

// Largest |x| of the block of each element, in float64.
std::vector<double> blockAbsmax(const std::vector<float>& x, size_t block) {
  size_t bl = block ? block : std::max<size_t>(x.size(), 1);
  std::vector<double> out(x.size());
  for (size_t b = 0; b < x.size(); b += bl) {
    size_t e = std::min(x.size(), b + bl);
    double m = 0;
    for (size_t j = b; j < e; ++j) m = std::max(m, std::fabs(static_cast<double>(x[j])));
    for (size_t j = b; j < e; ++j) out[j] = m;
  }
  return out;
}

constexpr double kMinSub = 1.401298464324817e-45;  // smallest float32 subnormal

}  // namespace

NODECCL_TEST(quant_dynamic_map_encodes_to_the_nearest_entry) {
  for (const DynamicMap* d : {&signedMagnitudes(), &unsignedMagnitudes()}) {
    EXPECT_EQ(d->value[0], 0.0f);
    EXPECT_EQ(d->value[d->size - 1], 1.0f);
    std::mt19937 rng(1);
    std::uniform_real_distribution<double> logu(-9, 0);
    for (int t = 0; t < 200000; ++t) {
      float a = static_cast<float>(std::pow(10.0, logu(rng)));
      if (t < 4) a = t == 0 ? 0.0f : (t == 1 ? 1.0f : (t == 2 ? 1e-30f : 0.5f));
      int best = 0;
      for (int i = 1; i < d->size; ++i) {
        if (std::fabs(d->value[i] - a) < std::fabs(d->value[best] - a)) best = i;
      }
      int got = encodeMagnitude(*d, a);
      if (got != best && std::fabs(d->value[got] - a) != std::fabs(d->value[best] - a)) {
        EXPECT_EQ(got, best);
        break;
      }
    }
  }
}

NODECCL_TEST(quant_float16_and_bfloat16_round_to_nearest_even) {
  for (size_t n : kSizes) {
    std::vector<float> x = sample(n, 11);
    std::vector<float> h = roundTrip(Codec{CodecKind::kFloat16}, x);
    std::vector<float> b = roundTrip(Codec{CodecKind::kBFloat16}, x);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(h[i], halfToFloat(floatToHalf(x[i])));  // the scalar reference, bit for bit
      EXPECT_EQ(b[i], bf16ToFloat(floatToBf16(x[i])));
      double ax = std::fabs(x[i]);
      EXPECT_TRUE(std::fabs(h[i] - x[i]) <= std::ldexp(ax, -11) + std::ldexp(1.0, -25));
      EXPECT_TRUE(std::fabs(b[i] - x[i]) <= std::ldexp(ax, -8) + std::ldexp(1.0, -134));
    }
  }
  // Saturation, infinity and NaN.
  std::vector<float> edge = {1e6f, -70000.0f, INFINITY, -INFINITY, NAN, 65504.0f, 1e-8f, 0.0f};
  std::vector<float> h = roundTrip(Codec{CodecKind::kFloat16}, edge);
  EXPECT_EQ(h[0], 65504.0f);
  EXPECT_EQ(h[1], -65504.0f);
  EXPECT_EQ(h[2], INFINITY);
  EXPECT_EQ(h[3], -INFINITY);
  EXPECT_TRUE(std::isnan(h[4]));
  EXPECT_EQ(h[5], 65504.0f);
  std::vector<float> b = roundTrip(Codec{CodecKind::kBFloat16}, edge);
  EXPECT_TRUE(std::isnan(b[4]));
  EXPECT_EQ(b[2], INFINITY);
}

NODECCL_TEST(quant_int8_and_int4_meet_their_bounds) {
  for (size_t n : kSizes) {
    std::vector<float> x = sample(n, 12);
    for (size_t block : {size_t(0), size_t(64), size_t(256)}) {
      std::vector<double> absmax = blockAbsmax(x, block);
      std::vector<float> y8 = roundTrip(Codec{CodecKind::kInt8, block}, x);
      for (size_t i = 0; i < n; ++i) {
        double m = absmax[i];
        EXPECT_TRUE(std::fabs(y8[i] - x[i]) <= m / 254 * (1 + 1e-6) + 128 * kMinSub);
      }
      if (block == 0) continue;
      std::vector<float> y4 = roundTrip(Codec{CodecKind::kInt4, block}, x);
      for (size_t i = 0; i < n; ++i) {
        double m = absmax[i];
        EXPECT_TRUE(std::fabs(y4[i] - x[i]) <= m / 14 * (1 + 1e-6) + 8 * kMinSub);
      }
    }
  }
}

NODECCL_TEST(quant_int8_by_hand) {
  // absmax 2: s = 2 / 127; 1 -> 63.5 -> 64 (ties to even) -> 1.00787; -2 -> -127 -> -2;
  // 0.01 -> 0.635 -> 1 -> 0.015748. Layout: scale, then codes.
  std::vector<float> x = {1.0f, -2.0f, 0.01f, 0.0f};
  std::vector<uint8_t> bytes(encodedBytes(Codec{CodecKind::kInt8}, 4));
  EXPECT_EQ(bytes.size(), size_t(8));
  encode(Codec{CodecKind::kInt8}, x.data(), 4, bytes.data(), bytes.size());
  float s;
  std::memcpy(&s, bytes.data(), 4);
  EXPECT_EQ(s, 2.0f / 127.0f);
  EXPECT_EQ(static_cast<int8_t>(bytes[4]), 64);
  EXPECT_EQ(static_cast<int8_t>(bytes[5]), -127);
  EXPECT_EQ(static_cast<int8_t>(bytes[6]), 1);
  EXPECT_EQ(static_cast<int8_t>(bytes[7]), 0);
}

NODECCL_TEST(quant_non_finite_blocks_decode_to_nan) {
  std::vector<float> x(128, 0.5f);
  x[3] = NAN;
  x[70] = INFINITY;
  for (CodecKind k : {CodecKind::kInt8, CodecKind::kInt4, CodecKind::kSign1}) {
    std::vector<float> y = roundTrip(Codec{k, 64}, x);
    for (size_t i = 0; i < 128; ++i) EXPECT_TRUE(std::isnan(y[i]));
  }
  // An all-zero tensor stays zero (scale 0, no division by zero).
  std::vector<float> z(100, 0.0f);
  for (CodecKind k : {CodecKind::kInt8, CodecKind::kInt4, CodecKind::kSign1}) {
    std::vector<float> y = roundTrip(Codec{k, 64}, z);
    for (float v : y) EXPECT_EQ(v, 0.0f);
  }
}

NODECCL_TEST(quant_sign1_keeps_signs_and_block_l1) {
  for (size_t n : kSizes) {
    std::vector<float> x = sample(n, 13);
    for (size_t block : {size_t(0), size_t(64)}) {
      std::vector<float> y = roundTrip(Codec{CodecKind::kSign1, block}, x);
      size_t bl = block ? block : n;
      for (size_t b = 0; b < n; b += bl) {
        double l1x = 0, l1y = 0;
        for (size_t i = b; i < std::min(n, b + bl); ++i) {
          l1x += std::fabs(x[i]), l1y += std::fabs(y[i]);
          if (x[i] != 0) EXPECT_EQ(std::signbit(x[i]), std::signbit(y[i]));
        }
        EXPECT_NEAR(l1y, l1x, 1e-6 * (1 + l1x));
      }
    }
  }
}

NODECCL_TEST(quant_topk_keeps_the_largest) {
  for (size_t n : {size_t(1), size_t(17), size_t(4099), size_t(300007)}) {
    std::vector<float> x = sample(n, 14);
    for (double ratio : {0.001, 0.01, 0.3, 1.0}) {
      Codec c{CodecKind::kTopK, 0, ratio};
      size_t k = keptCount(ratio, n);
      std::vector<float> y = roundTrip(c, x);
      // The k-th largest |x| (reference: a full sort).
      std::vector<float> mags(n);
      for (size_t i = 0; i < n; ++i) mags[i] = std::fabs(x[i]);
      std::sort(mags.begin(), mags.end());
      float kth = mags[n - k];
      size_t kept = 0;
      for (size_t i = 0; i < n; ++i) {
        if (y[i] != 0 || std::signbit(y[i]) != std::signbit(0.0f)) {
          EXPECT_EQ(y[i], x[i]);
        }
        if (std::fabs(x[i]) > kth) EXPECT_EQ(y[i], x[i]);
        if (y[i] != 0) ++kept;
      }
      EXPECT_TRUE(kept <= k);
    }
  }
}

NODECCL_TEST(quant_randomk_keeps_one_per_stratum) {
  size_t n = 10007;
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(i + 1);  // no zeros: kept = non-zero
  for (uint64_t seed : {0ull, 1ull, 0xdeadbeefull}) {
    Codec c{CodecKind::kRandomK, 0, 0.01, seed};
    size_t k = keptCount(0.01, n);
    std::vector<float> y = roundTrip(c, x);
    std::vector<size_t> kept;
    for (size_t i = 0; i < n; ++i) {
      if (y[i] != 0) {
        EXPECT_EQ(y[i], x[i]);
        kept.push_back(i);
      }
    }
    EXPECT_EQ(kept.size(), k);
    for (size_t j = 0; j < kept.size(); ++j) {
      EXPECT_TRUE(kept[j] >= j * n / k && kept[j] < (j + 1) * n / k);  // range j of k
    }
  }
}

NODECCL_TEST(quant_decode_accumulates) {
  std::vector<float> x = sample(1000, 15);
  for (CodecKind kind : {CodecKind::kFloat16, CodecKind::kBFloat16, CodecKind::kInt8,
                         CodecKind::kInt4, CodecKind::kSign1, CodecKind::kTopK,
                         CodecKind::kRandomK}) {
    Codec c{kind, 64, 0.1, 5};
    std::vector<uint8_t> bytes(encodedBytes(c, x.size()));
    encode(c, x.data(), x.size(), bytes.data(), bytes.size());
    std::vector<float> once(x.size()), twice(x.size(), 1.0f);
    decode(c, bytes.data(), bytes.size(), once.data(), once.size(), false);
    decode(c, bytes.data(), bytes.size(), twice.data(), twice.size(), true);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(twice[i], 1.0f + once[i]);
  }
}

NODECCL_TEST(quant_isa_levels_give_identical_bytes) {
  using simd::Isa;
  std::vector<float> x = sample(100003, 16);
  x[5000] = NAN;
  for (CodecKind kind : {CodecKind::kFloat16, CodecKind::kBFloat16, CodecKind::kInt8,
                         CodecKind::kInt4, CodecKind::kSign1, CodecKind::kTopK}) {
    Codec c{kind, 256, 0.01};
    std::vector<std::vector<uint8_t>> out;
    std::vector<std::vector<float>> dec;
    for (Isa level : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512}) {
      if (static_cast<int>(level) > static_cast<int>(simd::detectedIsa())) continue;
      simd::setIsaForTesting(true, level);
      std::vector<uint8_t> bytes(encodedBytes(c, x.size()));
      encode(c, x.data(), x.size(), bytes.data(), bytes.size());
      std::vector<float> y(x.size());
      decode(c, bytes.data(), bytes.size(), y.data(), y.size(), false);
      out.push_back(bytes);
      dec.push_back(y);
    }
    simd::setIsaForTesting(false, Isa::kBaseline);
    for (size_t j = 1; j < out.size(); ++j) {
      EXPECT_TRUE(out[j] == out[0]);
      EXPECT_TRUE(std::memcmp(dec[j].data(), dec[0].data(), dec[0].size() * 4) == 0);
    }
  }
}

namespace {

// Runs fn once per instruction-set level this CPU has, forced, then restores detection.
template <class F>
void atEveryLevel(F fn) {
  using simd::Isa;
  for (Isa level : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512}) {
    if (static_cast<int>(level) > static_cast<int>(simd::detectedIsa())) continue;
    simd::setIsaForTesting(true, level);
    fn();
  }
  simd::setIsaForTesting(false, Isa::kBaseline);
}

// sign1 by its definition: 8 float64 partial sums (element 8q + j into sum j, the rest into sum
// 0, then 0..7 in order), sign bits packed low bit first.
std::vector<uint8_t> sign1Reference(const std::vector<float>& x, size_t block) {
  size_t n = x.size(), bl = block ? block : n, nb = blockCount(n, block);
  std::vector<uint8_t> out(4 * nb + (n + 7) / 8, 0);
  for (size_t b = 0, k = 0; b < n; b += bl, ++k) {
    size_t len = std::min(bl, n - b);
    double part[8] = {0};
    bool finite = true;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
      for (size_t j = 0; j < 8; ++j) part[j] += std::fabs(x[b + i + j]);
    }
    for (; i < len; ++i) part[0] += std::fabs(x[b + i]);
    double sum = 0;
    for (double v : part) sum += v;
    for (size_t j = 0; j < len; ++j) finite = finite && std::isfinite(x[b + j]);
    float s = finite ? static_cast<float>(sum / static_cast<double>(len)) : NAN;
    std::memcpy(out.data() + 4 * k, &s, 4);
    for (size_t j = 0; j < len; ++j) {
      if (std::signbit(x[b + j])) out[4 * nb + (b + j) / 8] |= 1 << ((b + j) % 8);
    }
  }
  return out;
}

// top-k by its definition: a stable sort by |x| descending (NaN first), the first k in index
// order.
std::vector<uint8_t> topkReference(const std::vector<float>& x, size_t k) {
  auto key = [&](size_t i) {
    uint32_t u;
    std::memcpy(&u, &x[i], 4);
    return u & 0x7fffffffu;
  };
  std::vector<size_t> order(x.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) > key(b); });
  order.resize(k);
  std::sort(order.begin(), order.end());
  std::vector<uint8_t> out(8 * k);
  for (size_t j = 0; j < k; ++j) {
    uint32_t at = static_cast<uint32_t>(order[j]);
    std::memcpy(out.data() + 4 * j, &at, 4);
    std::memcpy(out.data() + 4 * (k + j), &x[order[j]], 4);
  }
  return out;
}

// random-k's index for range j by its definition (128-bit products, splitmix64 of (seed, j)).
uint64_t splitmix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

size_t randomkReferencePick(uint64_t seed, size_t j, size_t n, size_t k) {
  using u128 = unsigned __int128;
  size_t lo = static_cast<size_t>(static_cast<u128>(j) * n / k);
  size_t hi = static_cast<size_t>(static_cast<u128>(j + 1) * n / k);
  uint64_t h = splitmix(seed ^ splitmix(j));
  return lo + static_cast<size_t>((static_cast<u128>(h) * (hi - lo)) >> 64);
}

}  // namespace

NODECCL_TEST(quant_sign1_one_pass_matches_reference) {
  // The fused AVX2/AVX-512 pass (bits, maximum and partial sums together) against the three-
  // pass definition, at sizes around the 8- and 16-wide steps and with a NaN block.
  for (size_t n : {size_t(1), size_t(7), size_t(8), size_t(15), size_t(16), size_t(17),
                   size_t(23), size_t(4104), size_t(100003)}) {
    std::vector<float> x = sample(n, 21);
    if (n > 4000) x[4000] = NAN;
    for (size_t block : {size_t(0), size_t(8), size_t(24), size_t(64)}) {
      Codec c{CodecKind::kSign1, block};
      std::vector<uint8_t> want = sign1Reference(x, block);
      atEveryLevel([&] {
        std::vector<uint8_t> got(encodedBytes(c, n));
        encode(c, x.data(), n, got.data(), got.size());
        EXPECT_TRUE(got == want);
      });
    }
  }
}

NODECCL_TEST(quant_topk_sampled_threshold_matches_full_sort) {
  // n = 2^18 takes the sampled-threshold path; ties (values on a 1/4 grid), a periodic ramp,
  // NaN/inf, and an input whose evenly spaced samples (every 16th element) all see the large
  // values, so the estimate leaves too few candidates for k = 10% and the encoder falls back to
  // all elements: each must give exactly the elements a stable full sort picks.
  size_t n = 1 << 18;
  std::mt19937 rng(22);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> inputs(4, std::vector<float>(n));
  for (size_t i = 0; i < n; ++i) {
    inputs[0][i] = std::round(normal(rng) * 4) / 4;
    inputs[1][i] = static_cast<float>(i % 1024) * 0.001f;
    inputs[2][i] = normal(rng);
    inputs[3][i] = i % 16 == 0 ? 1.0f + normal(rng) * 0.01f : normal(rng) * 0.01f;
  }
  inputs[2][77] = NAN, inputs[2][90000] = -INFINITY, inputs[2][5] = -0.0f;
  for (const std::vector<float>& x : inputs) {
    for (double ratio : {0.001, 0.01, 0.1}) {
      Codec c{CodecKind::kTopK, 0, ratio};
      std::vector<uint8_t> want = topkReference(x, keptCount(ratio, n));
      atEveryLevel([&] {
        std::vector<uint8_t> got(encodedBytes(c, n));
        encode(c, x.data(), n, got.data(), got.size());
        EXPECT_TRUE(got == want);
      });
    }
  }
}

NODECCL_TEST(quant_randomk_walk_matches_the_128_bit_formula) {
  // The division-free walk over the ranges gives the indices of the 128-bit formula, for k
  // dividing n and not; decoding writes zeros around each value (a kept -0 decodes to +0, as an
  // add to a zeroed array would).
  for (size_t n : {size_t(1), size_t(10), size_t(997), size_t(100003), size_t(1 << 20)}) {
    std::vector<float> x = sample(n, 23);
    if (n > 1) x[0] = -0.0f;
    for (double ratio : {0.001, 0.01, 0.37, 1.0}) {
      Codec c{CodecKind::kRandomK, 0, ratio, 0x1234 + n};
      size_t k = keptCount(ratio, n);
      std::vector<uint8_t> bytes(encodedBytes(c, n));
      encode(c, x.data(), n, bytes.data(), bytes.size());
      std::vector<float> y(n, 5.0f), want(n, 0.0f);
      decode(c, bytes.data(), bytes.size(), y.data(), n, false);
      for (size_t j = 0; j < k; ++j) {
        size_t at = randomkReferencePick(c.seed, j, n, k);
        float v;
        std::memcpy(&v, bytes.data() + 8 + 4 * j, 4);
        EXPECT_TRUE(std::memcmp(&v, &x[at], 4) == 0);
        want[at] += v;
      }
      EXPECT_TRUE(std::memcmp(y.data(), want.data(), 4 * n) == 0);
    }
  }
}

NODECCL_TEST(quant_error_feedback_loses_nothing) {
  // Over 6 steps: sum of what was sent (decoded) + residual == sum of the raw gradients, exactly
  // in float64, for every lossy codec.
  size_t n = 4099;
  for (CodecKind kind : {CodecKind::kInt8, CodecKind::kInt4, CodecKind::kSign1,
                         CodecKind::kTopK, CodecKind::kRandomK, CodecKind::kFloat16}) {
    std::vector<double> residual(n, 0.0), sentSum(n, 0.0), gradSum(n, 0.0);
    std::vector<float> scratch(2 * n), decoded(n);
    for (int step = 0; step < 6; ++step) {
      Codec c{kind, 64, 0.05, static_cast<uint64_t>(step)};
      std::vector<float> g = sample(n, 100 + step);
      std::vector<uint8_t> bytes(encodedBytes(c, n));
      encodeWithFeedback(c, g.data(), residual.data(), n, bytes.data(), bytes.size(),
                         scratch.data());
      decode(c, bytes.data(), bytes.size(), decoded.data(), n, false);
      for (size_t i = 0; i < n; ++i) {
        sentSum[i] += decoded[i];
        gradSum[i] += g[i];
      }
    }
    size_t mismatches = 0;
    for (size_t i = 0; i < n; ++i) mismatches += sentSum[i] + residual[i] != gradSum[i];
    EXPECT_EQ(mismatches, size_t(0));
  }
}

NODECCL_TEST(quant_rejects_bad_codecs_and_sizes) {
  std::vector<float> x(10);
  std::vector<uint8_t> bytes(3);
  EXPECT_THROWS_CODE(encode(Codec{CodecKind::kInt8}, x.data(), 10, bytes.data(), 3),
                     ErrorCode::kInvalidArgument, "encode to 14");
  EXPECT_THROWS_CODE(validate(Codec{CodecKind::kInt4, 0}), ErrorCode::kInvalidArgument,
                     "blockSize");
  EXPECT_THROWS_CODE(validate(Codec{CodecKind::kSign1, 12}), ErrorCode::kInvalidArgument,
                     "multiple of 8");
  EXPECT_THROWS_CODE(validate(Codec{CodecKind::kTopK, 0, 0.0}), ErrorCode::kInvalidArgument,
                     "ratio");
  // Top-k bytes with an index out of range.
  std::vector<uint8_t> bad(8);
  uint32_t idx = 50;
  std::memcpy(bad.data(), &idx, 4);
  std::vector<float> y(10);
  EXPECT_THROWS_CODE(decode(Codec{CodecKind::kTopK, 0, 0.1}, bad.data(), 8, y.data(), 10, false),
                     ErrorCode::kInvalidArgument, "index 0 is 50");
}
