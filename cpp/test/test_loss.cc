// SPDX-License-Identifier: Apache-2.0
// Tests the loss kernels (loss/loss.h) against float64 references, values worked by hand,
// extreme logits (the log-sum-exp must not overflow), ignored rows and bad labels.
#include <cmath>
#include <random>
#include <vector>

#include "common/error.h"
#include "loss/loss.h"
#include "test/harness.h"

using namespace nodeccl;
using namespace nodeccl::loss;

NODECCL_TEST(loss_mse_matches_reference) {
  for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(1001), size_t(65537)}) {
    std::mt19937 rng(static_cast<unsigned>(n));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> p(n), t(n), g(n);
    for (size_t i = 0; i < n; ++i) p[i] = normal(rng), t[i] = normal(rng);
    double ref = 0;
    for (size_t i = 0; i < n; ++i) ref += (double(p[i]) - t[i]) * (double(p[i]) - t[i]);
    double sum = mse(p.data(), t.data(), n, Reduction::kSum, nullptr);
    EXPECT_NEAR(sum, ref, 1e-6 * (1 + ref));
    double mean = mse(p.data(), t.data(), n, Reduction::kMean, g.data());
    if (n == 0) {
      EXPECT_TRUE(std::isnan(mean));
      continue;
    }
    EXPECT_NEAR(mean, ref / n, 1e-6 * (1 + ref / n));
    for (size_t i = 0; i < n; ++i) {
      EXPECT_NEAR(g[i], 2.0 * (double(p[i]) - t[i]) / n, 1e-6 / n * (1 + std::fabs(p[i] - t[i])));
    }
  }
}

NODECCL_TEST(loss_mse_by_hand) {
  // p = (1, 2), t = (0, 4): squares 1 and 4, mean 2.5; gradient 2 (p - t) / 2 = (1, -2).
  std::vector<float> p = {1, 2}, t = {0, 4}, g(2);
  EXPECT_EQ(mse(p.data(), t.data(), 2, Reduction::kMean, g.data()), 2.5);
  EXPECT_EQ(g[0], 1.0f);
  EXPECT_EQ(g[1], -2.0f);
}

NODECCL_TEST(loss_cross_entropy_by_hand) {
  // Logits (0, ln 3) label 1: softmax (1/4, 3/4); loss -ln(3/4) = 0.287682; grad (1/4, -1/4).
  // Second row, logits (1000, 0) label 0: loss ~ e^-1000 ~ 0 (no overflow); grad ~ (0, 0).
  std::vector<float> x = {0.0f, std::log(3.0f), 1000.0f, 0.0f}, g(4);
  std::vector<int32_t> labels = {1, 0};
  double l = softmaxCrossEntropy(x.data(), labels.data(), 2, 2, Reduction::kSum, -100, g.data());
  EXPECT_NEAR(l, -std::log(0.75), 1e-7);
  EXPECT_NEAR(g[0], 0.25, 1e-7);
  EXPECT_NEAR(g[1], -0.25, 1e-7);
  EXPECT_NEAR(g[2], 0.0, 1e-7);
  EXPECT_NEAR(g[3], 0.0, 1e-7);
  // Wrong label 1000 - 0 = loss 1000 exactly, not inf.
  labels[1] = 1;
  l = softmaxCrossEntropy(x.data() + 2, labels.data() + 1, 1, 2, Reduction::kMean, -100, nullptr);
  EXPECT_NEAR(l, 1000.0, 1e-9);
}

NODECCL_TEST(loss_cross_entropy_matches_reference) {
  size_t rows = 37, classes = 11;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 5.0f);
  std::vector<float> x(rows * classes), g(rows * classes);
  std::vector<int32_t> labels(rows);
  for (float& v : x) v = normal(rng);
  for (size_t i = 0; i < rows; ++i) labels[i] = static_cast<int32_t>(rng() % classes);
  labels[3] = -100;  // ignored
  double l = softmaxCrossEntropy(x.data(), labels.data(), rows, classes, Reduction::kMean, -100,
                                 g.data());
  double ref = 0;
  for (size_t i = 0; i < rows; ++i) {
    if (labels[i] == -100) {
      for (size_t j = 0; j < classes; ++j) EXPECT_EQ(g[i * classes + j], 0.0f);
      continue;
    }
    double s = 0;
    for (size_t j = 0; j < classes; ++j) s += std::exp(double(x[i * classes + j]));
    ref += std::log(s) - x[i * classes + labels[i]];
    for (size_t j = 0; j < classes; ++j) {
      double want = (std::exp(double(x[i * classes + j])) / s - (int(j) == labels[i])) /
                    (rows - 1);
      EXPECT_NEAR(g[i * classes + j], want, 1e-7);
    }
  }
  EXPECT_NEAR(l, ref / (rows - 1), 1e-5);
}

NODECCL_TEST(loss_cross_entropy_rejects_bad_labels) {
  std::vector<float> x(6), g(6, 7.0f);
  std::vector<int32_t> labels = {0, 3};
  EXPECT_THROWS_CODE(softmaxCrossEntropy(x.data(), labels.data(), 2, 3, Reduction::kMean, -100,
                                         g.data()),
                     ErrorCode::kInvalidArgument, "labels[1] is 3");
  EXPECT_EQ(g[0], 7.0f);  // nothing written
}
