// SPDX-License-Identifier: Apache-2.0
// Fused optimizers with torch.optim's update rules: one call updates a whole list of float32
// tensors in place. Hyperparameters are plain structs; tensors and their state are arrays of
// pointers owned by the caller (the binding passes JS typed-array memory straight through).
//
// Numerics: every element is updated with float32 arithmetic (like torch on CPU), using
// scalars worked out once per tensor in float64 and then rounded to float32. Only +, -, *, /
// and sqrt are used, each correctly rounded, with no reassociation (and no fused multiply-add
// on the default x86-64 target), so a vectorized body and its scalar remainder give the same
// bits: results do not depend on an array's alignment, and a reloaded checkpoint continues
// bit for bit.
// Build note: the loops with sqrt vectorize only under -fno-math-errno (the errno branch of
// sqrtf blocks it); without the flag they run scalar, with the same results.
//
// Thread safety: the step functions keep no state of their own; callers must not update the
// same tensors from two threads at once.
#pragma once

#include <cstddef>
#include <string>

namespace nodeccl {
namespace optim {

// torch.optim.SGD. Cost per element: read p, g (and the momentum buffer), write p (and it).
struct SgdOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weightDecay = 0.0;  // L2: g += weightDecay * p
  bool nesterov = false;     // needs momentum > 0 and dampening == 0
};

// torch.optim.RMSprop. Cost per element: read p, g and 1 to 3 state arrays, write them back.
struct RmspropOptions {
  double lr = 1e-2;
  double alpha = 0.99;  // smoothing of the running mean of g^2
  double eps = 1e-8;    // added to the root, not under it
  double weightDecay = 0.0;
  double momentum = 0.0;
  bool centered = false;  // divide by an estimate of the variance instead of the raw second moment
};

// torch.optim.Adam, and torch.optim.AdamW when `decoupled` is set. Cost per element: read p, g,
// m, v (and vmax), write p, m, v (and vmax).
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weightDecay = 0.0;   // Adam: L2 added to g; AdamW: p *= 1 - lr * weightDecay
  bool amsgrad = false;       // use the running maximum of v in the denominator
  bool decoupled = false;     // true: AdamW
  bool biasCorrection = true; // divide m by 1 - beta1^t and v by 1 - beta2^t (torch always does)
};

// AdamW's defaults (torch.optim.AdamW): weightDecay 1e-2, decoupled.
AdamOptions adamwDefaults();

// The tensors of one fused call. Tensor i has sizes[i] elements at params[i] and grads[i];
// steps[i] is its own update count (whole numbers, kept as float64 like a JS number), which a
// step function increments. Within one tensor, no two arrays may overlap (they are `restrict`).
struct ParamList {
  size_t count = 0;
  float* const* params = nullptr;
  const float* const* grads = nullptr;
  const size_t* sizes = nullptr;
  double* steps = nullptr;
};

// Each throws nodeccl::Error(kInvalidArgument) naming the first unusable hyperparameter.
void validate(const SgdOptions& o);
void validate(const RmspropOptions& o);
void validate(const AdamOptions& o);

// One update of every tensor in `list`. State arrays are matched to tensors by index; an array
// of state pointers that an option does not need may be null (e.g. momentumBuffers when
// momentum == 0). State starts as zeros, except SGD's momentum buffer, which a tensor's first
// step (steps[i] == 0) fills with its gradient, as torch does. Options and the list are checked
// first, so a throw leaves every tensor untouched.
void sgdStep(const SgdOptions& o, const ParamList& list, float* const* momentumBuffers);
void rmspropStep(const RmspropOptions& o, const ParamList& list, float* const* squareAvgs,
                 float* const* momentumBuffers, float* const* gradAvgs);
void adamStep(const AdamOptions& o, const ParamList& list, float* const* expAvgs,
              float* const* expAvgSqs, float* const* maxExpAvgSqs);

// ---- shared by the files in this folder -----------------------------------------------------

// The shortest decimal that reads back as `x` ("0.1", "1e-08", "nan").
std::string formatNumber(double x);

// Throws kInvalidArgument "<who>: <name> must be <rule>, got <value>" unless `ok`.
void requireOption(bool ok, const char* who, const char* name, double value, const char* rule);

// Throws kInvalidArgument unless `list` is usable: pointers present for non-empty tensors,
// step counts whole and below 2^53. `states` names each required state array and its pointers.
struct StateArrays {
  const char* name;
  float* const* arrays;
};
void checkParamList(const char* who, const ParamList& list, const StateArrays* states,
                    size_t numStates);

}  // namespace optim
}  // namespace nodeccl
