// SPDX-License-Identifier: Apache-2.0
// Fused SGD with momentum, dampening, Nesterov and L2 weight decay, as torch.optim.SGD:
//   g' = g + wd * p
//   b  = g'                              on a tensor's first step
//   b  = momentum * b + (1 - dampening) * g'   afterwards
//   d  = nesterov ? g' + momentum * b : b       (d = g' without momentum)
//   p  = p - lr * d
// Cost: one pass per tensor; per element 8 bytes read and 4 written (twice that with momentum).
// Dispatched to baseline/AVX2/AVX-512 copies (simd.h), the vector loop starting at a 64-byte
// boundary of p; a clipping factor multiplies g first.
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
struct SgdScalars {
  float lr, momentum, oneMinusDampening, weightDecay;
  float gradScale;  // clipping factor (1: none)
};

// Plain SGD: no state.
template <bool kDecay>
struct SgdPlainKernel {
  static NODECCL_INLINE void run(const SgdScalars* sp, size_t n, float* __restrict p,
                                 const float* __restrict g) {
    const SgdScalars s = *sp;
    size_t head = simd::headTo64(p, n);  // then whole cache lines (simd.h)
    for (size_t i = 0; i < head; ++i) body(s, i, p, g);
    for (size_t i = head; i < n; ++i) body(s, i, p, g);
  }

  static NODECCL_INLINE void body(const SgdScalars& s, size_t i, float* __restrict p,
                                  const float* __restrict g) {
    float gi = g[i] * s.gradScale;
    if constexpr (kDecay) gi = gi + s.weightDecay * p[i];
    p[i] = p[i] - s.lr * gi;
  }
};

// With momentum. kFirst: the buffer is set to the gradient, not blended (torch's clone).
template <bool kDecay, bool kFirst, bool kNesterov>
struct SgdMomentumKernel {
  static NODECCL_INLINE void run(const SgdScalars* sp, size_t n, float* __restrict p,
                                 const float* __restrict g, float* __restrict buf) {
    const SgdScalars s = *sp;
    size_t head = simd::headTo64(p, n);  // then whole cache lines (simd.h)
    for (size_t i = 0; i < head; ++i) body(s, i, p, g, buf);
    for (size_t i = head; i < n; ++i) body(s, i, p, g, buf);
  }

  static NODECCL_INLINE void body(const SgdScalars& s, size_t i, float* __restrict p,
                                  const float* __restrict g, float* __restrict buf) {
    float gi = g[i] * s.gradScale;
    if constexpr (kDecay) gi = gi + s.weightDecay * p[i];

    float b = kFirst ? gi : s.momentum * buf[i] + s.oneMinusDampening * gi;
    buf[i] = b;

    float d = kNesterov ? gi + s.momentum * b : b;
    p[i] = p[i] - s.lr * d;
  }
};

template <bool kDecay, bool kFirst>
void sgdMomentumFor(bool nesterov, const SgdScalars* s, size_t n, float* p, const float* g,
                    float* buf) {
  if (nesterov) {
    simd::run<SgdMomentumKernel<kDecay, kFirst, true>>(s, n, p, g, buf);
  } else {
    simd::run<SgdMomentumKernel<kDecay, kFirst, false>>(s, n, p, g, buf);
  }
}

// Picks the instantiation for one tensor (or a chunk of it).
void sgdTensor(const SgdOptions& o, const SgdScalars* s, bool first, size_t n, float* p,
               const float* g, float* buf) {
  bool decay = o.weightDecay != 0;
  if (o.momentum == 0) {
    decay ? simd::run<SgdPlainKernel<true>>(s, n, p, g)
          : simd::run<SgdPlainKernel<false>>(s, n, p, g);
  } else if (decay) {
    first ? sgdMomentumFor<true, true>(o.nesterov, s, n, p, g, buf)
          : sgdMomentumFor<true, false>(o.nesterov, s, n, p, g, buf);
  } else {
    first ? sgdMomentumFor<false, true>(o.nesterov, s, n, p, g, buf)
          : sgdMomentumFor<false, false>(o.nesterov, s, n, p, g, buf);
  }
}

}  // namespace

void validate(const SgdOptions& o) {
  const char* who = "SGD";
  requireOption(std::isfinite(o.lr) && o.lr >= 0, who, "lr", o.lr, "a finite number >= 0");
  requireOption(std::isfinite(o.momentum) && o.momentum >= 0, who, "momentum", o.momentum,
                "a finite number >= 0");
  requireOption(std::isfinite(o.dampening), who, "dampening", o.dampening, "a finite number");
  requireOption(std::isfinite(o.weightDecay) && o.weightDecay >= 0, who, "weightDecay",
                o.weightDecay, "a finite number >= 0");
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0)) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("SGD: nesterov needs momentum > 0 and dampening 0, got momentum ",
                       formatNumber(o.momentum), " and dampening ", formatNumber(o.dampening),
                       "; set both or turn nesterov off"));
  }
}

StepReport sgdStep(const SgdOptions& o, const ParamList& list, float* const* momentumBuffers,
                   const StepControl& c) {
  validate(o);
  StateArrays states[] = {{"momentumBuffers", momentumBuffers}};
  checkParamList("SGD", list, states, o.momentum != 0 ? 1 : 0);
  StepReport report = inspectGrads("SGD", list, c);
  if (report.skipped) return report;

  SgdScalars s{static_cast<float>(o.lr), static_cast<float>(o.momentum),
               static_cast<float>(1.0 - o.dampening), static_cast<float>(o.weightDecay),
               static_cast<float>(report.clipScale)};
  std::vector<char> first(list.count);
  for (size_t i = 0; i < list.count; ++i) first[i] = list.steps[i] == 0;
  forEachSpan(list, c, [&](size_t i, size_t b, size_t e) {
    float* buf = o.momentum != 0 ? momentumBuffers[i] + b : nullptr;
    sgdTensor(o, &s, first[i] != 0, e - b, list.params[i] + b, list.grads[i] + b, buf);
  });
  for (size_t i = 0; i < list.count; ++i) list.steps[i] += 1;
  return report;
}

}  // namespace optim
}  // namespace nodeccl
