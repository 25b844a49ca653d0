// SPDX-License-Identifier: Apache-2.0
// Fused multi-tensor RMSprop (plain or centered, optional momentum and L2 weight decay) on the
// GPU, the same update as cpp/optim/rmsprop.cc in correctly rounded float32 operations.
// Cost: one launch; per element 12 bytes read and 8 written, plus 4 + 4 per optional buffer.
#include "multi_tensor.cuh"

namespace nodeccl {
namespace cuda {
namespace {

struct RmspropScalars {
  float lr, alpha, oneMinusAlpha, eps, weightDecay, momentum;
};

// Arrays: 0 param, 1 grad, 2 square avg, 3 momentum buffer, 4 grad avg (the last two optional).
template <bool kDecay, bool kCentered, bool kMomentum>
struct RmspropOp {
  __device__ void operator()(const RmspropScalars& s, float* x) const {
    float gi = x[1];
    if (kDecay) gi = __fadd_rn(gi, __fmul_rn(s.weightDecay, x[0]));

    float sqi = __fadd_rn(__fmul_rn(x[2], s.alpha), __fmul_rn(__fmul_rn(s.oneMinusAlpha, gi), gi));
    x[2] = sqi;
    float avg;
    if (kCentered) {
      float gai = __fadd_rn(__fmul_rn(x[4], s.alpha), __fmul_rn(s.oneMinusAlpha, gi));
      x[4] = gai;
      avg = __fadd_rn(__fsqrt_rn(__fsub_rn(sqi, __fmul_rn(gai, gai))), s.eps);
    } else {
      avg = __fadd_rn(__fsqrt_rn(sqi), s.eps);
    }

    if (kMomentum) {
      float b = __fadd_rn(__fmul_rn(x[3], s.momentum), __fdiv_rn(gi, avg));
      x[3] = b;
      x[0] = __fsub_rn(x[0], __fmul_rn(s.lr, b));
    } else {
      x[0] = __fsub_rn(x[0], __fdiv_rn(__fmul_rn(s.lr, gi), avg));
    }
  }
};

template <bool kDecay, bool kCentered, bool kMomentum>
void launch(Device& d, const std::vector<Entry<5, RmspropScalars>>& e) {
  multiTensorApply(d, e, RmspropOp<kDecay, kCentered, kMomentum>{});
}

void launchFor(const optim::RmspropOptions& o, Device& d,
               const std::vector<Entry<5, RmspropScalars>>& e) {
  switch ((o.weightDecay != 0 ? 4 : 0) + (o.centered ? 2 : 0) + (o.momentum != 0 ? 1 : 0)) {
    case 0: return launch<false, false, false>(d, e);
    case 1: return launch<false, false, true>(d, e);
    case 2: return launch<false, true, false>(d, e);
    case 3: return launch<false, true, true>(d, e);
    case 4: return launch<true, false, false>(d, e);
    case 5: return launch<true, false, true>(d, e);
    case 6: return launch<true, true, false>(d, e);
    default: return launch<true, true, true>(d, e);
  }
}

}  // namespace

void rmspropStep(int device, const optim::RmspropOptions& o, const optim::ParamList& list,
                 float* const* squareAvgs, float* const* momentumBuffers,
                 float* const* gradAvgs) {
  optim::validate(o);
  optim::StateArrays states[3] = {{"squareAvgs", squareAvgs}};
  size_t numStates = 1;
  if (o.momentum != 0) states[numStates++] = {"momentumBuffers", momentumBuffers};
  if (o.centered) states[numStates++] = {"gradAvgs", gradAvgs};
  optim::checkParamList("RMSprop (CUDA)", list, states, numStates);

  std::unique_lock<std::mutex> lock;
  Device& d = acquire(device, lock);
  RmspropScalars s{static_cast<float>(o.lr),          static_cast<float>(o.alpha),
                   static_cast<float>(1.0 - o.alpha), static_cast<float>(o.eps),
                   static_cast<float>(o.weightDecay), static_cast<float>(o.momentum)};
  std::vector<Entry<5, RmspropScalars>> entries(list.count);
  for (size_t i = 0; i < list.count; ++i) {
    Entry<5, RmspropScalars>& e = entries[i];
    e.ptr[0] = list.params[i];
    e.ptr[1] = const_cast<float*>(list.grads[i]);
    e.ptr[2] = squareAvgs[i];
    e.ptr[3] = o.momentum != 0 ? momentumBuffers[i] : nullptr;
    e.ptr[4] = o.centered ? gradAvgs[i] : nullptr;
    e.size = list.sizes[i];
    e.scalars = s;
  }
  launchFor(o, d, entries);
  for (size_t i = 0; i < list.count; ++i) list.steps[i] += 1;
}

}  // namespace cuda
}  // namespace nodeccl
