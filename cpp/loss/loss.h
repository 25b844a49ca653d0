// SPDX-License-Identifier: Apache-2.0
// Loss functions as native kernels: the loss and its gradient with respect to the predictions
// in one call (one pass over the inputs), as torch.nn.functional's mse_loss and cross_entropy.
// Losses are accumulated in float64 and returned as float64; gradients are float32.
//
// Thread safety: no state; calls on different arrays may run concurrently.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nodeccl {
namespace loss {

enum class Reduction : int { kMean = 0, kSum = 1 };

// Mean squared error (mse.cc): loss = sum (p - t)^2, divided by n for kMean;
// grad[i] = 2 (p[i] - t[i]), divided by n for kMean. `grad` may be null (loss only).
// n == 0 with kMean gives NaN (as torch), with kSum 0.
double mse(const float* pred, const float* target, size_t n, Reduction r, float* grad);

// Softmax cross-entropy over `rows` rows of `classes` logits (row-major) and one class index per
// row (cross_entropy.cc): row loss = log(sum_j exp(x_j)) - x_label, computed as
// m + log(sum_j exp(x_j - m)) with m the row maximum so no exponential overflows;
// grad = softmax(x) - onehot(label), divided by the number of counted rows for kMean. Rows whose
// label equals `ignoreIndex` count for nothing and get a zero gradient (torch's ignore_index,
// -100 by default). Throws Error(kInvalidArgument) naming the first row with a label outside
// [0, classes) that is not ignoreIndex, before writing anything. `grad` may be null.
double softmaxCrossEntropy(const float* logits, const int32_t* labels, size_t rows,
                           size_t classes, Reduction r, int32_t ignoreIndex, float* grad);

}  // namespace loss
}  // namespace nodeccl
