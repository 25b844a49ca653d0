// SPDX-License-Identifier: Apache-2.0
// Fused SGD with momentum, dampening, Nesterov and L2 weight decay, as torch.optim.SGD:
//   g' = g + wd * p
//   b  = g'                              on a tensor's first step
//   b  = momentum * b + (1 - dampening) * g'   afterwards
//   d  = nesterov ? g' + momentum * b : b       (d = g' without momentum)
//   p  = p - lr * d
// Cost: one pass per tensor; per element 8 bytes read and 4 written (twice that with momentum).
#include <cmath>

#include "common/error.h"
#include "optim/optim.h"

namespace nodeccl {
namespace optim {

namespace {

// float32 copies of the hyperparameters, rounded once (as torch rounds a Python scalar).
struct SgdScalars {
  float lr, momentum, oneMinusDampening, weightDecay;
};

// Plain SGD: no state.
template <bool kDecay>
void sgdPlain(const SgdScalars& s, size_t n, float* __restrict p, const float* __restrict g) {
  for (size_t i = 0; i < n; ++i) {
    float gi = g[i];
    if constexpr (kDecay) gi = gi + s.weightDecay * p[i];
    p[i] = p[i] - s.lr * gi;
  }
}

// With momentum. kFirst: the buffer is set to the gradient, not blended (torch's clone).
template <bool kDecay, bool kFirst, bool kNesterov>
void sgdMomentum(const SgdScalars& s, size_t n, float* __restrict p, const float* __restrict g,
                 float* __restrict buf) {
  for (size_t i = 0; i < n; ++i) {
    float gi = g[i];
    if constexpr (kDecay) gi = gi + s.weightDecay * p[i];

    float b = kFirst ? gi : s.momentum * buf[i] + s.oneMinusDampening * gi;
    buf[i] = b;

    float d = kNesterov ? gi + s.momentum * b : b;
    p[i] = p[i] - s.lr * d;
  }
}

template <bool kDecay, bool kFirst>
void sgdMomentumFor(bool nesterov, const SgdScalars& s, size_t n, float* p, const float* g,
                    float* buf) {
  if (nesterov) {
    sgdMomentum<kDecay, kFirst, true>(s, n, p, g, buf);
  } else {
    sgdMomentum<kDecay, kFirst, false>(s, n, p, g, buf);
  }
}

// Picks the instantiation for one tensor.
void sgdTensor(const SgdOptions& o, const SgdScalars& s, bool first, size_t n, float* p,
               const float* g, float* buf) {
  bool decay = o.weightDecay != 0;
  if (o.momentum == 0) {
    decay ? sgdPlain<true>(s, n, p, g) : sgdPlain<false>(s, n, p, g);
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

void sgdStep(const SgdOptions& o, const ParamList& list, float* const* momentumBuffers) {
  validate(o);
  StateArrays states[] = {{"momentumBuffers", momentumBuffers}};
  checkParamList("SGD", list, states, o.momentum != 0 ? 1 : 0);

  SgdScalars s{static_cast<float>(o.lr), static_cast<float>(o.momentum),
               static_cast<float>(1.0 - o.dampening), static_cast<float>(o.weightDecay)};
  for (size_t i = 0; i < list.count; ++i) {
    float* buf = o.momentum != 0 ? momentumBuffers[i] : nullptr;
    sgdTensor(o, s, list.steps[i] == 0, list.sizes[i], list.params[i], list.grads[i], buf);
    list.steps[i] += 1;
  }
}

}  // namespace optim
}  // namespace nodeccl
