// SPDX-License-Identifier: Apache-2.0
// Fused 8-bit Adam and AdamW (Dettmers et al. 2022, "8-bit Optimizers via Block-wise
// Quantization"): the update rule of adam.cc, with m and v stored as one byte per element.
// Per block of 2048 elements: decode m and v with the block's absolute maxima, update them and
// the parameters in float32, then re-encode them with the new maxima (nearest entry of the
// dynamic map, quant/dynamic_map.h). The parameter update uses the unquantized new moments.
//
// Cost: per element 8 bytes read (p, g) + 2 state bytes, 4 + 2 written; per block 16 bytes of
// scales. The encode is a byte-table lookup per element, which does not vectorize (no byte
// gather), so this runs slower per element than the 32-bit kernel: its point is memory.
#pragma GCC optimize("fp-contract=off")
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/error.h"
#include "optim/optim.h"
#include "optim/simd.h"
#include "quant/block_scale.h"
#include "quant/dynamic_map.h"

namespace nodeccl {
namespace optim {

namespace {

struct Adam8Scalars {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2, eps, weightDecay, decay, stepSize, bc2Sqrt;
  float gradScale;
};

// One block: decode, update (as adam.cc's kernel), find the new maxima, encode. Each phase is
// its own loop so the decode and update vectorize (the maxima are found on the float bits, an
// integer max that vectorizes, where a float max with NaN rules would not).
template <bool kL2, bool kDecoupled>
struct Adam8Kernel {
  static NODECCL_INLINE void run(const Adam8Scalars* sp, size_t n, float* __restrict p,
                                 const float* __restrict g, uint8_t* __restrict mc,
                                 float* mAbs, uint8_t* __restrict vc, float* vAbs) {
    const Adam8Scalars s = *sp;
    const quant::DynamicMap& sm = quant::signedMagnitudes();
    const quant::DynamicMap& um = quant::unsignedMagnitudes();
    float m[kAdam8bitBlock], v[kAdam8bitBlock];

    // Decode (the sign is bit 7 of m's code).
    float ma = *mAbs, va = *vAbs;
    for (size_t i = 0; i < n; ++i) {
      float mag = sm.value[mc[i] & 127] * ma;
      m[i] = (mc[i] & 128) ? -mag : mag;
      v[i] = um.value[vc[i]] * va;
    }

    // Update, as adam.cc (same float32 operations in the same order).
    for (size_t i = 0; i < n; ++i) {
      float pi = p[i];
      float gi = g[i] * s.gradScale;
      if constexpr (kL2) gi = gi + s.weightDecay * pi;
      if constexpr (kDecoupled) pi = pi * s.decay;
      float mi = m[i] * s.beta1 + s.oneMinusBeta1 * gi;
      float vi = v[i] * s.beta2 + (s.oneMinusBeta2 * gi) * gi;
      m[i] = mi;
      v[i] = vi;
      float denom = std::sqrt(vi) / s.bc2Sqrt + s.eps;
      p[i] = pi - (s.stepSize * mi) / denom;
    }

    // New maxima (v >= 0), then encode (an all-zero block keeps scale 0 and code 0).
    float mMax = quant::bitsToFloat(quant::absMaxBits(m, n));
    float vMax = quant::bitsToFloat(quant::absMaxBits(v, n));
    float mInv = mMax > 0 ? 1.0f / mMax : 0.0f, vInv = vMax > 0 ? 1.0f / vMax : 0.0f;
    for (size_t i = 0; i < n; ++i) {
      uint8_t code = quant::encodeMagnitude(sm, std::fabs(m[i]) * mInv);
      mc[i] = static_cast<uint8_t>(code | (std::signbit(m[i]) && code != 0 ? 128 : 0));
      vc[i] = quant::encodeMagnitude(um, v[i] * vInv);
    }
    *mAbs = mMax;
    *vAbs = vMax;
  }
};

using Adam8Fn = void (*)(const Adam8Scalars*, size_t, float*, const float*, uint8_t*, float*,
                         uint8_t*, float*);

template <bool kL2, bool kDecoupled>
void adam8Dispatch(const Adam8Scalars* s, size_t n, float* p, const float* g, uint8_t* mc,
                   float* ma, uint8_t* vc, float* va) {
  simd::run<Adam8Kernel<kL2, kDecoupled>>(s, n, p, g, mc, ma, vc, va);
}

}  // namespace

StepReport adam8bitStep(const AdamOptions& o, const ParamList& list, const Adam8bitState& st,
                        const StepControl& c) {
  validate(o);
  const char* who = o.decoupled ? "AdamW8bit" : "Adam8bit";
  if (o.amsgrad) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat(who, ": amsgrad is not supported with 8-bit state (LIMITATION: it would "
                            "need a third quantized array); use Adam/AdamW for amsgrad"));
  }
  checkParamList(who, list, nullptr, 0);
  if (list.count > 0 && (!st.mCodes || !st.mAbsmax || !st.vCodes || !st.vAbsmax)) {
    throw Error(ErrorCode::kInvalidArgument, strcat(who, ": the 8-bit state arrays are required"));
  }
  for (size_t i = 0; i < list.count; ++i) {
    bool ok = st.mCodes[i] ? st.mAbsmax[i] && st.vCodes[i] && st.vAbsmax[i]
                           : st.m32 && st.v32 && st.m32[i] && st.v32[i];
    if (!ok && list.sizes[i] > 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat(who, ": tensor ", i, " has neither complete 8-bit nor 32-bit state"));
    }
  }
  StepReport report = inspectGrads(who, list, c);
  if (report.skipped) return report;

  // The 32-bit tensors first, through adam.cc with the factor found for the whole list.
  std::vector<size_t> small;
  for (size_t i = 0; i < list.count; ++i) if (!st.mCodes[i]) small.push_back(i);
  if (!small.empty()) {
    std::vector<float*> p, m, v;
    std::vector<const float*> g;
    std::vector<size_t> sizes;
    std::vector<double> steps;
    for (size_t i : small) {
      p.push_back(list.params[i]), g.push_back(list.grads[i]), sizes.push_back(list.sizes[i]);
      m.push_back(st.m32[i]), v.push_back(st.v32[i]), steps.push_back(list.steps[i]);
    }
    StepControl sub;
    sub.threads = c.threads;
    sub.gradScale = report.clipScale;
    adamStep(o, ParamList{small.size(), p.data(), g.data(), sizes.data(), steps.data()},
             m.data(), v.data(), nullptr, sub);
    for (size_t k = 0; k < small.size(); ++k) list.steps[small[k]] = steps[k];
  }

  std::vector<Adam8Scalars> scalars(list.count);
  for (size_t i = 0; i < list.count; ++i) {
    if (!st.mCodes[i]) continue;
    double t = list.steps[i] += 1;
    double bc1 = o.biasCorrection ? 1.0 - std::pow(o.beta1, t) : 1.0;
    double bc2 = o.biasCorrection ? 1.0 - std::pow(o.beta2, t) : 1.0;
    scalars[i] = {static_cast<float>(o.beta1), static_cast<float>(1.0 - o.beta1),
                  static_cast<float>(o.beta2), static_cast<float>(1.0 - o.beta2),
                  static_cast<float>(o.eps),   static_cast<float>(o.weightDecay),
                  static_cast<float>(1.0 - o.lr * o.weightDecay),
                  static_cast<float>(o.lr / bc1), static_cast<float>(std::sqrt(bc2)),
                  static_cast<float>(report.clipScale)};
  }

  // Block by block (forEachSpan's chunks are whole multiples of the block).
  static_assert(65536 % kAdam8bitBlock == 0, "parallel.cc's chunk must hold whole blocks");
  bool l2 = !o.decoupled && o.weightDecay != 0, dec = o.decoupled && o.weightDecay != 0;
  Adam8Fn kernel = l2 ? adam8Dispatch<true, false>
                      : (dec ? adam8Dispatch<false, true> : adam8Dispatch<false, false>);
  forEachSpan(list, c, [&](size_t i, size_t begin, size_t end) {
    if (!st.mCodes[i]) return;
    for (size_t b = begin; b < end; b += kAdam8bitBlock) {
      size_t n = std::min(kAdam8bitBlock, end - b), k = b / kAdam8bitBlock;
      kernel(&scalars[i], n, list.params[i] + b, list.grads[i] + b,
                             st.mCodes[i] + b, st.mAbsmax[i] + k, st.vCodes[i] + b,
                             st.vAbsmax[i] + k);
    }
  });
  return report;
}

}  // namespace optim
}  // namespace nodeccl
