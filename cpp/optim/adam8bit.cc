// SPDX-License-Identifier: Apache-2.0
// Fused 8-bit Adam and AdamW (Dettmers et al. 2022, "8-bit Optimizers via Block-wise
// Quantization"): the update rule of adam.cc, with m and v stored as one byte per element.
// Per block of 2048 elements: decode m and v with the block's absolute maxima, update them and
// the parameters in float32, then re-encode them with the new maxima (nearest entry of the
// dynamic map, quant/dynamic_map.h). The parameter update uses the unquantized new moments.
//
// Cost: per element 8 bytes read (p, g) + 2 state bytes, 4 + 2 written; per block 16 bytes of
// scales. The scalar encode is two dependent lookups per element (bucket, then midpoint); the
// AVX2/AVX-512 copies make it one gather per 8 or 16 elements from a table of packed entries
// (below), with the same codes. The AVX-512 decode looks the values up with register permutes,
// AVX2 with gathers. The gathers still cost more than streaming (the encode is ~half the time),
// so this runs slower per element than the 32-bit kernel: its point is memory.
#pragma GCC optimize("fp-contract=off")
// GCC 12's avx512fintrin.h trips -W(maybe-)uninitialized on the _mm512_undefined_* values in
// its own inline functions (a false positive in the compiler's header).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "optim/optim.h"
#include "optim/simd.h"
#include "quant/block_scale.h"
#include "quant/dynamic_map.h"

namespace nodeccl {
namespace optim {

namespace {

// ---- encoding a block's new m and v to codes ------------------------------------------------
// Per element, as quant::encodeMagnitude: a = |x| / absmax (times the reciprocal), the bucket
// entry for a's top bits, plus one when a is above that entry's midpoint; m adds its sign as
// bit 7 (never on code 0). encodeScalar is that reference; the AVX2/AVX-512 copies give the
// same codes with one gather per 8 or 16 elements from a table built for them:
//
// Each bucket (the floats whose bits >> 15 are k) holds at most one midpoint (dynamic_map.h),
// so its answer is c0 = bucket[k], or c0 + 1 for the a above mid[c0]: for non-negative floats
// that is a comparison of bits, and inside one bucket of the low 15 bits only. An entry packs
// c0 and that threshold (0x8000, never exceeded, when mid[c0] lies beyond the bucket). Only the
// buckets [lo, hi] are kept, so the table fits in L1 next to the other map's: hi is the bucket
// of 1.0 (above it a > 1 by rounding, infinity, or NaN once the sign bit is dropped: all give
// the last entry, whose midpoint is +inf), lo the bucket just below mid[0]'s (it and every bucket
// below hold entry 0 with no midpoint inside). An index outside [lo, hi] is clamped to it.

void encodeScalar(const float* m, const float* v, size_t n, float mInv, float vInv,
                  uint8_t* mc, uint8_t* vc) {
  const quant::DynamicMap& sm = quant::signedMagnitudes();
  const quant::DynamicMap& um = quant::unsignedMagnitudes();
  for (size_t i = 0; i < n; ++i) {
    uint8_t code = quant::encodeMagnitude(sm, std::fabs(m[i]) * mInv);
    mc[i] = static_cast<uint8_t>(code | (std::signbit(m[i]) && code != 0 ? 128 : 0));
    vc[i] = quant::encodeMagnitude(um, std::fabs(v[i]) * vInv);
  }
}

struct BucketEntries {
  uint32_t lo, hi;                // bucket indices kept: [lo, hi]
  std::vector<uint32_t> entry;    // entry[k - lo] = c0 | threshold << 8
};

BucketEntries* buildEntries(const quant::DynamicMap& d) {
  auto* t = new BucketEntries();
  uint32_t midBits;
  std::memcpy(&midBits, &d.mid[0], 4);
  t->lo = (midBits >> 15) - 1;
  t->hi = 0x3f800000u >> 15;
  for (uint32_t k = t->lo; k <= t->hi; ++k) {
    uint32_t c0 = d.bucket[k], threshold = 0x8000;
    std::memcpy(&midBits, &d.mid[c0], 4);
    if (c0 + 1 < static_cast<uint32_t>(d.size) && midBits >> 15 == k) threshold = midBits & 0x7fff;
    t->entry.push_back(c0 | threshold << 8);
  }
  return t;
}

const BucketEntries& signedEntries() {
  static const BucketEntries* t = buildEntries(quant::signedMagnitudes());
  return *t;
}

const BucketEntries& unsignedEntries() {
  static const BucketEntries* t = buildEntries(quant::unsignedMagnitudes());
  return *t;
}

#if NODECCL_HAVE_X86_DISPATCH
// 16 codes of one map for a = 16 magnitudes (>= 0, or NaN of either sign), as int32 lanes.
NODECCL_TARGET_AVX512 inline __m512i codesAvx512(const BucketEntries& t, __m512 a) {
  __m512i bits = _mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff));
  __m512i at = _mm512_min_epu32(_mm512_max_epu32(_mm512_srli_epi32(bits, 15),
                                                 _mm512_set1_epi32(static_cast<int>(t.lo))),
                                _mm512_set1_epi32(static_cast<int>(t.hi)));
  at = _mm512_sub_epi32(at, _mm512_set1_epi32(static_cast<int>(t.lo)));
  __m512i e = _mm512_i32gather_epi32(at, t.entry.data(), 4);
  __m512i c = _mm512_and_si512(e, _mm512_set1_epi32(255));
  __mmask16 up = _mm512_cmpgt_epi32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7fff)),
                                         _mm512_srli_epi32(e, 8));
  return _mm512_mask_add_epi32(c, up, c, _mm512_set1_epi32(1));
}

