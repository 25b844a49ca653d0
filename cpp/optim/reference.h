// SPDX-License-Identifier: Apache-2.0
// Plain float64 reference optimizers, one element at a time, written to be read against
// torch.optim's documented algorithms rather than to be fast. The tests check the fused float32
// kernels (sgd.cc, rmsprop.cc, adam.cc) against these; nothing else should call them.
#pragma once

#include <vector>

#include "optim/optim.h"

namespace nodeccl {
namespace optim {
namespace reference {

// State of one tensor. Empty vectors stand for state an option does not use; the step
// functions size them (zeros) on first use.
struct SgdState {
  double step = 0;
  std::vector<double> momentumBuffer;
};
struct RmspropState {
  double step = 0;
  std::vector<double> squareAvg, momentumBuffer, gradAvg;
};
struct AdamState {
  double step = 0;
  std::vector<double> expAvg, expAvgSq, maxExpAvgSq;
};

struct LionState {
  double step = 0;
  std::vector<double> expAvg;
};
struct LambState {
  double step = 0;
  std::vector<double> expAvg, expAvgSq;
};

// One step of one tensor: `param` is updated in place from `grad` (same length).
void sgdStep(const SgdOptions& o, std::vector<double>& param, const std::vector<double>& grad,
             SgdState& state);
void rmspropStep(const RmspropOptions& o, std::vector<double>& param,
                 const std::vector<double>& grad, RmspropState& state);
void adamStep(const AdamOptions& o, std::vector<double>& param, const std::vector<double>& grad,
              AdamState& state);
void lionStep(const LionOptions& o, std::vector<double>& param, const std::vector<double>& grad,
              LionState& state);
void lambStep(const LambOptions& o, std::vector<double>& param, const std::vector<double>& grad,
              LambState& state);

}  // namespace reference
}  // namespace optim
}  // namespace nodeccl
