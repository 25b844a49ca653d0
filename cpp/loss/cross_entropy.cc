// SPDX-License-Identifier: Apache-2.0
// Softmax cross-entropy and its gradient in one call (loss.h), with the log-sum-exp taken
// relative to each row's maximum so that no exponential overflows and large logits stay exact.
// Per row: find m = max x; write e_j = exp(x_j - m) into the gradient row and sum them in
// float64; loss = m + log(sum) - x_label; grad_j = e_j / sum - [j == label], times 1 / count.
// Cost: per element read 4 bytes twice (max, exp) and write 4 twice (e, then the gradient, in
// cache for rows below ~64 Ki classes); one expf per element.
#pragma GCC optimize("fp-contract=off")
#include <cmath>
#include <limits>
#include <vector>

#include "common/error.h"
#include "loss/loss.h"

namespace nodeccl {
namespace loss {

namespace {

// Loss of one row; fills grad (unscaled softmax minus one-hot) when grad is non-null.
double row(const float* x, size_t classes, int32_t label, float* grad,
           std::vector<float>& scratch) {
  float m = -std::numeric_limits<float>::infinity();
  for (size_t j = 0; j < classes; ++j) m = x[j] > m ? x[j] : m;
  if (!std::isfinite(m)) m = 0;  // all -inf (or NaN/inf inputs): let the NaN/inf show through

  float* e = grad ? grad : scratch.data();
  double sum = 0;
  for (size_t j = 0; j < classes; ++j) {
    e[j] = std::exp(x[j] - m);
    sum += e[j];
  }
  double loss = static_cast<double>(m) + std::log(sum) - static_cast<double>(x[label]);
  if (grad) {
    float inv = static_cast<float>(1.0 / sum);
    for (size_t j = 0; j < classes; ++j) grad[j] = e[j] * inv;
    grad[label] -= 1.0f;
  }
  return loss;
}

}  // namespace

double softmaxCrossEntropy(const float* logits, const int32_t* labels, size_t rows,
                           size_t classes, Reduction r, int32_t ignoreIndex, float* grad) {
  // Labels first, so a bad one throws before anything is written.
  size_t counted = 0;
  for (size_t i = 0; i < rows; ++i) {
    int32_t l = labels[i];
    if (l == ignoreIndex) continue;
    if (l < 0 || static_cast<size_t>(l) >= classes) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat("softmaxCrossEntropy: labels[", i, "] is ", l, " but there are ",
                         classes, " classes; labels must be in [0, ", classes,
                         ") or equal ignoreIndex (", ignoreIndex, ")"));
    }
    ++counted;
  }

  // Row by row; ignored rows get a zero gradient.
  std::vector<float> scratch(grad ? 0 : classes);
  double total = 0;
  for (size_t i = 0; i < rows; ++i) {
    float* g = grad ? grad + i * classes : nullptr;
    if (labels[i] == ignoreIndex) {
      if (g) for (size_t j = 0; j < classes; ++j) g[j] = 0;
      continue;
    }
    total += row(logits + i * classes, classes, labels[i], g, scratch);
  }

  // Mean over the counted rows (NaN when none, as torch).
  if (r == Reduction::kSum) return total;
  if (counted == 0) return std::numeric_limits<double>::quiet_NaN();
  if (grad) {
    float inv = static_cast<float>(1.0 / static_cast<double>(counted));
    for (size_t k = 0; k < rows * classes; ++k) grad[k] *= inv;
  }
  return total / static_cast<double>(counted);
}

}  // namespace loss
}  // namespace nodeccl
