// SPDX-License-Identifier: Apache-2.0
// Fused RMSprop, optionally centered and with momentum, as torch.optim.RMSprop:
//   g'  = g + wd * p
//   sq  = alpha * sq + (1 - alpha) * g'^2
//   ga  = alpha * ga + (1 - alpha) * g'              (centered only)
//   avg = sqrt(sq - ga^2) + eps   (centered)   or   sqrt(sq) + eps
//   b   = momentum * b + g' / avg,  p = p - lr * b    (momentum > 0)
//   p   = p - lr * g' / avg                            (otherwise)
// Products are evaluated in the order of torch's CPU kernels (addcmul: (value * t1) * t2;
// addcdiv: (value * t1) / t2). A centered estimate can round slightly below zero and give NaN,
// exactly as in torch.
// Cost: one pass per tensor; per element 12 bytes read and 8 written, plus 8 and 8 each for the
// momentum buffer and the centered average; one sqrt and one division.
#pragma GCC optimize("fp-contract=off")
#include <cmath>
#include <vector>

#include "common/error.h"
#include "optim/optim.h"
#include "optim/simd.h"

namespace nodeccl {
namespace optim {

namespace {

// float32 copies of the hyperparameters, rounded once (as torch rounds a Python scalar).
struct RmspropScalars {
  float lr, alpha, oneMinusAlpha, eps, weightDecay, momentum;
  float gradScale;  // clipping factor (1: none)
};

template <bool kDecay, bool kCentered, bool kMomentum>
struct RmspropKernel {
  static NODECCL_INLINE void run(const RmspropScalars* sp, size_t n, float* __restrict p,
                                 const float* __restrict g, float* __restrict sq,
                                 float* __restrict buf, float* __restrict ga) {
    const RmspropScalars s = *sp;
    size_t head = simd::headTo64(p, n);  // then whole cache lines (simd.h)
    for (size_t i = 0; i < head; ++i) body(s, i, p, g, sq, buf, ga);
    for (size_t i = head; i < n; ++i) body(s, i, p, g, sq, buf, ga);
  }

  static NODECCL_INLINE void body(const RmspropScalars& s, size_t i, float* __restrict p,
                                  const float* __restrict g, float* __restrict sq,
                                  float* __restrict buf, float* __restrict ga) {
    float gi = g[i] * s.gradScale;
    if constexpr (kDecay) gi = gi + s.weightDecay * p[i];

    // Running second moment, and the running mean for the centered variant.
    float sqi = sq[i] * s.alpha + (s.oneMinusAlpha * gi) * gi;
    sq[i] = sqi;
    float avg;
    if constexpr (kCentered) {
      float gai = ga[i] * s.alpha + s.oneMinusAlpha * gi;
      ga[i] = gai;
      avg = std::sqrt(sqi - gai * gai) + s.eps;
    } else {
      avg = std::sqrt(sqi) + s.eps;
    }

    // Step, through the momentum buffer or directly.
    if constexpr (kMomentum) {
      float b = buf[i] * s.momentum + gi / avg;
      buf[i] = b;
      p[i] = p[i] - s.lr * b;
    } else {
      p[i] = p[i] - (s.lr * gi) / avg;
    }
  }
};

template <bool kDecay, bool kCentered, bool kMomentum>
void rmspropDispatch(const RmspropScalars* s, size_t n, float* p, const float* g, float* sq,
                     float* buf, float* ga) {
  simd::run<RmspropKernel<kDecay, kCentered, kMomentum>>(s, n, p, g, sq, buf, ga);
}

// Picks the instantiation for one tensor: kDecay, kCentered, kMomentum from the options.
using RmspropFn = void (*)(const RmspropScalars*, size_t, float*, const float*, float*, float*,
                           float*);
RmspropFn pickKernel(const RmspropOptions& o) {
  static const RmspropFn table[8] = {
      rmspropDispatch<false, false, false>, rmspropDispatch<false, false, true>,
      rmspropDispatch<false, true, false>,  rmspropDispatch<false, true, true>,
      rmspropDispatch<true, false, false>,  rmspropDispatch<true, false, true>,
      rmspropDispatch<true, true, false>,   rmspropDispatch<true, true, true>,
  };
  int index = (o.weightDecay != 0 ? 4 : 0) + (o.centered ? 2 : 0) + (o.momentum != 0 ? 1 : 0);
  return table[index];
}

}  // namespace

void validate(const RmspropOptions& o) {
  const char* who = "RMSprop";
  requireOption(std::isfinite(o.lr) && o.lr >= 0, who, "lr", o.lr, "a finite number >= 0");
  requireOption(std::isfinite(o.alpha) && o.alpha >= 0, who, "alpha", o.alpha,
                "a finite number >= 0 (usually just below 1)");
  requireOption(std::isfinite(o.eps) && o.eps >= 0, who, "eps", o.eps, "a finite number >= 0");
  requireOption(std::isfinite(o.weightDecay) && o.weightDecay >= 0, who, "weightDecay",
                o.weightDecay, "a finite number >= 0");
  requireOption(std::isfinite(o.momentum) && o.momentum >= 0, who, "momentum", o.momentum,
                "a finite number >= 0");
}

StepReport rmspropStep(const RmspropOptions& o, const ParamList& list, float* const* squareAvgs,
                       float* const* momentumBuffers, float* const* gradAvgs,
                       const StepControl& c) {
  validate(o);
  StateArrays states[3] = {{"squareAvgs", squareAvgs}};
  size_t numStates = 1;
  if (o.momentum != 0) states[numStates++] = {"momentumBuffers", momentumBuffers};
  if (o.centered) states[numStates++] = {"gradAvgs", gradAvgs};
  checkParamList("RMSprop", list, states, numStates);
  StepReport report = inspectGrads("RMSprop", list, c);
  if (report.skipped) return report;

  RmspropScalars s{static_cast<float>(o.lr),          static_cast<float>(o.alpha),
                   static_cast<float>(1.0 - o.alpha), static_cast<float>(o.eps),
                   static_cast<float>(o.weightDecay), static_cast<float>(o.momentum),
                   static_cast<float>(report.clipScale)};
  RmspropFn kernel = pickKernel(o);
  forEachSpan(list, c, [&](size_t i, size_t b, size_t e) {
    float* buf = o.momentum != 0 ? momentumBuffers[i] + b : nullptr;
    float* ga = o.centered ? gradAvgs[i] + b : nullptr;
    kernel(&s, e - b, list.params[i] + b, list.grads[i] + b, squareAvgs[i] + b, buf, ga);
  });
  for (size_t i = 0; i < list.count; ++i) list.steps[i] += 1;
  return report;
}

}  // namespace optim
}  // namespace nodeccl
