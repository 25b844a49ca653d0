// SPDX-License-Identifier: Apache-2.0
// The portable kernels as templates, compiled once per SIMD variant: reduce_scalar.cc includes
// this file as is; reduce_avx2.cc and reduce_avx512.cc include it under `#pragma GCC target`,
// so the same loops are vectorized for their instruction set. Identical source means identical
// IEEE operations per element, hence bitwise-identical results across variants.
//
// Include only inside an anonymous namespace in namespace nodeccl, after <cstdint>,
// <type_traits>, "common/half.h" and "reduce/kernels.h": it includes nothing itself, so no
// shared header is ever compiled under another target (that would break the "runs on any
// x86-64" promise through inline functions the linker may pick from this object).
//
// Each kernel is a plain indexed loop over restrict pointers, instantiated per type and
// operator, so the compiler vectorizes it without a per-element switch. Cost: one pass over
// the operands (reads 2 x count, writes count elements).

// Integer sum and product wrap around modulo 2^bits (two's complement), as in torch and NCCL.
// Signed overflow is undefined in C++, so both are computed in unsigned arithmetic; types
// narrower than `unsigned` are widened to `unsigned` first.
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

// Half types: widen both operands to float32, apply, round back (once per call).
struct Fp16 {
  static float load(uint16_t h) { return halfToFloat(h); }
  static uint16_t store(float f) { return floatToHalf(f); }
};
struct Bf16 {
  static float load(uint16_t h) { return bf16ToFloat(h); }
  static uint16_t store(float f) { return floatToBf16(f); }
};

// Element access: plain types are themselves; half types (stored as uint16_t) go through H.
template <typename T>
struct Plain {
  using Storage = T;
  static T load(T v) { return v; }
  static T store(T v) { return v; }
};

template <typename Op, typename E>
void combineInto(void* dstv, const void* srcv, size_t count) {
  using S = typename E::Storage;
  S* __restrict dst = static_cast<S*>(dstv);
  const S* __restrict src = static_cast<const S*>(srcv);
  for (size_t i = 0; i < count; ++i) {
    dst[i] = E::store(Op::apply(E::load(dst[i]), E::load(src[i])));
  }
}

template <typename Op, typename E>
void combineTo(void* dstv, const void* av, const void* bv, size_t count) {
  using S = typename E::Storage;
  S* __restrict dst = static_cast<S*>(dstv);
  const S* __restrict a = static_cast<const S*>(av);
  const S* __restrict b = static_cast<const S*>(bv);
  for (size_t i = 0; i < count; ++i) dst[i] = E::store(Op::apply(E::load(a[i]), E::load(b[i])));
}

template <typename H>
struct Half {
  using Storage = uint16_t;
  static float load(uint16_t h) { return H::load(h); }
  static uint16_t store(float f) { return H::store(f); }
};

// data[i] /= divisor. Floats divide (not multiply by 1/divisor) so the result is correctly
// rounded; integers truncate toward zero, computed in `int` or wider so no narrow type wraps.
template <typename E>
void divideGeneric(void* datav, size_t count, int divisor) {
  using S = typename E::Storage;
  S* __restrict data = static_cast<S*>(datav);
  using V = decltype(E::load(S{}));
  if constexpr (std::is_floating_point_v<V>) {
    const V d = static_cast<V>(divisor);
    for (size_t i = 0; i < count; ++i) data[i] = E::store(E::load(data[i]) / d);
  } else {
    for (size_t i = 0; i < count; ++i) data[i] = static_cast<S>(data[i] / divisor);
  }
}

template <typename H>
void widenGeneric(const uint16_t* __restrict src, float* __restrict dst, size_t count) {
  for (size_t i = 0; i < count; ++i) dst[i] = H::load(src[i]);
}

template <typename H>
void narrowGeneric(const float* __restrict src, uint16_t* __restrict dst, size_t count) {
  for (size_t i = 0; i < count; ++i) dst[i] = H::store(src[i]);
}

// Fills one dtype's row of the table with the generic kernels for element access E.
template <typename E>
void fillRow(KernelTable& t, DataType dtype) {
  const int d = static_cast<int>(dtype);
  t.into[d][static_cast<int>(ReduceOp::kSum)] = combineInto<SumOp, E>;
  t.into[d][static_cast<int>(ReduceOp::kProd)] = combineInto<ProdOp, E>;
  t.into[d][static_cast<int>(ReduceOp::kMin)] = combineInto<MinOp, E>;
  t.into[d][static_cast<int>(ReduceOp::kMax)] = combineInto<MaxOp, E>;
  t.into[d][static_cast<int>(ReduceOp::kAvg)] = combineInto<SumOp, E>;  // divide afterwards
  t.to[d][static_cast<int>(ReduceOp::kSum)] = combineTo<SumOp, E>;
  t.to[d][static_cast<int>(ReduceOp::kProd)] = combineTo<ProdOp, E>;
  t.to[d][static_cast<int>(ReduceOp::kMin)] = combineTo<MinOp, E>;
  t.to[d][static_cast<int>(ReduceOp::kMax)] = combineTo<MaxOp, E>;
  t.to[d][static_cast<int>(ReduceOp::kAvg)] = combineTo<SumOp, E>;
  t.divide[d] = divideGeneric<E>;
}

// The whole table from the generic kernels; SIMD variants then replace the entries they
// hand-write (float16 through F16C).
KernelTable genericTable() {
  KernelTable t{};
  fillRow<Plain<float>>(t, DataType::kFloat32);
  fillRow<Plain<double>>(t, DataType::kFloat64);
  fillRow<Plain<int32_t>>(t, DataType::kInt32);
  fillRow<Plain<int8_t>>(t, DataType::kInt8);
  fillRow<Plain<uint8_t>>(t, DataType::kUint8);
  fillRow<Half<Fp16>>(t, DataType::kFloat16);
  fillRow<Half<Bf16>>(t, DataType::kBFloat16);
  t.widen[0] = widenGeneric<Fp16>;
  t.widen[1] = widenGeneric<Bf16>;
  t.narrow[0] = narrowGeneric<Fp16>;
  t.narrow[1] = narrowGeneric<Bf16>;
  return t;
}