NODECCL_TARGET_AVX512 void encodeAvx512(const float* m, const float* v, size_t n, float mInv,
                                        float vInv, uint8_t* mc, uint8_t* vc) {
  const BucketEntries &st = signedEntries(), &ut = unsignedEntries();
  const __m512 absMask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  const __m512 mi = _mm512_set1_ps(mInv), vi = _mm512_set1_ps(vInv);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 m16 = _mm512_loadu_ps(m + i);
    __m512i cm = codesAvx512(st, _mm512_mul_ps(_mm512_and_ps(m16, absMask), mi));
    __mmask16 neg = _mm512_movepi32_mask(_mm512_castps_si512(m16)) &
                    _mm512_test_epi32_mask(cm, cm);
    cm = _mm512_mask_or_epi32(cm, neg, cm, _mm512_set1_epi32(128));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(mc + i), _mm512_cvtepi32_epi8(cm));
    __m512 v16 = _mm512_loadu_ps(v + i);
    __m512i cv = codesAvx512(ut, _mm512_mul_ps(_mm512_and_ps(v16, absMask), vi));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(vc + i), _mm512_cvtepi32_epi8(cv));
  }
  encodeScalar(m + i, v + i, n - i, mInv, vInv, mc + i, vc + i);
}

// As codesAvx512, 8 lanes.
NODECCL_TARGET_AVX2 inline __m256i codesAvx2(const BucketEntries& t, __m256 a) {
  __m256i bits = _mm256_and_si256(_mm256_castps_si256(a), _mm256_set1_epi32(0x7fffffff));
  __m256i at = _mm256_min_epu32(_mm256_max_epu32(_mm256_srli_epi32(bits, 15),
                                                 _mm256_set1_epi32(static_cast<int>(t.lo))),
                                _mm256_set1_epi32(static_cast<int>(t.hi)));
  at = _mm256_sub_epi32(at, _mm256_set1_epi32(static_cast<int>(t.lo)));
  __m256i e = _mm256_i32gather_epi32(reinterpret_cast<const int*>(t.entry.data()), at, 4);
  __m256i c = _mm256_and_si256(e, _mm256_set1_epi32(255));
  __m256i up = _mm256_cmpgt_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7fff)),
                                  _mm256_srli_epi32(e, 8));
  return _mm256_sub_epi32(c, up);  // true lanes are -1
}

// The low byte of each of 8 int32 lanes, as 8 bytes.
NODECCL_TARGET_AVX2 inline void storeBytesAvx2(uint8_t* out, __m256i c) {
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        -1, -1);
  __m256i b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(c, pick),
                                          _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(b));
}

NODECCL_TARGET_AVX2 void encodeAvx2(const float* m, const float* v, size_t n, float mInv,
                                    float vInv, uint8_t* mc, uint8_t* vc) {
  const BucketEntries &st = signedEntries(), &ut = unsignedEntries();
  const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 mi = _mm256_set1_ps(mInv), vi = _mm256_set1_ps(vInv);
  const __m256i zero = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 m8 = _mm256_loadu_ps(m + i);
    __m256i cm = codesAvx2(st, _mm256_mul_ps(_mm256_and_ps(m8, absMask), mi));
    __m256i neg = _mm256_andnot_si256(_mm256_cmpeq_epi32(cm, zero),
                                      _mm256_srai_epi32(_mm256_castps_si256(m8), 31));
    storeBytesAvx2(mc + i, _mm256_or_si256(cm, _mm256_and_si256(neg, _mm256_set1_epi32(128))));
    __m256 v8 = _mm256_loadu_ps(v + i);
    storeBytesAvx2(vc + i, codesAvx2(ut, _mm256_mul_ps(_mm256_and_ps(v8, absMask), vi)));
  }
  encodeScalar(m + i, v + i, n - i, mInv, vInv, mc + i, vc + i);
}
#endif

// ---- decoding a block's codes --------------------------------------------------------------
// m = +-value[code & 127] * absmax (bit 7: negative), v = value[code] * absmax. The vector
// copies gather the values (tables of 512 and 1024 bytes, in L1) and flip the sign bit with an
// xor, which is what negation does.

void decodeScalar(const uint8_t* mc, const uint8_t* vc, size_t n, float ma, float va, float* m,
                  float* v) {
  const quant::DynamicMap& sm = quant::signedMagnitudes();
  const quant::DynamicMap& um = quant::unsignedMagnitudes();
  for (size_t i = 0; i < n; ++i) {
    float mag = sm.value[mc[i] & 127] * ma;
    m[i] = (mc[i] & 128) ? -mag : mag;
    v[i] = um.value[vc[i]] * va;
  }
}

