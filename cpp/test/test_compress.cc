// SPDX-License-Identifier: Apache-2.0
// Tests the compression kernels (compress/compress.h): exact pruning counts and ties, sparse and
// bit-packed round trips with corruption checks, k-means optimality and determinism,
// quantization error bounds and hand-worked codes, and the distillation loss against a float64
// reference and finite differences.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "common/error.h"
#include "compress/compress.h"
#include "test/harness.h"

using namespace nodeccl;
using namespace nodeccl::compress;

namespace {

std::vector<float> randomFloats(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// Global pruning over `ts`; returns the masks.
std::vector<std::vector<uint8_t>> prune(const std::vector<std::vector<float>>& ts, double s,
                                        size_t* pruned = nullptr) {
  std::vector<const float*> p;
  std::vector<size_t> sizes;
  std::vector<std::vector<uint8_t>> masks;
  for (auto& t : ts) p.push_back(t.data()), sizes.push_back(t.size()), masks.emplace_back(t.size());
  std::vector<uint8_t*> m;
  for (auto& mask : masks) m.push_back(mask.data());
  size_t n = magnitudeMask(p.data(), sizes.data(), ts.size(), s, m.data());
  if (pruned) *pruned = n;
  return masks;
}

}  // namespace

// ---- pruning ---------------------------------------------------------------------------------

NODECCL_TEST(compress_prune_hand_worked) {
  // One tensor, half pruned: |-0.1| and |-0.2| are the two smallest.
  auto m = prune({{0.5f, -0.1f, 0.3f, -0.2f}}, 0.5);
  EXPECT_TRUE((m[0] == std::vector<uint8_t>{1, 0, 1, 0}));

  // Global over two tensors: 0.4 * 5 = 2 pruned, the magnitudes 0.5 and 1 (one in each).
  m = prune({{1.0f, -3.0f}, {2.0f, 0.5f, -4.0f}}, 0.4);
  EXPECT_TRUE((m[0] == std::vector<uint8_t>{0, 1}));
  EXPECT_TRUE((m[1] == std::vector<uint8_t>{1, 0, 1}));

  // All tied: the first two in index order go, so the count stays exact.
  size_t n = 0;
  m = prune({{1.0f, -1.0f, 1.0f, 1.0f}}, 0.5, &n);
  EXPECT_EQ(n, size_t{2});
  EXPECT_TRUE((m[0] == std::vector<uint8_t>{0, 0, 1, 1}));
}

NODECCL_TEST(compress_prune_counts_and_order) {
  std::mt19937 rng(7);
  std::vector<std::vector<float>> ts = {randomFloats(rng, 0), randomFloats(rng, 1),
                                        randomFloats(rng, 97), randomFloats(rng, 4096, 0.01f)};
  for (double s : {0.0, 0.1, 0.5, 0.9, 0.999, 1.0}) {
    size_t pruned = 0;
    auto m = prune(ts, s, &pruned);
    size_t zeros = 0;
    float maxPruned = 0, minKept = INFINITY;
    for (size_t t = 0; t < ts.size(); ++t) {
      for (size_t i = 0; i < ts[t].size(); ++i) {
        zeros += m[t][i] == 0;
        float a = std::fabs(ts[t][i]);
        if (m[t][i]) minKept = std::min(minKept, a); else maxPruned = std::max(maxPruned, a);
      }
    }
    EXPECT_EQ(zeros, pruned);
    EXPECT_EQ(pruned, static_cast<size_t>(std::llround(s * 4194)));
    EXPECT_TRUE(maxPruned <= minKept);
  }
}

NODECCL_TEST(compress_prune_apply_and_errors) {
  std::vector<float> w = {1, 2, 3, 4};
  std::vector<uint8_t> mask = {1, 0, 0, 1};
  float* tp = w.data();
  const uint8_t* mp = mask.data();
  size_t size = 4;
  applyMask(&tp, &mp, &size, 1);
  EXPECT_TRUE((w == std::vector<float>{1, 0, 0, 4}));

  std::vector<float> bad = {1, NAN};
  EXPECT_THROWS_CODE(prune({bad}, 0.5), ErrorCode::kInvalidArgument, "NaN at index 1");
  EXPECT_THROWS_CODE(prune({w}, 1.5), ErrorCode::kInvalidArgument, "sparsity must be in [0, 1]");
}

// ---- sparse storage ---------------------------------------------------------------------------

NODECCL_TEST(compress_sparse_round_trip) {
  std::mt19937 rng(3);
  for (size_t n : {0, 1, 7, 8, 9, 1000}) {
    std::vector<float> x = randomFloats(rng, n);
    for (size_t i = 0; i < n; i += 3) x[i] = (i % 2) ? -0.0f : 0.0f;
    size_t nnz = countNonzero(x.data(), n);
    std::vector<uint8_t> bitmap((n + 7) / 8);
    std::vector<float> values(nnz), back(n, 42.0f);
    EXPECT_EQ(sparseEncode(x.data(), n, bitmap.data(), values.data(), nnz), nnz);
    sparseDecode(bitmap.data(), values.data(), nnz, n, back.data());
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(back[i], x[i]);  // -0 comes back as 0 (equal)
  }

  // Hand-worked: x = {0, 2, 0, 3} -> bitmap 0b1010, values {2, 3}.
  std::vector<float> x = {0, 2, 0, 3}, values(2);
  uint8_t bitmap = 0;
  sparseEncode(x.data(), 4, &bitmap, values.data(), 2);
  EXPECT_EQ(int{bitmap}, 0xa);
  EXPECT_TRUE((values == std::vector<float>{2, 3}));

  // Corruption: a count mismatch and a bit past the end are both refused.
  std::vector<float> out(4);
  EXPECT_THROWS_CODE(sparseDecode(&bitmap, values.data(), 1, 4, out.data()),
                     ErrorCode::kInvalidArgument, "marks 2 nonzeros but 1 values");
  uint8_t past = 0x1a;
  EXPECT_THROWS_CODE(sparseDecode(&past, values.data(), 3, 4, out.data()),
                     ErrorCode::kInvalidArgument, "bits set past element 4");
  EXPECT_THROWS_CODE(sparseEncode(x.data(), 4, &bitmap, values.data(), 1),
                     ErrorCode::kInvalidArgument, "2 nonzeros do not fit");
}

// ---- bit packing -----------------------------------------------------------------------------

NODECCL_TEST(compress_bitpack_round_trip) {
  // Hand-worked: 2-bit codes {1, 2, 3} -> 0b00'11'10'01 = 0x39.
  std::vector<uint8_t> codes = {1, 2, 3}, out(1);
  packBits(codes.data(), 3, 2, out.data());
  EXPECT_EQ(int{out[0]}, 0x39);
  // 3-bit codes {5, 6, 7}: bits 101 110 111 -> 0b11'110'101 = 0xf5, then 0b1 = 0x01.
  codes = {5, 6, 7};
  out.assign(2, 0);
  packBits(codes.data(), 3, 3, out.data());
  EXPECT_EQ(int{out[0]}, 0xf5);
  EXPECT_EQ(int{out[1]}, 0x01);

  std::mt19937 rng(11);
  for (int bits = 1; bits <= 8; ++bits) {
    for (size_t n : {0, 1, 3, 17, 1001}) {
      std::vector<uint8_t> c(n), packed(packedBytes(n, bits)), back(n);
      for (auto& v : c) v = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
      packBits(c.data(), n, bits, packed.data());
      unpackBits(packed.data(), n, bits, back.data());
      EXPECT_TRUE(c == back);
    }
  }
  codes = {0, 4};
  EXPECT_THROWS_CODE(packBits(codes.data(), 2, 2, out.data()), ErrorCode::kInvalidArgument,
                     "code 4 at index 1 does not fit in 2 bits");
  EXPECT_THROWS_CODE(packBits(codes.data(), 2, 9, out.data()), ErrorCode::kInvalidArgument,
                     "bits must be 1..8");
}

// ---- k-means ---------------------------------------------------------------------------------

NODECCL_TEST(compress_kmeans_hand_worked) {
  // Two obvious clusters: means 0.05 and 10.1.
  std::vector<float> x = {10.2f, 0.0f, 10.0f, 0.1f}, c(2);
  std::vector<uint8_t> codes(4);
  KMeansOptions o;
  o.k = 2;
  KMeansResult r = kmeans1d(x.data(), 4, o, c.data(), codes.data());
  EXPECT_NEAR(c[0], 0.05, 1e-6);
  EXPECT_NEAR(c[1], 10.1, 1e-5);
  EXPECT_TRUE((codes == std::vector<uint8_t>{1, 0, 1, 0}));
  EXPECT_NEAR(r.inertia, 2 * 0.05 * 0.05 + 2 * 0.1 * 0.1, 1e-5);  // 0.025

  // Fewer distinct values than k: both values are centroids, nothing is lost.
  x = {1, 1, 2};
  c.assign(4, 0);
  o.k = 4;
  r = kmeans1d(x.data(), 3, o, c.data(), codes.data());
  EXPECT_EQ(r.inertia, 0.0);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(c[codes[i]], x[i]);

  x = {1, INFINITY};
  EXPECT_THROWS_CODE(kmeans1d(x.data(), 2, o, c.data(), codes.data()),
                     ErrorCode::kInvalidArgument, "at index 1 is not finite");
  o.k = 257;
  EXPECT_THROWS_CODE(kmeans1d(x.data(), 1, o, c.data(), codes.data()),
                     ErrorCode::kInvalidArgument, "k must be 1..256");
}

NODECCL_TEST(compress_kmeans_converged_and_deterministic) {
  std::mt19937 rng(5);
  std::vector<float> x = randomFloats(rng, 5000, 0.05f);
  for (int bits = 2; bits <= 8; ++bits) {
    KMeansOptions o;
    o.k = 1 << bits;
    o.seed = 1234;
    o.maxIterations = 1000;
    std::vector<float> c(o.k), c2(o.k);
    std::vector<uint8_t> codes(x.size()), codes2(x.size());
    KMeansResult r = kmeans1d(x.data(), x.size(), o, c.data(), codes.data());
    kmeans1d(x.data(), x.size(), o, c2.data(), codes2.data());
    EXPECT_TRUE(c == c2 && codes == codes2);
    EXPECT_TRUE(r.iterations < 1000);

    // Converged Lloyd: every point sits at its nearest centroid, each centroid at its mean.
    std::vector<double> sum(o.k), count(o.k);
    for (size_t i = 0; i < x.size(); ++i) {
      double mine = std::fabs(x[i] - c[codes[i]]);
      for (int j = 0; j < o.k; ++j) EXPECT_TRUE(mine <= std::fabs(x[i] - c[j]) + 1e-7);
      sum[codes[i]] += x[i], count[codes[i]] += 1;
    }
    for (int j = 0; j < o.k; ++j) {
      if (count[j] > 0) EXPECT_NEAR(c[j], sum[j] / count[j], 1e-6);
    }
    // More bits, less error: each doubling of k should cut the inertia.
    static double previous = INFINITY;
    if (bits == 2) previous = INFINITY;
    EXPECT_TRUE(r.inertia < previous);
    previous = r.inertia;
  }
}

// ---- quantization ---------------------------------------------------------------------------

NODECCL_TEST(compress_quantize_hand_worked) {
  // int8, one row: scale 127 / 127 = 1, so the codes are the values rounded.
  std::vector<float> x = {127, -64, 3.4f, 0}, scales(1), back(4);
  std::vector<uint8_t> q(4);
  QuantLayout l{1, 4, 0, 0};
  quantize(x.data(), l, 8, scales.data(), q.data());
  EXPECT_EQ(scales[0], 1.0f);
  EXPECT_TRUE((q == std::vector<uint8_t>{127, 0xc0, 3, 0}));

  // int4: scale 7 / 7 = 1; codes {7, -3, 1, -7} -> nibbles 7, d, 1, 9 -> bytes 0xd7, 0x91.
  x = {7, -3.4f, 0.6f, -7};
  q.assign(2, 0);
  quantize(x.data(), l, 4, scales.data(), q.data());
  EXPECT_EQ(int{q[0]}, 0xd7);
  EXPECT_EQ(int{q[1]}, 0x91);
  dequantize(q.data(), scales.data(), l, 4, back.data());
  EXPECT_TRUE((back == std::vector<float>{7, -3, 1, -7}));

  // An all-zero group has scale 0 and decodes to zeros.
  x.assign(4, 0.0f);
  quantize(x.data(), l, 8, scales.data(), q.data());
  EXPECT_EQ(scales[0], 0.0f);
  x = {1, NAN, 0, 0};
  EXPECT_THROWS_CODE(quantize(x.data(), l, 8, scales.data(), q.data()),
                     ErrorCode::kInvalidArgument, "at index 1 is not finite");
  EXPECT_THROWS_CODE(quantize(x.data(), l, 2, scales.data(), q.data()),
                     ErrorCode::kInvalidArgument, "bits must be 8 or 4");
}

NODECCL_TEST(compress_quantize_error_bound) {
  std::mt19937 rng(9);
  const size_t rows = 37, cols = 23;
  std::vector<float> x = randomFloats(rng, rows * cols);
  for (size_t c = 0; c < cols; ++c) x[5 * cols + c] *= 50;  // one loud row
  const QuantLayout layouts[] = {{rows, cols, 0, 0}, {rows, cols, 1, 0}, {rows, cols, 0, 64},
                                 {rows, cols, 0, 1000}};
  for (const QuantLayout& l : layouts) {
    for (int bits : {8, 4}) {
      std::vector<float> scales(quantGroups(l)), back(x.size());
      std::vector<uint8_t> q(quantBytes(x.size(), bits));
      quantize(x.data(), l, bits, scales.data(), q.data());
      dequantize(q.data(), scales.data(), l, bits, back.data());
      for (size_t i = 0; i < x.size(); ++i) {
        size_t g = l.blockSize ? i / l.blockSize : (l.axis == 0 ? i / cols : i % cols);
        EXPECT_TRUE(std::fabs(back[i] - x[i]) <= scales[g] * 0.5f * 1.0001f);
      }
    }
  }
  EXPECT_EQ(quantGroups(layouts[2]), size_t{(37 * 23 + 63) / 64});
}

// ---- distillation ---------------------------------------------------------------------------

namespace {

// float64 reference written out term by term: explicit probabilities, KL as sum p log(p / q).
double referenceDistill(const std::vector<double>& s, const std::vector<double>& t,
                        const std::vector<int32_t>& y, size_t C, double T, double a,
                        std::vector<double>* grad) {
  const size_t N = y.size();
  auto softmax = [C](const double* v, double scale) {
    double m = -INFINITY, z = 0;
    for (size_t j = 0; j < C; ++j) m = std::max(m, v[j] * scale);
    std::vector<double> p(C);
    for (size_t j = 0; j < C; ++j) z += p[j] = std::exp(v[j] * scale - m);
    for (double& e : p) e /= z;
    return p;
  };
  double loss = 0;
  if (grad) grad->assign(N * C, 0);
  for (size_t r = 0; r < N; ++r) {
    auto p = softmax(&t[r * C], 1 / T), q = softmax(&s[r * C], 1 / T);
    auto h = softmax(&s[r * C], 1);
    double kl = 0;
    for (size_t j = 0; j < C; ++j) kl += p[j] > 0 ? p[j] * std::log(p[j] / q[j]) : 0;
    loss += (a * T * T * kl - (1 - a) * std::log(h[y[r]])) / N;
    for (size_t j = 0; grad && j < C; ++j) {
      (*grad)[r * C + j] = (a * T * (q[j] - p[j]) + (1 - a) * (h[j] - (int(j) == y[r]))) / N;
    }
  }
  return loss;
}

}  // namespace

NODECCL_TEST(compress_distill_against_reference) {
  std::mt19937 rng(21);
  const size_t N = 9, C = 10;
  std::vector<float> s = randomFloats(rng, N * C, 3), t = randomFloats(rng, N * C, 5);
  std::vector<int32_t> y(N);
  for (size_t r = 0; r < N; ++r) y[r] = static_cast<int32_t>(rng() % C);
  std::vector<double> sd(s.begin(), s.end()), td(t.begin(), t.end()), gref;

  for (double T : {1.0, 2.0, 4.0, 20.0}) {
    for (double a : {0.0, 0.3, 0.9, 1.0}) {
      DistillOptions o{T, a};
      std::vector<float> g(N * C);
      DistillResult r = distillLoss(s.data(), t.data(), y.data(), N, C, o, g.data());
      double want = referenceDistill(sd, td, y, C, T, a, &gref);
      EXPECT_NEAR(r.loss, want, 1e-12 * (1 + std::fabs(want)));
      EXPECT_NEAR(r.loss, a * r.soft + (1 - a) * r.hard, 1e-12);
      for (size_t i = 0; i < N * C; ++i) EXPECT_NEAR(g[i], gref[i], 1e-7);

      // Central differences on the float32 inputs themselves (the loss is float64 inside).
      for (size_t i = 0; i < N * C; i += 7) {
        std::vector<float> sp = s, sm = s;
        sp[i] += 1e-2f, sm[i] -= 1e-2f;
        double lp = distillLoss(sp.data(), t.data(), y.data(), N, C, o, nullptr).loss;
        double lm = distillLoss(sm.data(), t.data(), y.data(), N, C, o, nullptr).loss;
        EXPECT_NEAR((lp - lm) / (double{sp[i]} - sm[i]), g[i], 2e-5);
      }
    }
  }
}

NODECCL_TEST(compress_distill_hand_worked_and_errors) {
  // Labels only (alpha 0), two equal logits: the loss is log 2, the gradient {-1/2, 1/2}.
  std::vector<float> s = {0, 0}, t = {5, -5}, g(2);
  std::vector<int32_t> y = {0};
  DistillResult r = distillLoss(s.data(), t.data(), y.data(), 1, 2, {4.0, 0.0}, g.data());
  EXPECT_NEAR(r.loss, std::log(2.0), 1e-15);
  EXPECT_NEAR(g[0], -0.5, 1e-7);
  EXPECT_NEAR(g[1], 0.5, 1e-7);

  // The teacher alone (alpha 1), student equal to teacher: no loss, no gradient.
  r = distillLoss(t.data(), t.data(), y.data(), 1, 2, {3.0, 1.0}, g.data());
  EXPECT_NEAR(r.loss, 0.0, 1e-15);
  EXPECT_NEAR(g[0], 0.0, 1e-9);

  y = {2};
  EXPECT_THROWS_CODE(distillLoss(s.data(), t.data(), y.data(), 1, 2, {}, g.data()),
                     ErrorCode::kInvalidArgument, "label 2 of row 0 is outside [0, 2)");
  y = {0};
  EXPECT_THROWS_CODE(distillLoss(s.data(), t.data(), y.data(), 1, 2, {0.0, 0.5}, g.data()),
                     ErrorCode::kInvalidArgument, "temperature must be");
  EXPECT_THROWS_CODE(distillLoss(s.data(), t.data(), y.data(), 1, 2, {1.0, 2.0}, g.data()),
                     ErrorCode::kInvalidArgument, "alpha must be in [0, 1]");
}
