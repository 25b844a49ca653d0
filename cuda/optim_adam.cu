// SPDX-License-Identifier: Apache-2.0
// Fused multi-tensor Adam and AdamW (optionally AMSGrad) on the GPU, the same update as the CPU
// kernel cpp/optim/adam.cc, operation for operation: every product, sum, quotient and root is a
// correctly rounded float32 operation (__fmul_rn etc., which nvcc never fuses into an FMA), so a
// GPU step gives the CPU's bits. Per-tensor scalars (bias corrections) are worked out on the
// host in float64 and rounded once, exactly as the CPU kernel does.
// Cost: one launch; per element 16 bytes read and 12 written (20 and 16 with amsgrad), i.e.
// 28 bytes per parameter: at the GPU's copy bandwidth B, a step takes ~28 * P / B.
#include <cmath>

#include "multi_tensor.cuh"

namespace nodeccl {
namespace cuda {
namespace {

// Mirrors AdamScalars in cpp/optim/adam.cc.
struct AdamScalars {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2, eps, weightDecay, decay, stepSize, bc2Sqrt;
};

// Arrays: 0 param, 1 grad, 2 exp_avg, 3 exp_avg_sq, 4 max_exp_avg_sq (amsgrad only).
template <bool kL2, bool kDecoupled, bool kAmsgrad>
struct AdamOp {
  __device__ void operator()(const AdamScalars& s, float* x) const {
    float pi = x[0];
    float gi = x[1];
    if (kL2) gi = __fadd_rn(gi, __fmul_rn(s.weightDecay, pi));
    if (kDecoupled) pi = __fmul_rn(pi, s.decay);

    float mi = __fadd_rn(__fmul_rn(x[2], s.beta1), __fmul_rn(s.oneMinusBeta1, gi));
    float vi = __fadd_rn(__fmul_rn(x[3], s.beta2), __fmul_rn(__fmul_rn(s.oneMinusBeta2, gi), gi));
    x[2] = mi;
    x[3] = vi;
    if (kAmsgrad) {
      vi = x[4] > vi ? x[4] : vi;
      x[4] = vi;
    }

    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), s.bc2Sqrt), s.eps);
    x[0] = __fsub_rn(pi, __fdiv_rn(__fmul_rn(s.stepSize, mi), denom));
  }
};

// The scalars of one tensor at step t (counting this step), as scalarsAt in adam.cc.
AdamScalars scalarsAt(const optim::AdamOptions& o, double t) {
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
  return s;
}

template <bool kL2, bool kDecoupled, bool kAmsgrad>
void launch(Device& d, const std::vector<Entry<5, AdamScalars>>& entries) {
  multiTensorApply(d, entries, AdamOp<kL2, kDecoupled, kAmsgrad>{});
}

void launchFor(const optim::AdamOptions& o, Device& d,
               const std::vector<Entry<5, AdamScalars>>& e) {
  int decay = o.weightDecay == 0 ? 0 : (o.decoupled ? 2 : 1);
  switch (decay * 2 + (o.amsgrad ? 1 : 0)) {
    case 0: return launch<false, false, false>(d, e);
    case 1: return launch<false, false, true>(d, e);
    case 2: return launch<true, false, false>(d, e);
    case 3: return launch<true, false, true>(d, e);
    case 4: return launch<false, true, false>(d, e);
    default: return launch<false, true, true>(d, e);
  }
}

}  // namespace

void adamStep(int device, const optim::AdamOptions& o, const optim::ParamList& list,
              float* const* expAvgs, float* const* expAvgSqs, float* const* maxExpAvgSqs) {
  // The CPU kernel's checks: options, then pointers, overlaps and step counts.
  optim::validate(o);
  const char* who = o.decoupled ? "AdamW (CUDA)" : "Adam (CUDA)";
  optim::StateArrays states[3] = {{"expAvgs", expAvgs}, {"expAvgSqs", expAvgSqs}};
  size_t numStates = 2;
  if (o.amsgrad) states[numStates++] = {"maxExpAvgSqs", maxExpAvgSqs};
  optim::checkParamList(who, list, states, numStates);

  std::unique_lock<std::mutex> lock;
  Device& d = acquire(device, lock);
  std::vector<Entry<5, AdamScalars>> entries(list.count);
  for (size_t i = 0; i < list.count; ++i) {
    list.steps[i] += 1;
    Entry<5, AdamScalars>& e = entries[i];
    e.ptr[0] = list.params[i];
    e.ptr[1] = const_cast<float*>(list.grads[i]);
    e.ptr[2] = expAvgs[i];
    e.ptr[3] = expAvgSqs[i];
    e.ptr[4] = o.amsgrad ? maxExpAvgSqs[i] : nullptr;
    e.size = list.sizes[i];
    e.scalars = scalarsAt(o, list.steps[i]);
  }
  launchFor(o, d, entries);
}

}  // namespace cuda
}  // namespace nodeccl
