// SPDX-License-Identifier: Apache-2.0
// Tests the reduction kernels (reduce/reduce.h) against a scalar reference computed in double
// or int64 for every dtype x op, plus NaN propagation, integer wraparound and half rounding.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/error.h"
#include "common/half.h"
#include "reduce/reduce.h"
#include "test/harness.h"
#include "test/typed.h"

using namespace nodeccl;
using namespace nodeccl_test;

namespace {

// ---- reference arithmetic -----------------------------------------------------------------

// Rounds a finite double to a binary floating-point format with `precision` significand bits,
// smallest normal exponent `emin` and largest finite value `maxFinite`, to nearest even.
// Independent of common/half.h: x / quantum is exact (a power-of-two scale), and nearbyint
// rounds to nearest even in the default rounding mode.
double roundToFormat(double x, int precision, int emin, double maxFinite) {
  if (x == 0 || std::isnan(x) || std::isinf(x)) return x;
  int e2;
  std::frexp(x, &e2);  // x = m * 2^e2, 0.5 <= |m| < 1, so the leading bit is 2^(e2-1)
  int e = e2 - 1 < emin ? emin : e2 - 1;
  double quantum = std::ldexp(1.0, e - (precision - 1));
  double r = std::nearbyint(x / quantum) * quantum;
  if (std::fabs(r) > maxFinite) return std::copysign(INFINITY, x);
  return r;
}

double roundFp16(double x) { return roundToFormat(x, 11, -14, 65504.0); }
double roundBf16(double x) {
  return roundToFormat(x, 8, -126, std::ldexp(255.0, 127 - 7));  // (2 - 2^-7) * 2^127
}

// Reference values are doubles for the float types and int64 for the integer types.
double refFloatOp(double a, double b, ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: return a + b;
    case ReduceOp::kProd: return a * b;
    case ReduceOp::kMin: return std::isnan(a) || std::isnan(b) ? NAN : (a < b ? a : b);
    case ReduceOp::kMax: return std::isnan(a) || std::isnan(b) ? NAN : (a > b ? a : b);
  }
  return NAN;
}

int64_t refIntOp(int64_t a, int64_t b, ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: return a + b;
    case ReduceOp::kProd: return a * b;  // |a|, |b| < 2^31: no int64 overflow
    case ReduceOp::kMin: return a < b ? a : b;
    case ReduceOp::kMax: return a > b ? a : b;
  }
  return 0;
}

// Rounds an exact double result to dtype `t` the way a correct kernel must.
double roundTo(double x, DataType t) {
  switch (t) {
    case DataType::kFloat32: return static_cast<float>(x);  // double rounding is exact here
    case DataType::kFloat16: return roundFp16(x);
    case DataType::kBFloat16: return roundBf16(x);
    default: return x;
  }
}

bool sameFloat(double got, double want) {
  if (std::isnan(want)) return std::isnan(got);
  return got == want;
}

// A deterministic pseudo-random stream (xorshift), so failures reproduce.
struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  int64_t range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
};

// Fills a buffer with values spread over the type's range: integers over the whole range
// (so sums and products wrap), floats with fractional parts (so half sums must round).
void fillRandom(Bytes& buf, size_t count, DataType t, Rng& rng) {
  buf.assign(count * dtypeSize(t), 0);
  for (size_t i = 0; i < count; ++i) {
    switch (t) {
      case DataType::kInt32: storeI(buf, i, t, static_cast<int32_t>(rng.next())); break;
      case DataType::kInt8: storeI(buf, i, t, rng.range(-128, 127)); break;
      case DataType::kUint8: storeI(buf, i, t, rng.range(0, 255)); break;
      default: {
        double v = static_cast<double>(rng.range(-100000, 100000)) / 1024.0;
        storeF(buf, i, t, roundTo(v, t));
      }
    }
  }
}

// Runs reduceInto on `count` random elements and checks each element against the reference.
void checkKernel(DataType t, ReduceOp op, size_t count, uint64_t seed) {
  Rng rng{seed};
  Bytes a, b;
  fillRandom(a, count, t, rng);
  fillRandom(b, count, t, rng);
  Bytes out = a;
  reduceInto(out.data(), b.data(), count, t, op);
  for (size_t i = 0; i < count; ++i) {
    if (isIntType(t)) {
      int64_t want = wrapTo(refIntOp(loadI(a, i, t), loadI(b, i, t), op), t);
      EXPECT_EQ(loadI(out, i, t), want);
    } else {
      // The exact result of one + or * of two float32 values fits in a double's 53 bits.
      double want = roundTo(refFloatOp(loadF(a, i, t), loadF(b, i, t), op), t);
      if (!sameFloat(loadF(out, i, t), want)) {
        nodeccl_test::fail(strcat(dtypeName(t), " ", reduceOpName(op), " element ", i, ": ",
                                  loadF(a, i, t), " op ", loadF(b, i, t), " gave ",
                                  loadF(out, i, t), ", expected ", want));
        return;
      }
    }
  }
}

}  // namespace

