// SPDX-License-Identifier: Apache-2.0
// The gradient checks a fused step can make in the same call: the global L2 norm of all its
// gradients (for clipping, as torch.nn.utils.clip_grad_norm_) and the first NaN or infinity
// (to skip the step, as dynamic loss scaling needs).
//
// Cost: one read of every gradient (4 bytes per element), only when clipping or checking; the
// squares are summed in float64, so no finite float32 input can overflow the sum, and a NaN or
// infinity anywhere makes that tensor's sum non-finite, which is how one is found.
#pragma GCC optimize("fp-contract=off")
#include <cmath>

#include "common/error.h"
#include "optim/optim.h"
#include "optim/simd.h"

namespace nodeccl {
namespace optim {

namespace {

// 16 independent float64 partial sums let the compiler keep whole vectors of them (the float
// order of a single running sum would forbid vectorizing).
struct SumSquaresKernel {
  static NODECCL_INLINE double run(const float* x, size_t n) {
    double part[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      for (size_t j = 0; j < 16; ++j) {
        double v = x[i + j];
        part[j] += v * v;
      }
    }
    for (; i < n; ++i) {
      double v = x[i];
      part[0] += v * v;
    }
    double total = 0;
    for (double p : part) total += p;
    return total;
  }
};

// Index of the first NaN/Inf in x[0..n), or -1.
long long firstNonFinite(const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return static_cast<long long>(i);
  }
  return -1;
}

}  // namespace

double sumOfSquares(const float* x, size_t n) { return simd::run<SumSquaresKernel>(x, n); }

StepReport inspectGrads(const char* who, const ParamList& list, const StepControl& c) {
  requireOption(std::isfinite(c.maxGradNorm) && c.maxGradNorm >= 0, who, "maxGradNorm",
                c.maxGradNorm, "a finite number >= 0 (0 turns clipping off)");
  requireOption(c.threads >= 1 && c.threads <= 256, who, "threads", c.threads, "in [1, 256]");
  requireOption(std::isfinite(c.gradScale) && c.gradScale > 0, who, "gradScale", c.gradScale,
                "a finite number > 0");
  StepReport r;
  r.clipScale = c.gradScale;
  if (c.maxGradNorm == 0 && !c.skipNonFinite) return r;

  // Per-tensor sums; the first non-finite one is searched for its element.
  double total = 0;
  for (size_t i = 0; i < list.count; ++i) {
    double s = sumOfSquares(list.grads[i], list.sizes[i]);
    if (!std::isfinite(s) && r.nonFiniteParam < 0) {
      r.nonFiniteParam = static_cast<long long>(i);
      r.nonFiniteIndex = firstNonFinite(list.grads[i], list.sizes[i]);
    }
    total += s;
  }
  r.gradNorm = std::sqrt(total) * c.gradScale;

  // Skip, or clip (a non-finite norm that is not skipped leaves the gradients unscaled).
  if (r.nonFiniteParam >= 0 && c.skipNonFinite) {
    r.skipped = true;
    return r;
  }
  if (c.maxGradNorm > 0 && std::isfinite(r.gradNorm)) {
    double coef = c.maxGradNorm / (r.gradNorm + 1e-6);
    r.clipScale = c.gradScale * (coef < 1 ? coef : 1);
  }
  return r;
}

}  // namespace optim
}  // namespace nodeccl
