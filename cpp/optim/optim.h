// SPDX-License-Identifier: Apache-2.0
// Fused optimizers with torch.optim's update rules: one call updates a whole list of float32
// tensors in place. Hyperparameters are plain structs; tensors and their state are arrays of
// pointers owned by the caller (the binding passes JS typed-array memory straight through).
//
// Speed: each kernel body is compiled three times (baseline x86-64, AVX2, AVX-512; simd.h) and
// the copy for this CPU runs, so a prebuilt binary runs anywhere and streams at memory speed
// where it can. A StepControl can clip by global norm, skip a step on NaN/Inf, and split large
// lists across threads, all in the same call.
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
#include <cstdint>
#include <functional>
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

// What a fused call does besides the update. Defaults: nothing extra, one thread.
struct StepControl {
  // > 0: gradients are multiplied by min(1, maxGradNorm / (norm + 1e-6)) inside the update,
  // norm being the L2 norm of all gradients of the call together (torch's clip_grad_norm_).
  double maxGradNorm = 0;
  // true: a NaN or infinity in any gradient leaves every tensor and step count untouched and
  // the report says which parameter held it (for dynamic loss scaling).
  bool skipNonFinite = false;
  // Threads sharing the update of a large list (>= 1M elements in all), caller included.
  int threads = 1;
  // A factor applied to every gradient inside the update (e.g. 1 / lossScale to unscale), > 0;
  // clipping and the reported norm apply to the scaled gradients.
  double gradScale = 1;
};

// What the call found. The norm is computed (one extra read of the gradients, 4 bytes per
// element) only when clipping or checking.
struct StepReport {
  double gradNorm = -1;          // L2 norm of all gradients, float64; -1 when not computed
  double clipScale = 1;          // the factor applied to the gradients (gradScale included)
  bool skipped = false;          // the step was skipped for a non-finite gradient
  long long nonFiniteParam = -1; // index of the first tensor with a NaN/Inf gradient, or -1
  long long nonFiniteIndex = -1; // index of its first NaN/Inf element, or -1
};

// torch.optim.Lion-style (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms").
// Cost per element: read p, g, m, write p, m (12 bytes read, 8 written).
struct LionOptions {
  double lr = 1e-4;
  double beta1 = 0.9;   // mixes m and g for the update's sign
  double beta2 = 0.99;  // decay of m
  double weightDecay = 0.0;  // decoupled: p *= 1 - lr * weightDecay
};

// LAMB (You et al. 2020): Adam's direction plus decoupled weight decay, scaled per tensor by the
// trust ratio ||p|| / ||update||. Cost per element: two passes, 16 + 12 bytes read, 12 written.
struct LambOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-6;
  double weightDecay = 0.0;
  bool biasCorrection = true;
};

// Each throws nodeccl::Error(kInvalidArgument) naming the first unusable hyperparameter.
void validate(const SgdOptions& o);
void validate(const RmspropOptions& o);
void validate(const AdamOptions& o);
void validate(const LionOptions& o);
void validate(const LambOptions& o);

// One update of every tensor in `list`. State arrays are matched to tensors by index; an array
// of state pointers that an option does not need may be null (e.g. momentumBuffers when
// momentum == 0). State starts as zeros, except SGD's momentum buffer, which a tensor's first
// step (steps[i] == 0) fills with its gradient, as torch does. Options and the list are checked
// first, so a throw leaves every tensor untouched.
StepReport sgdStep(const SgdOptions& o, const ParamList& list, float* const* momentumBuffers,
                   const StepControl& c = StepControl());
StepReport rmspropStep(const RmspropOptions& o, const ParamList& list, float* const* squareAvgs,
                       float* const* momentumBuffers, float* const* gradAvgs,
                       const StepControl& c = StepControl());
StepReport adamStep(const AdamOptions& o, const ParamList& list, float* const* expAvgs,
                    float* const* expAvgSqs, float* const* maxExpAvgSqs,
                    const StepControl& c = StepControl());
StepReport lionStep(const LionOptions& o, const ParamList& list, float* const* expAvgs,
                    const StepControl& c = StepControl());
// LAMB updates tensor by tensor (the trust ratio needs a whole tensor's norms first);
// c.threads is ignored.
StepReport lambStep(const LambOptions& o, const ParamList& list, float* const* expAvgs,
                    float* const* expAvgSqs, const StepControl& c = StepControl());

// 8-bit Adam/AdamW (adam8bit.cc): m and v kept as one byte per element in blocks of
// kAdam8bitBlock, each block with a float32 absolute maximum, decoded with the dynamic maps of
// quant/dynamic_map.h (signed for m, unsigned for v). State per element: 2 bytes + 8 / 2048
// instead of 8 (3.98x smaller). All-zero codes and scales are the zero state.
constexpr size_t kAdam8bitBlock = 2048;
inline size_t adam8bitBlocks(size_t n) { return (n + kAdam8bitBlock - 1) / kAdam8bitBlock; }
// A tensor whose mCodes entry is null keeps 32-bit state in m32/v32 instead (small tensors,
// as bitsandbytes keeps those below 4096 elements), updated by adam.cc's kernel in the same call.
struct Adam8bitState {
  uint8_t* const* mCodes;   // n bytes per tensor, or null for a 32-bit tensor
  float* const* mAbsmax;    // adam8bitBlocks(n) floats per tensor
  uint8_t* const* vCodes;
  float* const* vAbsmax;
  float* const* m32 = nullptr;  // n floats for the 32-bit tensors
  float* const* v32 = nullptr;
};
// LIMITATION: no amsgrad (the running maximum would need a third quantized array; nobody asked).
StepReport adam8bitStep(const AdamOptions& o, const ParamList& list, const Adam8bitState& st,
                        const StepControl& c = StepControl());

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

// Checks `c`, then computes the global gradient norm when `c` asks for clipping or checking
// (grad_control.cc). A report with skipped == true means: return it without touching anything.
StepReport inspectGrads(const char* who, const ParamList& list, const StepControl& c);

// Sum of squares of x[0..n), in float64 (grad_control.cc; vectorized, dispatched).
double sumOfSquares(const float* x, size_t n);

// Calls fn(tensor, begin, end) over every element of every tensor in `list`: in one piece per
// tensor on the calling thread, or in chunks shared by c.threads threads when the list is large
// (parallel.cc). fn must touch only elements [begin, end) of that tensor.
void forEachSpan(const ParamList& list, const StepControl& c,
                 const std::function<void(size_t, size_t, size_t)>& fn);

}  // namespace optim
}  // namespace nodeccl
