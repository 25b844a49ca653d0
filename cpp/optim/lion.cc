// SPDX-License-Identifier: Apache-2.0
// Fused Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), one pass:
//   c = beta1 * m + (1 - beta1) * g           (the update direction, before its sign)
//   p = p * (1 - lr * wd) - lr * sign(c)      (decoupled weight decay; sign(0) = 0)
//   m = beta2 * m + (1 - beta2) * g
// Lion keeps one state array (half of Adam's) and its update has the same size for every
// element, so it usually wants a learning rate 3-10x below AdamW's.
// Cost: per element 12 bytes read (p, g, m) and 8 written (p, m); no division or root.
#pragma GCC optimize("fp-contract=off")
#include <cmath>

#include "common/error.h"
#include "optim/optim.h"
#include "optim/simd.h"

namespace nodeccl {
namespace optim {

namespace {

struct LionScalars {
  float lr, beta1, oneMinusBeta1, beta2, oneMinusBeta2, decay, gradScale;
};

struct LionKernel {
  static NODECCL_INLINE void run(const LionScalars* sp, size_t n, float* __restrict p,
                                 const float* __restrict g, float* __restrict m) {
    const LionScalars s = *sp;
    for (size_t i = 0; i < n; ++i) {
      float gi = g[i] * s.gradScale;
      float mi = m[i];

      // Direction: the sign of an interpolation of momentum and gradient (NaN stays NaN).
      float c = s.beta1 * mi + s.oneMinusBeta1 * gi;
      float sign = c > 0 ? 1.0f : (c < 0 ? -1.0f : c * 0.0f);
      p[i] = p[i] * s.decay - s.lr * sign;

      m[i] = s.beta2 * mi + s.oneMinusBeta2 * gi;
    }
  }
};

}  // namespace

void validate(const LionOptions& o) {
  const char* who = "Lion";
  requireOption(std::isfinite(o.lr) && o.lr >= 0, who, "lr", o.lr, "a finite number >= 0");
  requireOption(o.beta1 >= 0 && o.beta1 <= 1, who, "betas[0]", o.beta1, "in [0, 1]");
  requireOption(o.beta2 >= 0 && o.beta2 <= 1, who, "betas[1]", o.beta2, "in [0, 1]");
  requireOption(std::isfinite(o.weightDecay) && o.weightDecay >= 0, who, "weightDecay",
                o.weightDecay, "a finite number >= 0");
}

StepReport lionStep(const LionOptions& o, const ParamList& list, float* const* expAvgs,
                    const StepControl& c) {
  validate(o);
  StateArrays states[] = {{"expAvgs", expAvgs}};
  checkParamList("Lion", list, states, 1);
  StepReport report = inspectGrads("Lion", list, c);
  if (report.skipped) return report;

  LionScalars s{static_cast<float>(o.lr),          static_cast<float>(o.beta1),
                static_cast<float>(1.0 - o.beta1), static_cast<float>(o.beta2),
                static_cast<float>(1.0 - o.beta2), static_cast<float>(1.0 - o.lr * o.weightDecay),
                static_cast<float>(report.clipScale)};
  forEachSpan(list, c, [&](size_t i, size_t b, size_t e) {
    simd::run<LionKernel>(&s, e - b, list.params[i] + b, list.grads[i] + b, expAvgs[i] + b);
  });
  for (size_t i = 0; i < list.count; ++i) list.steps[i] += 1;
  return report;
}

}  // namespace optim
}  // namespace nodeccl
