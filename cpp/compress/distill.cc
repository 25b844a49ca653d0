// SPDX-License-Identifier: Apache-2.0
// Knowledge-distillation loss (Hinton, Vinyals and Dean, 2015): the student matches the
// teacher's softened outputs and the true labels at once,
//   L = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(softmax(s), y),
// averaged over rows. T^2 keeps the soft term's gradient, alpha * T * (q_T - p_T), on the same
// scale as the hard term's when T changes. Forward and gradient come from one pass.
//
// Cost per row of C classes: three log-sum-exps and a few passes over C; everything is worked
// in float64 from the float32 inputs, and only the gradient is rounded to float32.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/error.h"
#include "compress/compress.h"

namespace nodeccl {
namespace compress {

namespace {

// log(sum_j exp(v[j] * scale)), stable: the maximum is taken out before exponentiating.
double logSumExp(const float* v, size_t n, double scale) {
  double m = -INFINITY;
  for (size_t j = 0; j < n; ++j) m = std::max(m, v[j] * scale);
  double s = 0;
  for (size_t j = 0; j < n; ++j) s += std::exp(v[j] * scale - m);
  return m + std::log(s);
}

void checkDistillArgs(const float* student, const float* teacher, const int32_t* labels,
                      size_t rows, size_t classes, const DistillOptions& o) {
  if (!(o.temperature > 0) || !std::isfinite(o.temperature)) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("distillLoss: temperature must be a finite number > 0, got ",
                       o.temperature));
  }
  if (!(o.alpha >= 0 && o.alpha <= 1)) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("distillLoss: alpha must be in [0, 1], got ", o.alpha));
  }
  if (classes == 0 && rows > 0) {
    throw Error(ErrorCode::kInvalidArgument, "distillLoss: classes must be >= 1");
  }
  for (size_t r = 0; r < rows; ++r) {
    if (labels[r] < 0 || static_cast<size_t>(labels[r]) >= classes) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat("distillLoss: label ", labels[r], " of row ", r, " is outside [0, ",
                         classes, ")"));
    }
  }
  for (size_t i = 0; i < rows * classes; ++i) {
    if (!std::isfinite(student[i]) || !std::isfinite(teacher[i])) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat("distillLoss: logit ", i, " (row ", i / classes, ") is not finite: ",
                         "student ", student[i], ", teacher ", teacher[i]));
    }
  }
}

}  // namespace

DistillResult distillLoss(const float* student, const float* teacher, const int32_t* labels,
                          size_t rows, size_t classes, const DistillOptions& o, float* grad) {
  checkDistillArgs(student, teacher, labels, rows, classes, o);
  DistillResult res;
  if (rows == 0) return res;
  const double T = o.temperature, invT = 1.0 / T, a = o.alpha;
  const double invRows = 1.0 / static_cast<double>(rows);

  for (size_t r = 0; r < rows; ++r) {
    const float* s = student + r * classes;
    const float* t = teacher + r * classes;
    const double lseS = logSumExp(s, classes, 1.0);
    const double lseST = logSumExp(s, classes, invT);
    const double lseTT = logSumExp(t, classes, invT);

    // Soft term: sum_j p_j (log p_j - log q_j), p = softmax(t / T), q = softmax(s / T).
    double kl = 0;
    for (size_t j = 0; j < classes; ++j) {
      const double logP = t[j] * invT - lseTT;
      const double logQ = s[j] * invT - lseST;
      const double p = std::exp(logP);
      kl += p * (logP - logQ);
      if (grad) grad[r * classes + j] = static_cast<float>(
          (a * T * (std::exp(logQ) - p) +
           (1 - a) * (std::exp(s[j] - lseS) - (static_cast<int32_t>(j) == labels[r]))) *
          invRows);
    }
    res.soft += T * T * kl;
    res.hard += lseS - s[labels[r]];
  }
  res.soft *= invRows;
  res.hard *= invRows;
  res.loss = a * res.soft + (1 - a) * res.hard;
  return res;
}

}  // namespace compress
}  // namespace nodeccl