#if NODECCL_HAVE_X86_DISPATCH
// value[c] for 16 codes c < 32 * tables, from the table held in registers t[0..tables): one
// two-source permute per 32 entries, then blends on the index bits above the low 5.
template <int kTables>
NODECCL_TARGET_AVX512 inline __m512 lookupAvx512(const __m512* t, __m512i c) {
  __m512 r[kTables / 2];
  for (int j = 0; j < kTables / 2; ++j) r[j] = _mm512_permutex2var_ps(t[2 * j], c, t[2 * j + 1]);
  int bit = 32;
  for (int w = kTables / 2; w > 1; w /= 2, bit *= 2) {
    __mmask16 hi = _mm512_test_epi32_mask(c, _mm512_set1_epi32(bit));
    for (int j = 0; j < w / 2; ++j) r[j] = _mm512_mask_blend_ps(hi, r[2 * j], r[2 * j + 1]);
  }
  return r[0];
}

NODECCL_TARGET_AVX512 void decodeAvx512(const uint8_t* mc, const uint8_t* vc, size_t n, float ma,
                                        float va, float* m, float* v) {
  const quant::DynamicMap& sm = quant::signedMagnitudes();
  const quant::DynamicMap& um = quant::unsignedMagnitudes();
  __m512 st[8], ut[16];
  for (int j = 0; j < 8; ++j) st[j] = _mm512_loadu_ps(sm.value + 16 * j);
  for (int j = 0; j < 16; ++j) ut[j] = _mm512_loadu_ps(um.value + 16 * j);
  const __m512 ma16 = _mm512_set1_ps(ma), va16 = _mm512_set1_ps(va);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i cm = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mc + i)));
    __m512 mag = _mm512_mul_ps(lookupAvx512<8>(st, cm), ma16);
    __m512i sign = _mm512_slli_epi32(_mm512_and_si512(cm, _mm512_set1_epi32(128)), 24);
    _mm512_storeu_ps(m + i, _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(mag),
                                                                  sign)));
    __m512i cv = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(vc + i)));
    _mm512_storeu_ps(v + i, _mm512_mul_ps(lookupAvx512<16>(ut, cv), va16));
  }
  decodeScalar(mc + i, vc + i, n - i, ma, va, m + i, v + i);
}

NODECCL_TARGET_AVX2 void decodeAvx2(const uint8_t* mc, const uint8_t* vc, size_t n, float ma,
                                    float va, float* m, float* v) {
  const quant::DynamicMap& sm = quant::signedMagnitudes();
  const quant::DynamicMap& um = quant::unsignedMagnitudes();
  const __m256 ma8 = _mm256_set1_ps(ma), va8 = _mm256_set1_ps(va);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i cm = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mc + i)));
    __m256 mag = _mm256_mul_ps(_mm256_i32gather_ps(
        sm.value, _mm256_and_si256(cm, _mm256_set1_epi32(127)), 4), ma8);
    __m256i sign = _mm256_slli_epi32(_mm256_and_si256(cm, _mm256_set1_epi32(128)), 24);
    _mm256_storeu_ps(m + i, _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(mag),
                                                                  sign)));
    __m256i cv = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(vc + i)));
    _mm256_storeu_ps(v + i, _mm256_mul_ps(_mm256_i32gather_ps(um.value, cv, 4), va8));
  }
  decodeScalar(mc + i, vc + i, n - i, ma, va, m + i, v + i);
}
#endif

void decodeBlock(const uint8_t* mc, const uint8_t* vc, size_t n, float ma, float va, float* m,
                 float* v) {
#if NODECCL_HAVE_X86_DISPATCH
  if (simd::isa() == simd::Isa::kAvx512) return decodeAvx512(mc, vc, n, ma, va, m, v);
  if (simd::isa() == simd::Isa::kAvx2) return decodeAvx2(mc, vc, n, ma, va, m, v);
#endif
  decodeScalar(mc, vc, n, ma, va, m, v);
}

void encodeBlock(const float* m, const float* v, size_t n, float mInv, float vInv, uint8_t* mc,
                 uint8_t* vc) {
#if NODECCL_HAVE_X86_DISPATCH
  if (simd::isa() == simd::Isa::kAvx512) return encodeAvx512(m, v, n, mInv, vInv, mc, vc);
  if (simd::isa() == simd::Isa::kAvx2) return encodeAvx2(m, v, n, mInv, vInv, mc, vc);
#endif
  encodeScalar(m, v, n, mInv, vInv, mc, vc);
}

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
    alignas(64) float m[kAdam8bitBlock], v[kAdam8bitBlock];

    // Decode (the sign is bit 7 of m's code).
    decodeBlock(mc, vc, n, *mAbs, *vAbs, m, v);

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
    encodeBlock(m, v, n, mInv, vInv, mc, vc);
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