// ---- tests --------------------------------------------------------------------------------

NODECCL_TEST(reduce_every_dtype_and_op_matches_reference) {
  // 1003 elements: not a multiple of any vector width, so the remainder loops run too.
  for (DataType t : kAllTypes) {
    for (ReduceOp op : kAllOps) checkKernel(t, op, 1003, 0x9e3779b97f4a7c15ull + int(t));
  }
}

NODECCL_TEST(reduce_short_and_empty_counts) {
  for (DataType t : kAllTypes) {
    for (ReduceOp op : kAllOps) {
      for (size_t n : {size_t(0), size_t(1), size_t(3), size_t(17)}) checkKernel(t, op, n, 7 + n);
    }
  }
  // count 0 must not touch the (null) pointers.
  reduceInto(nullptr, nullptr, 0, DataType::kFloat32, ReduceOp::kSum);
}

NODECCL_TEST(reduce_nan_propagates_through_every_op) {
  for (DataType t : {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16,
                     DataType::kBFloat16}) {
    for (ReduceOp op : kAllOps) {
      // NaN on the left in element 0, on the right in element 1, both in element 2.
      Bytes a(3 * dtypeSize(t)), b(3 * dtypeSize(t));
      storeF(a, 0, t, NAN); storeF(b, 0, t, 1.0);
      storeF(a, 1, t, -2.0); storeF(b, 1, t, NAN);
      storeF(a, 2, t, NAN); storeF(b, 2, t, NAN);
      reduceInto(a.data(), b.data(), 3, t, op);
      for (size_t i = 0; i < 3; ++i) {
        if (!std::isnan(loadF(a, i, t))) {
          nodeccl_test::fail(strcat(dtypeName(t), " ", reduceOpName(op), " element ", i,
                                    " lost its NaN: got ", loadF(a, i, t)));
        }
      }
    }
  }
}

NODECCL_TEST(reduce_integer_sum_and_prod_wrap_around) {
  // int8: 127 + 1 = -128; -128 * -1 = -128 (128 wraps); uint8: 200 + 100 = 44; 16 * 16 = 0.
  int8_t s8[2] = {127, -128}, t8[2] = {1, -1};
  reduceInto(s8, t8, 1, DataType::kInt8, ReduceOp::kSum);
  reduceInto(s8 + 1, t8 + 1, 1, DataType::kInt8, ReduceOp::kProd);
  EXPECT_EQ(int(s8[0]), -128);
  EXPECT_EQ(int(s8[1]), -128);
  uint8_t u8[2] = {200, 16}, v8[2] = {100, 16};
  reduceInto(u8, v8, 1, DataType::kUint8, ReduceOp::kSum);
  reduceInto(u8 + 1, v8 + 1, 1, DataType::kUint8, ReduceOp::kProd);
  EXPECT_EQ(int(u8[0]), 44);
  EXPECT_EQ(int(u8[1]), 0);
  // int32: INT32_MAX + 1 = INT32_MIN; 65536 * 65536 = 2^32 = 0; 3 * INT32_MIN = INT32_MIN.
  int32_t s32[3] = {INT32_MAX, 65536, 3}, t32[3] = {1, 65536, INT32_MIN};
  reduceInto(s32, t32, 1, DataType::kInt32, ReduceOp::kSum);
  reduceInto(s32 + 1, t32 + 1, 2, DataType::kInt32, ReduceOp::kProd);
  EXPECT_EQ(s32[0], INT32_MIN);
  EXPECT_EQ(s32[1], 0);
  EXPECT_EQ(s32[2], INT32_MIN);
}

NODECCL_TEST(reduce_half_rounds_to_nearest_even) {
  // float16 near 2048 has a spacing of 2: 2048 + 1 = 2049 is a tie between 2048 (even
  // significand 1024) and 2050 (odd 1025), so it rounds to 2048; 2050 + 1 = 2051 ties between
  // 2050 and 2052 and rounds to 2052. 65504 + 16 = 65520 ties between 65504 and 65536 (inf
  // in float16), so it rounds to inf.
  uint16_t a[3] = {floatToHalf(2048), floatToHalf(2050), floatToHalf(65504)};
  uint16_t b[3] = {floatToHalf(1), floatToHalf(1), floatToHalf(16)};
  reduceInto(a, b, 3, DataType::kFloat16, ReduceOp::kSum);
  EXPECT_EQ(halfToFloat(a[0]), 2048.0f);
  EXPECT_EQ(halfToFloat(a[1]), 2052.0f);
  EXPECT_TRUE(std::isinf(halfToFloat(a[2])));
  // bfloat16 near 256 has a spacing of 2: 256 + 1 -> 256, 258 + 1 -> 260.
  uint16_t c[2] = {floatToBf16(256), floatToBf16(258)};
  uint16_t d[2] = {floatToBf16(1), floatToBf16(1)};
  reduceInto(c, d, 2, DataType::kBFloat16, ReduceOp::kSum);
  EXPECT_EQ(bf16ToFloat(c[0]), 256.0f);
  EXPECT_EQ(bf16ToFloat(c[1]), 260.0f);
}

