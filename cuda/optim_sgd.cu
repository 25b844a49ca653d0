// SPDX-License-Identifier: Apache-2.0
// Fused multi-tensor SGD (momentum, dampening, Nesterov, L2 weight decay) on the GPU, the same
// update as cpp/optim/sgd.cc in correctly rounded float32 operations (bit-identical results).
// A tensor's first step (steps[i] == 0) fills its momentum buffer with the gradient, as torch.
// Cost: one launch; per element 8 bytes read and 4 written (12 and 8 with momentum).
#include "multi_tensor.cuh"

namespace nodeccl {
namespace cuda {
namespace {

struct SgdScalars {
  float lr, momentum, oneMinusDampening, weightDecay;
  int first;  // this tensor's first step: the buffer takes the gradient
};

// Arrays: 0 param, 1 grad, 2 momentum buffer (momentum > 0 only).
template <bool kDecay, bool kMomentum, bool kNesterov>
struct SgdOp {
  __device__ void operator()(const SgdScalars& s, float* x) const {
    float gi = x[1];
    if (kDecay) gi = __fadd_rn(gi, __fmul_rn(s.weightDecay, x[0]));
    if (!kMomentum) {
      x[0] = __fsub_rn(x[0], __fmul_rn(s.lr, gi));
      return;
    }
    float b = s.first ? gi
                      : __fadd_rn(__fmul_rn(s.momentum, x[2]), __fmul_rn(s.oneMinusDampening, gi));
    x[2] = b;
    float dir = kNesterov ? __fadd_rn(gi, __fmul_rn(s.momentum, b)) : b;
    x[0] = __fsub_rn(x[0], __fmul_rn(s.lr, dir));
  }
};

template <bool kDecay, bool kMomentum, bool kNesterov>
void launch(Device& d, const std::vector<Entry<3, SgdScalars>>& e) {
  multiTensorApply(d, e, SgdOp<kDecay, kMomentum, kNesterov>{});
}

void launchFor(const optim::SgdOptions& o, Device& d, const std::vector<Entry<3, SgdScalars>>& e) {
  bool decay = o.weightDecay != 0, momentum = o.momentum != 0;
  switch ((decay ? 4 : 0) + (momentum ? 2 : 0) + (o.nesterov ? 1 : 0)) {
    case 0: return launch<false, false, false>(d, e);
    case 2: return launch<false, true, false>(d, e);
    case 3: return launch<false, true, true>(d, e);
    case 4: return launch<true, false, false>(d, e);
    case 6: return launch<true, true, false>(d, e);
    case 7: return launch<true, true, true>(d, e);
    default: NODECCL_CHECK(false);  // nesterov without momentum: refused by validate()
  }
}

}  // namespace

void sgdStep(int device, const optim::SgdOptions& o, const optim::ParamList& list,
             float* const* momentumBuffers) {
  optim::validate(o);
  optim::StateArrays states[] = {{"momentumBuffers", momentumBuffers}};
  optim::checkParamList("SGD (CUDA)", list, states, o.momentum != 0 ? 1 : 0);

  std::unique_lock<std::mutex> lock;
  Device& d = acquire(device, lock);
  SgdScalars s{static_cast<float>(o.lr), static_cast<float>(o.momentum),
               static_cast<float>(1.0 - o.dampening), static_cast<float>(o.weightDecay), 0};
  std::vector<Entry<3, SgdScalars>> entries(list.count);
  for (size_t i = 0; i < list.count; ++i) {
    Entry<3, SgdScalars>& e = entries[i];
    e.ptr[0] = list.params[i];
    e.ptr[1] = const_cast<float*>(list.grads[i]);
    e.ptr[2] = o.momentum != 0 ? momentumBuffers[i] : nullptr;
    e.size = list.sizes[i];
    e.scalars = s;
    e.scalars.first = list.steps[i] == 0;
  }
  launchFor(o, d, entries);
  for (size_t i = 0; i < list.count; ++i) list.steps[i] += 1;
}

}  // namespace cuda
}  // namespace nodeccl
