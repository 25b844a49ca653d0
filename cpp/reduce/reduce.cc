// SPDX-License-Identifier: Apache-2.0
// Element-wise reduction kernels (dst op= src) for every dtype and operator, plus the avg
// divide and the half <-> float32 conversions the collectives use to round once.
//
// Each kernel is a plain indexed loop over restrict pointers, instantiated per type and
// operator, so that g++ vectorizes it at -O3 without a per-element switch. Run-time SIMD
// dispatch (AVX2 / AVX-512 variants) is left to a later change; these loops stay the scalar
// reference. dst and src must not overlap (they never do in coll/).
#include "reduce/reduce.h"

#include <cstdint>
#include <type_traits>

#include "common/error.h"
#include "common/half.h"

namespace nodeccl {
namespace {

// Integer sum and product wrap around modulo 2^bits (two's complement), as in torch and NCCL.
// Signed overflow is undefined in C++, so both are computed in unsigned arithmetic; types
// narrower than `unsigned` are widened to `unsigned` first (an int8 product promoted to `int`
// cannot overflow, but a future 16-bit type could).
template <typename T>
using WideUnsigned =
    std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;

template <typename T>
inline T wrapAdd(T a, T b) {
  using W = WideUnsigned<T>;
  return static_cast<T>(static_cast<W>(a) + static_cast<W>(b));
}

template <typename T>
inline T wrapMul(T a, T b) {
  using W = WideUnsigned<T>;
  return static_cast<T>(static_cast<W>(a) * static_cast<W>(b));
}

// The operators, as types so each kernel is instantiated (and vectorized) separately.
// min and max propagate NaN like torch: if either input is NaN the result is NaN. The
// comparison is written as two selects so that it maps onto vector compare + blend.
struct SumOp {
  template <typename T>
  static T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>) return wrapAdd(a, b);
    else return a + b;
  }
};

struct ProdOp {
  template <typename T>
  static T apply(T a, T b) {
    if constexpr (std::is_integral_v<T>) return wrapMul(a, b);
    else return a * b;
  }
};

struct MinOp {
  template <typename T>
  static T apply(T a, T b) {
    T r = b < a ? b : a;  // a when a is NaN (the comparison is false)
    if constexpr (std::is_floating_point_v<T>) r = b != b ? b : r;
    return r;
  }
};

struct MaxOp {
  template <typename T>
  static T apply(T a, T b) {
    T r = a < b ? b : a;  // a when a is NaN
    if constexpr (std::is_floating_point_v<T>) r = b != b ? b : r;
    return r;
  }
};

template <typename Op, typename T>
void combine(T* __restrict dst, const T* __restrict src, size_t count) {
  for (size_t i = 0; i < count; ++i) dst[i] = Op::apply(dst[i], src[i]);
}

// Half types: widen both operands to float32, apply, round back (once per call).
struct Fp16 {
  static float load(uint16_t h) { return halfToFloat(h); }
  static uint16_t store(float f) { return floatToHalf(f); }
};
struct Bf16 {
  static float load(uint16_t h) { return bf16ToFloat(h); }
  static uint16_t store(float f) { return floatToBf16(f); }
};

template <typename Op, typename H>
void combineHalf(uint16_t* __restrict dst, const uint16_t* __restrict src, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    dst[i] = H::store(Op::apply(H::load(dst[i]), H::load(src[i])));
  }
}

// Calls fn with the operator type for `op`, so each caller instantiates one kernel per op.
template <typename Fn>
void byOp(ReduceOp op, Fn&& fn) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: fn(SumOp{}); return;  // avg = sum now, divideInPlace later
    case ReduceOp::kProd: fn(ProdOp{}); return;
    case ReduceOp::kMin: fn(MinOp{}); return;
    case ReduceOp::kMax: fn(MaxOp{}); return;
  }
  throw Error(ErrorCode::kInvalidArgument,
              strcat("reduceInto: reduce op ", static_cast<int>(op),
                     " is not a known op; pass one of 0..", kNumReduceOps - 1,
                     " (sum, prod, min, max, avg)"));
}

template <typename T>
void reduceTyped(void* dst, const void* src, size_t count, ReduceOp op) {
  byOp(op, [&](auto o) {
    combine<decltype(o)>(static_cast<T*>(dst), static_cast<const T*>(src), count);
  });
}

template <typename H>
void reduceHalf(void* dst, const void* src, size_t count, ReduceOp op) {
  byOp(op, [&](auto o) {
    combineHalf<decltype(o), H>(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src),
                                count);
  });
}

