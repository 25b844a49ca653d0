// SPDX-License-Identifier: Apache-2.0
// Element-wise reduction kernels used by the collectives.
#pragma once

#include <cstddef>

#include "common/dtype.h"

namespace nodeccl {

// dst[i] = op(dst[i], src[i]) for i < count. kAvg accumulates like kSum (divide afterwards with
// divideInPlace). For float16/bfloat16 this rounds at every call: collectives that must round
// once accumulate in float32 instead (see toFloat32 / fromFloat32).
void reduceInto(void* dst, const void* src, size_t count, DataType dtype, ReduceOp op);

// data[i] /= divisor (integer division truncating toward zero for integer types).
void divideInPlace(void* data, size_t count, DataType dtype, int divisor);

// Conversion between a half type (float16/bfloat16) and float32, for accumulate-then-round.
void toFloat32(const void* src, float* dst, size_t count, DataType halfType);
void fromFloat32(const float* src, void* dst, size_t count, DataType halfType);

}  // namespace nodeccl
