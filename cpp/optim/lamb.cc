// SPDX-License-Identifier: Apache-2.0
// Fused LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning"), per tensor, with t
// its own step count after this step:
//   m = beta1 * m + (1 - beta1) * g,   v = beta2 * v + (1 - beta2) * g^2
//   u = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + wd * p
//   r = ||p|| / ||u||  when both norms are > 0, else 1        (the trust ratio)
//   p = p - lr * r * u
// Two passes: the first updates m and v and sums ||p||^2 and ||u||^2 (float64); the second
// recomputes u from the stored m and v and moves p. Recomputing u costs 8 bytes of reads per
// element and saves a whole temporary array.
// Cost: per element 16 + 12 bytes read and 8 + 4 written; one tensor at a time, because r needs
// the whole tensor's norms before any element moves.
#pragma GCC optimize("fp-contract=off")
#include <cmath>

#include "common/error.h"
#include "optim/optim.h"
#include "optim/simd.h"

namespace nodeccl {
namespace optim {

namespace {

struct LambScalars {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2, eps, weightDecay, gradScale;
  float invBc1, invBc2;  // 1 / (1 - beta^t)
  float stepSize;        // lr * trust ratio (second pass only)
};

// u of one element from its (already updated) moments.
NODECCL_INLINE float lambDirection(const LambScalars& s, float m, float v, float p) {
  return (m * s.invBc1) / (std::sqrt(v * s.invBc2) + s.eps) + s.weightDecay * p;
}

// Pass 1: the moments; out[0] = ||p||^2, out[1] = ||u||^2 in 8-lane float64 partial sums.
struct LambMomentsKernel {
  static NODECCL_INLINE void run(const LambScalars* sp, size_t n, const float* __restrict p,
                                 const float* __restrict g, float* __restrict m,
                                 float* __restrict v, double* out) {
    const LambScalars s = *sp;
    double pp[8] = {0}, uu[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      for (size_t j = 0; j < 8; ++j) one(s, i + j, p, g, m, v, pp[j], uu[j]);
    }
    for (; i < n; ++i) one(s, i, p, g, m, v, pp[0], uu[0]);
    out[0] = out[1] = 0;
    for (size_t j = 0; j < 8; ++j) out[0] += pp[j], out[1] += uu[j];
  }

  static NODECCL_INLINE void one(const LambScalars& s, size_t i, const float* __restrict p,
                                 const float* __restrict g, float* __restrict m,
                                 float* __restrict v, double& pp, double& uu) {
    float gi = g[i] * s.gradScale;
    float mi = m[i] * s.beta1 + s.oneMinusBeta1 * gi;
    float vi = v[i] * s.beta2 + (s.oneMinusBeta2 * gi) * gi;
    m[i] = mi;
    v[i] = vi;
    double u = lambDirection(s, mi, vi, p[i]);
    double pi = p[i];
    pp += pi * pi;
    uu += u * u;
  }
};

// Pass 2: p -= lr * r * u.
struct LambApplyKernel {
  static NODECCL_INLINE void run(const LambScalars* sp, size_t n, float* __restrict p,
                                 const float* __restrict m, const float* __restrict v) {
    const LambScalars s = *sp;
    for (size_t i = 0; i < n; ++i) {
      p[i] = p[i] - s.stepSize * lambDirection(s, m[i], v[i], p[i]);
    }
  }
};

}  // namespace

void validate(const LambOptions& o) {
  const char* who = "LAMB";
  requireOption(std::isfinite(o.lr) && o.lr >= 0, who, "lr", o.lr, "a finite number >= 0");
  requireOption(o.beta1 >= 0 && o.beta1 < 1, who, "betas[0]", o.beta1, "in [0, 1)");
  requireOption(o.beta2 >= 0 && o.beta2 < 1, who, "betas[1]", o.beta2, "in [0, 1)");
  requireOption(std::isfinite(o.eps) && o.eps >= 0, who, "eps", o.eps, "a finite number >= 0");
  requireOption(std::isfinite(o.weightDecay) && o.weightDecay >= 0, who, "weightDecay",
                o.weightDecay, "a finite number >= 0");
}

StepReport lambStep(const LambOptions& o, const ParamList& list, float* const* expAvgs,
                    float* const* expAvgSqs, const StepControl& c) {
  validate(o);
  StateArrays states[] = {{"expAvgs", expAvgs}, {"expAvgSqs", expAvgSqs}};
  checkParamList("LAMB", list, states, 2);
  StepReport report = inspectGrads("LAMB", list, c);
  if (report.skipped) return report;

  for (size_t i = 0; i < list.count; ++i) {
    // Scalars of this tensor's step.
    double t = list.steps[i] += 1;
    LambScalars s{};
    s.beta1 = static_cast<float>(o.beta1);
    s.oneMinusBeta1 = static_cast<float>(1.0 - o.beta1);
    s.beta2 = static_cast<float>(o.beta2);
    s.oneMinusBeta2 = static_cast<float>(1.0 - o.beta2);
    s.eps = static_cast<float>(o.eps);
    s.weightDecay = static_cast<float>(o.weightDecay);
    s.gradScale = static_cast<float>(report.clipScale);
    s.invBc1 = static_cast<float>(o.biasCorrection ? 1.0 / (1.0 - std::pow(o.beta1, t)) : 1.0);
    s.invBc2 = static_cast<float>(o.biasCorrection ? 1.0 / (1.0 - std::pow(o.beta2, t)) : 1.0);

    // Moments and norms, then the trust ratio and the move.
    size_t n = list.sizes[i];
    double norms[2];
    simd::run<LambMomentsKernel>(&s, n, static_cast<const float*>(list.params[i]), list.grads[i],
                                 expAvgs[i], expAvgSqs[i], norms);
    double pNorm = std::sqrt(norms[0]), uNorm = std::sqrt(norms[1]);
    double ratio = pNorm > 0 && uNorm > 0 ? pNorm / uNorm : 1.0;
    s.stepSize = static_cast<float>(o.lr * ratio);
    simd::run<LambApplyKernel>(&s, n, list.params[i], static_cast<const float*>(expAvgs[i]),
                               static_cast<const float*>(expAvgSqs[i]));
  }
  return report;
}

}  // namespace optim
}  // namespace nodeccl
