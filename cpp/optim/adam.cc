// SPDX-License-Identifier: Apache-2.0
// Fused Adam and AdamW (optionally AMSGrad), as torch.optim.Adam and torch.optim.AdamW. With t
// the tensor's own step count after this step:
//   Adam:   g' = g + wd * p                    AdamW:  p = p * (1 - lr * wd),  g' = g
//   m = beta1 * m + (1 - beta1) * g'
//   v = beta2 * v + (1 - beta2) * g'^2
//   vmax = max(vmax, v), used instead of v     (amsgrad only)
//   p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The bias corrections are per tensor, in float64 like torch's Python scalars; without
// biasCorrection both are 1. Products follow the order of torch's CPU kernels (addcmul:
// (value * t1) * t2; addcdiv: (value * t1) / t2).
// Cost: one pass per tensor; per element 16 bytes read and 12 written (20 and 16 with amsgrad);
// one sqrt and two divisions, hidden behind memory traffic once vectorized (simd.h).
// A clipping factor multiplies g first (exactly 1 when not clipping, which changes no bit).
#pragma GCC optimize("fp-contract=off")
#include <cmath>
#include <vector>

#include "common/error.h"
#include "optim/optim.h"
#include "optim/simd.h"

namespace nodeccl {
namespace optim {

namespace {

// float32 scalars of one tensor's step: hyperparameters rounded once, bias corrections folded in.
struct AdamScalars {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2, eps, weightDecay;
  float decay;     // AdamW: 1 - lr * wd
  float stepSize;  // lr / (1 - beta1^t)
  float bc2Sqrt;   // sqrt(1 - beta2^t)
  float gradScale; // clipping factor (1: none)
};

template <bool kL2, bool kDecoupled, bool kAmsgrad>
struct AdamKernel {
  static NODECCL_INLINE void run(const AdamScalars* sp, size_t n, float* __restrict p,
                                 const float* __restrict g, float* __restrict m,
                                 float* __restrict v, float* __restrict vmax) {
    const AdamScalars s = *sp;
    size_t head = simd::headTo64(p, n);  // then whole cache lines (simd.h)
    for (size_t i = 0; i < head; ++i) body(s, i, p, g, m, v, vmax);
    for (size_t i = head; i < n; ++i) body(s, i, p, g, m, v, vmax);
  }