NODECCL_TEST(reduce_half_conversions_match_reference_rounding) {
  // Every float16 / bfloat16 bit pattern survives a round trip through float32, and floats
  // between them round to the reference's nearest even.
  for (uint32_t h = 0; h < 65536; ++h) {
    uint16_t x = static_cast<uint16_t>(h);
    float f16 = halfToFloat(x), fb = bf16ToFloat(x);
    if (!std::isnan(f16)) EXPECT_EQ(floatToHalf(f16), x);
    if (!std::isnan(fb)) EXPECT_EQ(floatToBf16(fb), x);
  }
  Rng rng{12345};
  for (int i = 0; i < 200000; ++i) {
    float f = bitsFloat(static_cast<uint32_t>(rng.next()));
    if (std::isnan(f)) continue;
    EXPECT_TRUE(sameFloat(halfToFloat(floatToHalf(f)), roundFp16(f)));
    EXPECT_TRUE(sameFloat(bf16ToFloat(floatToBf16(f)), roundBf16(f)));
  }
  std::vector<float> wide(3);
  uint16_t in[3] = {floatToHalf(1.5f), floatToHalf(-0.0f), 0x7e00};
  uint16_t back[3];
  toFloat32(in, wide.data(), 3, DataType::kFloat16);
  fromFloat32(wide.data(), back, 3, DataType::kFloat16);
  EXPECT_EQ(wide[0], 1.5f);
  EXPECT_TRUE(std::signbit(wide[1]));
  EXPECT_TRUE(std::isnan(wide[2]));
  EXPECT_EQ(back[0], in[0]);
  EXPECT_EQ(back[1], in[1]);
  EXPECT_EQ(back[2], in[2]);
}

NODECCL_TEST(reduce_divide_truncates_integers_and_rounds_floats) {
  // Integers truncate toward zero: -7 / 2 = -3, 7 / 2 = 3; uint8 255 / 4 = 63.
  int32_t i32[2] = {-7, 7};
  divideInPlace(i32, 2, DataType::kInt32, 2);
  EXPECT_EQ(i32[0], -3);
  EXPECT_EQ(i32[1], 3);
  int8_t i8[2] = {-128, 127};
  divideInPlace(i8, 2, DataType::kInt8, 3);
  EXPECT_EQ(int(i8[0]), -42);
  EXPECT_EQ(int(i8[1]), 42);
  uint8_t u8 = 255;
  divideInPlace(&u8, 1, DataType::kUint8, 4);
  EXPECT_EQ(int(u8), 63);
  // Floats: 1 / 3 is the correctly rounded quotient, not 1 * (1/3).
  float f = 1.0f;
  double d = 1.0;
  divideInPlace(&f, 1, DataType::kFloat32, 3);
  divideInPlace(&d, 1, DataType::kFloat64, 3);
  EXPECT_EQ(f, 1.0f / 3.0f);
  EXPECT_EQ(d, 1.0 / 3.0);
  // float16 7 / 3 = 2.3333.. lies between 1194 and 1195 steps of 2^-9 (the spacing in [2, 4)),
  // at 1194.67: it rounds to 1195 * 2^-9 = 2.333984375.
  uint16_t h = floatToHalf(7.0f);
  divideInPlace(&h, 1, DataType::kFloat16, 3);
  EXPECT_EQ(halfToFloat(h), 2.333984375f);
}

NODECCL_TEST(reduce_rejects_unknown_dtype_and_bad_divisor) {
  const ErrorCode code = ErrorCode::kInvalidArgument;
  float x = 1;
  EXPECT_THROWS_CODE(reduceInto(&x, &x, 1, static_cast<DataType>(9), ReduceOp::kSum), code,
                     "dtype 9");
  EXPECT_THROWS_CODE(reduceInto(&x, &x, 1, DataType::kFloat32, static_cast<ReduceOp>(7)), code,
                     "reduce op 7");
  EXPECT_THROWS_CODE(divideInPlace(&x, 1, DataType::kFloat32, 0), code, "divisor 0");
  EXPECT_THROWS_CODE(toFloat32(&x, &x, 1, DataType::kFloat32), code, "not a half type");
}