Error unknownDtype(const char* fn, DataType dtype) {
  return Error(ErrorCode::kInvalidArgument,
               strcat(fn, ": dtype ", static_cast<int>(dtype), " is not a known dtype; pass one",
                      " of 0..", kNumDataTypes - 1, " (float32 .. bfloat16, see common/dtype.h)"));
}

// data[i] /= divisor. Floats divide (not multiply by 1/divisor) so the result is correctly
// rounded; integers truncate toward zero, computed in `int` or wider so no narrow type wraps.
template <typename T>
void divideTyped(T* __restrict data, size_t count, int divisor) {
  if constexpr (std::is_floating_point_v<T>) {
    const T d = static_cast<T>(divisor);
    for (size_t i = 0; i < count; ++i) data[i] = data[i] / d;
  } else {
    for (size_t i = 0; i < count; ++i) data[i] = static_cast<T>(data[i] / divisor);
  }
}

template <typename H>
void divideHalf(uint16_t* __restrict data, size_t count, int divisor) {
  const float d = static_cast<float>(divisor);
  for (size_t i = 0; i < count; ++i) data[i] = H::store(H::load(data[i]) / d);
}

}  // namespace

void reduceInto(void* dst, const void* src, size_t count, DataType dtype, ReduceOp op) {
  switch (dtype) {
    case DataType::kFloat32: return reduceTyped<float>(dst, src, count, op);
    case DataType::kFloat64: return reduceTyped<double>(dst, src, count, op);
    case DataType::kInt32: return reduceTyped<int32_t>(dst, src, count, op);
    case DataType::kInt8: return reduceTyped<int8_t>(dst, src, count, op);
    case DataType::kUint8: return reduceTyped<uint8_t>(dst, src, count, op);
    case DataType::kFloat16: return reduceHalf<Fp16>(dst, src, count, op);
    case DataType::kBFloat16: return reduceHalf<Bf16>(dst, src, count, op);
  }
  throw unknownDtype("reduceInto", dtype);
}

void divideInPlace(void* data, size_t count, DataType dtype, int divisor) {
  if (divisor <= 0) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("divideInPlace: divisor ", divisor, " must be positive (it is the",
                       " number of ranks averaged)"));
  }
  switch (dtype) {
    case DataType::kFloat32: return divideTyped(static_cast<float*>(data), count, divisor);
    case DataType::kFloat64: return divideTyped(static_cast<double*>(data), count, divisor);
    case DataType::kInt32: return divideTyped(static_cast<int32_t*>(data), count, divisor);
    case DataType::kInt8: return divideTyped(static_cast<int8_t*>(data), count, divisor);
    case DataType::kUint8: return divideTyped(static_cast<uint8_t*>(data), count, divisor);
    case DataType::kFloat16:
      return divideHalf<Fp16>(static_cast<uint16_t*>(data), count, divisor);
    case DataType::kBFloat16:
      return divideHalf<Bf16>(static_cast<uint16_t*>(data), count, divisor);
  }
  throw unknownDtype("divideInPlace", dtype);
}

namespace {

template <typename H>
void widen(const uint16_t* __restrict src, float* __restrict dst, size_t count) {
  for (size_t i = 0; i < count; ++i) dst[i] = H::load(src[i]);
}

template <typename H>
void narrow(const float* __restrict src, uint16_t* __restrict dst, size_t count) {
  for (size_t i = 0; i < count; ++i) dst[i] = H::store(src[i]);
}

Error notHalf(const char* fn, DataType dtype) {
  return Error(ErrorCode::kInvalidArgument,
               strcat(fn, ": dtype ", dtypeName(dtype), " (", static_cast<int>(dtype),
                      ") is not a half type; pass float16 or bfloat16"));
}

}  // namespace

void toFloat32(const void* src, float* dst, size_t count, DataType halfType) {
  auto* s = static_cast<const uint16_t*>(src);
  if (halfType == DataType::kFloat16) return widen<Fp16>(s, dst, count);
  if (halfType == DataType::kBFloat16) return widen<Bf16>(s, dst, count);
  throw notHalf("toFloat32", halfType);
}

void fromFloat32(const float* src, void* dst, size_t count, DataType halfType) {
  auto* d = static_cast<uint16_t*>(dst);
  if (halfType == DataType::kFloat16) return narrow<Fp16>(src, d, count);
  if (halfType == DataType::kBFloat16) return narrow<Bf16>(src, d, count);
  throw notHalf("fromFloat32", halfType);
}

}  // namespace nodeccl