  static NODECCL_INLINE void body(const AdamScalars& s, size_t i, float* __restrict p,
                                  const float* __restrict g, float* __restrict m,
                                  float* __restrict v, float* __restrict vmax) {
    // Weight decay: into the gradient (Adam) or straight onto the parameter (AdamW).
    float pi = p[i];
    float gi = g[i] * s.gradScale;
    if constexpr (kL2) gi = gi + s.weightDecay * pi;
    if constexpr (kDecoupled) pi = pi * s.decay;

    // Moments.
    float mi = m[i] * s.beta1 + s.oneMinusBeta1 * gi;
    float vi = v[i] * s.beta2 + (s.oneMinusBeta2 * gi) * gi;
    m[i] = mi;
    v[i] = vi;
    if constexpr (kAmsgrad) {
      float vm = vmax[i];
      vi = vm > vi ? vm : vi;
      vmax[i] = vi;
    }

    // Bias-corrected step.
    float denom = std::sqrt(vi) / s.bc2Sqrt + s.eps;
    p[i] = pi - (s.stepSize * mi) / denom;
  }
};

template <bool kL2, bool kDecoupled, bool kAmsgrad>
void adamDispatch(const AdamScalars* s, size_t n, float* p, const float* g, float* m, float* v,
                  float* vmax) {
  simd::run<AdamKernel<kL2, kDecoupled, kAmsgrad>>(s, n, p, g, m, v, vmax);
}

// Picks the instantiation: L2 (Adam with wd), decoupled (AdamW with wd), amsgrad.
using AdamFn = void (*)(const AdamScalars*, size_t, float*, const float*, float*, float*,
                        float*);
AdamFn pickKernel(const AdamOptions& o) {
  static const AdamFn table[6] = {
      adamDispatch<false, false, false>, adamDispatch<false, false, true>,
      adamDispatch<true, false, false>,  adamDispatch<true, false, true>,
      adamDispatch<false, true, false>,  adamDispatch<false, true, true>,
  };
  int decay = o.weightDecay == 0 ? 0 : (o.decoupled ? 2 : 1);
  return table[decay * 2 + (o.amsgrad ? 1 : 0)];
}

// The scalars of tensor i at step t (already counting this step).
AdamScalars scalarsAt(const AdamOptions& o, double t, double gradScale) {
  double bc1 = o.biasCorrection ? 1.0 - std::pow(o.beta1, t) : 1.0;
  double bc2 = o.biasCorrection ? 1.0 - std::pow(o.beta2, t) : 1.0;
  AdamScalars s;
  s.beta1 = static_cast<float>(o.beta1);
  s.oneMinusBeta1 = static_cast<float>(1.0 - o.beta1);
  s.beta2 = static_cast<float>(o.beta2);
  s.oneMinusBeta2 = static_cast<float>(1.0 - o.beta2);
  s.eps = static_cast<float>(o.eps);
  s.weightDecay = static_cast<float>(o.weightDecay);
  s.decay = static_cast<float>(1.0 - o.lr * o.weightDecay);
  s.stepSize = static_cast<float>(o.lr / bc1);
  s.bc2Sqrt = static_cast<float>(std::sqrt(bc2));
  s.gradScale = static_cast<float>(gradScale);
  return s;
}

}  // namespace

void validate(const AdamOptions& o) {
  const char* who = o.decoupled ? "AdamW" : "Adam";
  requireOption(std::isfinite(o.lr) && o.lr >= 0, who, "lr", o.lr, "a finite number >= 0");
  requireOption(o.beta1 >= 0 && o.beta1 < 1, who, "betas[0]", o.beta1, "in [0, 1)");
  requireOption(o.beta2 >= 0 && o.beta2 < 1, who, "betas[1]", o.beta2, "in [0, 1)");
  requireOption(std::isfinite(o.eps) && o.eps >= 0, who, "eps", o.eps, "a finite number >= 0");
  requireOption(std::isfinite(o.weightDecay) && o.weightDecay >= 0, who, "weightDecay",
                o.weightDecay, "a finite number >= 0");
}

StepReport adamStep(const AdamOptions& o, const ParamList& list, float* const* expAvgs,
                    float* const* expAvgSqs, float* const* maxExpAvgSqs, const StepControl& c) {
  validate(o);
  const char* who = o.decoupled ? "AdamW" : "Adam";
  StateArrays states[3] = {{"expAvgs", expAvgs}, {"expAvgSqs", expAvgSqs}};
  size_t numStates = 2;
  if (o.amsgrad) states[numStates++] = {"maxExpAvgSqs", maxExpAvgSqs};
  checkParamList(who, list, states, numStates);
  StepReport report = inspectGrads(who, list, c);
  if (report.skipped) return report;

  // Per-tensor scalars (tensors usually share a step count: work them out once per count).
  std::vector<AdamScalars> scalars(list.count);
  for (size_t i = 0; i < list.count; ++i) {
    list.steps[i] += 1;
    bool same = i > 0 && list.steps[i] == list.steps[i - 1];
    scalars[i] = same ? scalars[i - 1] : scalarsAt(o, list.steps[i], report.clipScale);
  }

  AdamFn kernel = pickKernel(o);
  forEachSpan(list, c, [&](size_t i, size_t b, size_t e) {
    float* vmax = o.amsgrad ? maxExpAvgSqs[i] + b : nullptr;
    kernel(&scalars[i], e - b, list.params[i] + b, list.grads[i] + b, expAvgs[i] + b,
           expAvgSqs[i] + b, vmax);
  });
  return report;
}

}  // namespace optim
}  // namespace nodeccl
