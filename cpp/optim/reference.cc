// SPDX-License-Identifier: Apache-2.0
// The float64 reference optimizers: each is torch.optim's documented algorithm, transcribed
// line by line for a single element, with no fusion, no rounding to float32 and no shortcuts.
#include "optim/reference.h"

#include <algorithm>
#include <cmath>

namespace nodeccl {
namespace optim {
namespace reference {

namespace {

void ensureSize(std::vector<double>& v, size_t n) {
  if (v.size() != n) v.assign(n, 0.0);
}

}  // namespace

void sgdStep(const SgdOptions& o, std::vector<double>& param, const std::vector<double>& grad,
             SgdState& state) {
  bool first = state.step == 0;
  state.step += 1;
  if (o.momentum != 0) ensureSize(state.momentumBuffer, param.size());
  for (size_t i = 0; i < param.size(); ++i) {
    double g = grad[i] + o.weightDecay * param[i];
    if (o.momentum != 0) {
      double& b = state.momentumBuffer[i];
      b = first ? g : o.momentum * b + (1 - o.dampening) * g;
      g = o.nesterov ? g + o.momentum * b : b;
    }
    param[i] -= o.lr * g;
  }
}

void rmspropStep(const RmspropOptions& o, std::vector<double>& param,
                 const std::vector<double>& grad, RmspropState& state) {
  state.step += 1;
  ensureSize(state.squareAvg, param.size());
  if (o.momentum != 0) ensureSize(state.momentumBuffer, param.size());
  if (o.centered) ensureSize(state.gradAvg, param.size());
  for (size_t i = 0; i < param.size(); ++i) {
    double g = grad[i] + o.weightDecay * param[i];
    double& sq = state.squareAvg[i];
    sq = o.alpha * sq + (1 - o.alpha) * g * g;
    double variance = sq;
    if (o.centered) {
      double& ga = state.gradAvg[i];
      ga = o.alpha * ga + (1 - o.alpha) * g;
      variance = sq - ga * ga;
    }
    double avg = std::sqrt(variance) + o.eps;
    if (o.momentum != 0) {
      double& b = state.momentumBuffer[i];
      b = o.momentum * b + g / avg;
      param[i] -= o.lr * b;
    } else {
      param[i] -= o.lr * g / avg;
    }
  }
}

void adamStep(const AdamOptions& o, std::vector<double>& param, const std::vector<double>& grad,
              AdamState& state) {
  state.step += 1;
  double t = state.step;
  ensureSize(state.expAvg, param.size());
  ensureSize(state.expAvgSq, param.size());
  if (o.amsgrad) ensureSize(state.maxExpAvgSq, param.size());
  double bc1 = o.biasCorrection ? 1 - std::pow(o.beta1, t) : 1;
  double bc2 = o.biasCorrection ? 1 - std::pow(o.beta2, t) : 1;
  for (size_t i = 0; i < param.size(); ++i) {
    double g = grad[i];
    if (o.decoupled) {
      param[i] *= 1 - o.lr * o.weightDecay;
    } else {
      g += o.weightDecay * param[i];
    }
    double& m = state.expAvg[i];
    double& v = state.expAvgSq[i];
    m = o.beta1 * m + (1 - o.beta1) * g;
    v = o.beta2 * v + (1 - o.beta2) * g * g;
    double vHat = v / bc2;
    if (o.amsgrad) {
      double& vMax = state.maxExpAvgSq[i];
      vMax = std::max(vMax, v);
      vHat = vMax / bc2;
    }
    double mHat = m / bc1;
    param[i] -= o.lr * mHat / (std::sqrt(vHat) + o.eps);
  }
}

void lionStep(const LionOptions& o, std::vector<double>& param, const std::vector<double>& grad,
              LionState& state) {
  state.step += 1;
  ensureSize(state.expAvg, param.size());
  for (size_t i = 0; i < param.size(); ++i) {
    double& m = state.expAvg[i];
    double c = o.beta1 * m + (1 - o.beta1) * grad[i];
    double sign = c > 0 ? 1 : (c < 0 ? -1 : 0);
    param[i] = param[i] * (1 - o.lr * o.weightDecay) - o.lr * sign;
    m = o.beta2 * m + (1 - o.beta2) * grad[i];
  }
}

void lambStep(const LambOptions& o, std::vector<double>& param, const std::vector<double>& grad,
              LambState& state) {
  state.step += 1;
  double t = state.step;
  ensureSize(state.expAvg, param.size());
  ensureSize(state.expAvgSq, param.size());
  double bc1 = o.biasCorrection ? 1 - std::pow(o.beta1, t) : 1;
  double bc2 = o.biasCorrection ? 1 - std::pow(o.beta2, t) : 1;
  std::vector<double> u(param.size());
  double pNorm = 0, uNorm = 0;
  for (size_t i = 0; i < param.size(); ++i) {
    double& m = state.expAvg[i];
    double& v = state.expAvgSq[i];
    m = o.beta1 * m + (1 - o.beta1) * grad[i];
    v = o.beta2 * v + (1 - o.beta2) * grad[i] * grad[i];
    u[i] = (m / bc1) / (std::sqrt(v / bc2) + o.eps) + o.weightDecay * param[i];
    pNorm += param[i] * param[i];
    uNorm += u[i] * u[i];
  }
  pNorm = std::sqrt(pNorm);
  uNorm = std::sqrt(uNorm);
  double ratio = pNorm > 0 && uNorm > 0 ? pNorm / uNorm : 1;
  for (size_t i = 0; i < param.size(); ++i) param[i] -= o.lr * ratio * u[i];
}

}  // namespace reference
}  // namespace optim
}  // namespace nodeccl
