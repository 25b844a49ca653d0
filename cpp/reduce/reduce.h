// SPDX-License-Identifier: Apache-2.0
// Element-wise reduction kernels used by the collectives, with SIMD variants chosen at run time.
#pragma once

#include <cstddef>

#include "common/dtype.h"

namespace nodeccl {

// dst[i] = op(dst[i], src[i]) for i < count. kAvg accumulates like kSum (divide afterwards with
// divideInPlace). For float16/bfloat16 this rounds at every call: collectives that must round
// once accumulate in float32 instead (see toFloat32 / fromFloat32). dst and src must not overlap.
void reduceInto(void* dst, const void* src, size_t count, DataType dtype, ReduceOp op);

// dst[i] = op(a[i], b[i]) for i < count: a reduction fused with the copy into dst, so a
// collective can combine a received chunk with its own data straight into a third buffer.
// dst may be a itself (then it is reduceInto); otherwise dst must not overlap a or b.
void reduceTo(void* dst, const void* a, const void* b, size_t count, DataType dtype,
              ReduceOp op);

// data[i] /= divisor (integer division truncating toward zero for integer types).
void divideInPlace(void* data, size_t count, DataType dtype, int divisor);

// Conversion between a half type (float16/bfloat16) and float32, for accumulate-then-round.
void toFloat32(const void* src, float* dst, size_t count, DataType halfType);
void fromFloat32(const float* src, void* dst, size_t count, DataType halfType);

// ---- SIMD variants ---------------------------------------------------------------------------
// Every variant computes bitwise the same results for non-NaN values (each element is one
// IEEE operation, in the same order), and a NaN wherever the scalar reference gives one.
// The first kernel call picks the best level the CPU supports, or the one NODECCL_SIMD names
// (auto|scalar|avx2|avx512), and logs the choice at NODECCL_DEBUG=info (subsystem "reduce").

enum class SimdLevel : int {
  kScalar = 0,  // portable C++ for any x86-64 (baseline SSE2) or other CPU: the reference
  kAvx2 = 1,    // AVX2 + FMA + F16C (Haswell, Zen 1 and later)
  kAvx512 = 2,  // AVX-512 F/BW/VL + F16C (Skylake-SP, Ice Lake, Zen 4 and later)
};
constexpr int kNumSimdLevels = 3;

const char* simdLevelName(SimdLevel level);

// True when this CPU (and OS) can run `level`; kScalar always can.
bool simdLevelSupported(SimdLevel level);

// The level in use, choosing it from the CPU and NODECCL_SIMD on the first call. Throws
// kInvalidArgument when NODECCL_SIMD names an unknown or unsupported level.
SimdLevel activeSimdLevel();

// Forces a level for the whole process (tests and bench/kernels_reduce.cc compare variants).
// Throws kInvalidArgument when the CPU cannot run it. Not meant to race with running kernels.
void setSimdLevel(SimdLevel level);

}  // namespace nodeccl
