// SPDX-License-Identifier: Apache-2.0
// Internal to cpp/reduce/: the table of kernels one SIMD variant provides, filled by
// reduce_scalar.cc, reduce_avx2.cc and reduce_avx512.cc and chosen by reduce.cc at run time.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"

namespace nodeccl {
namespace reduce_detail {

using InPlaceFn = void (*)(void* dst, const void* src, size_t count);
using OutOfPlaceFn = void (*)(void* dst, const void* a, const void* b, size_t count);
using DivideFn = void (*)(void* data, size_t count, int divisor);
using WidenFn = void (*)(const uint16_t* src, float* dst, size_t count);
using NarrowFn = void (*)(const float* src, uint16_t* dst, size_t count);

// Indexed by DataType and ReduceOp (kAvg holds the sum kernel). Half conversions are indexed
// 0 = float16, 1 = bfloat16. Every entry is set; none may be null.
struct KernelTable {
  InPlaceFn into[kNumDataTypes][kNumReduceOps];
  OutOfPlaceFn to[kNumDataTypes][kNumReduceOps];
  DivideFn divide[kNumDataTypes];
  WidenFn widen[2];
  NarrowFn narrow[2];
};

// Each returns its variant's table; the AVX ones are only safe to call through after the CPU
// check in reduce.cc (on non-x86 builds they return the scalar table and are never chosen).
const KernelTable& scalarKernels();
const KernelTable& avx2Kernels();
const KernelTable& avx512Kernels();

}  // namespace reduce_detail
}  // namespace nodeccl
