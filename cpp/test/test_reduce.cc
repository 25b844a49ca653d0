// SPDX-License-Identifier: Apache-2.0
// Tests the reduction kernels (reduce/reduce.h) against a scalar reference computed in double
// or int64 for every dtype x op, plus NaN propagation, integer wraparound and half rounding,
// under every SIMD variant this CPU runs; then checks the variants agree bit for bit.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iterator>
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

// Runs `body` once per SIMD level this CPU supports, forcing it with setSimdLevel, then
// restores the level that was active (the rest of the test binary uses that one).
template <typename Fn>
void forEachSimdLevel(Fn&& body) {
  const SimdLevel before = activeSimdLevel();
  for (int l = 0; l < kNumSimdLevels; ++l) {
    const SimdLevel level = static_cast<SimdLevel>(l);
    if (!simdLevelSupported(level)) continue;
    setSimdLevel(level);
    body(level);
  }
  setSimdLevel(before);
}

// Bits of float `t` with special values mixed in: NaN, +-inf, +-0, subnormals of the type and
// of float32 (bfloat16's subnormals are float32's), the largest finite values, and values
// whose sums and products overflow or round to ties.
void fillSpecial(Bytes& buf, size_t count, DataType t, Rng& rng) {
  fillRandom(buf, count, t, rng);
  const double specials[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 5.9604644775390625e-8,
                             -6.0975551605224609e-5, 1e-40, -1.17549435e-38, 65504.0,
                             3.3895313892515355e38, 2049.0, 0.5, -1.0};
  for (size_t i = 0; i < count; ++i) {
    if (rng.next() % 3 == 0) storeF(buf, i, t, specials[rng.next() % std::size(specials)]);
  }
}

// NaN bit patterns may differ between variants (the payload an instruction keeps is not
// specified by the reference); everything else must match bit for bit.
bool sameBits(const Bytes& x, const Bytes& y, size_t i, DataType t) {
  if (!isIntType(t) && std::isnan(loadF(x, i, t))) return std::isnan(loadF(y, i, t));
  const size_t e = dtypeSize(t);
  return std::memcmp(x.data() + i * e, y.data() + i * e, e) == 0;
}

// One operation, run under every level; each result must equal the scalar level's.
template <typename Fn>
void expectSameAcrossLevels(const char* what, DataType t, size_t count, Fn&& run) {
  Bytes want;
  forEachSimdLevel([&](SimdLevel level) {
    Bytes got = run();
    if (level == SimdLevel::kScalar) {
      want = got;
      return;
    }
    for (size_t i = 0; i < count; ++i) {
      if (!sameBits(got, want, i, t)) {
        nodeccl_test::fail(strcat(what, " ", dtypeName(t), " element ", i, " of ", count,
                                  " under ", simdLevelName(level), ": got ", loadAny(got, i, t),
                                  ", scalar gave ", loadAny(want, i, t)));
        return;
      }
    }
  });
}

}  // namespace

// ---- tests --------------------------------------------------------------------------------

NODECCL_TEST(reduce_every_dtype_and_op_matches_reference) {
  // 1003 elements: not a multiple of any vector width, so the remainder loops run too.
  forEachSimdLevel([](SimdLevel) {
    for (DataType t : kAllTypes) {
      for (ReduceOp op : kAllOps) checkKernel(t, op, 1003, 0x9e3779b97f4a7c15ull + int(t));
    }
  });
}

NODECCL_TEST(reduce_short_and_empty_counts) {
  // Every count below two 512-bit vectors of bytes, so each tail length runs in every variant.
  forEachSimdLevel([](SimdLevel) {
    for (DataType t : kAllTypes) {
      for (ReduceOp op : kAllOps) {
        for (size_t n = 0; n <= 130; n += (n < 34 ? 1 : 32)) checkKernel(t, op, n, 7 + n);
      }
    }
  });
  // count 0 must not touch the (null) pointers.
  reduceInto(nullptr, nullptr, 0, DataType::kFloat32, ReduceOp::kSum);
}

NODECCL_TEST(reduce_nan_propagates_through_every_op) {
  // 3 x 37 elements, so the NaNs land in full vectors and in the tail of every variant:
  // NaN on the left in element i % 3 == 0, on the right in 1, both in 2.
  const size_t n = 111;
  forEachSimdLevel([&](SimdLevel level) {
    for (DataType t : {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16,
                       DataType::kBFloat16}) {
      for (ReduceOp op : kAllOps) {
        Bytes a(n * dtypeSize(t)), b(n * dtypeSize(t));
        for (size_t i = 0; i < n; ++i) {
          storeF(a, i, t, i % 3 == 1 ? -2.0 : NAN);
          storeF(b, i, t, i % 3 == 0 ? 1.0 : NAN);
        }
        Bytes c(a.size());
        reduceTo(c.data(), a.data(), b.data(), n, t, op);
        reduceInto(a.data(), b.data(), n, t, op);
        for (size_t i = 0; i < n; ++i) {
          if (!std::isnan(loadF(a, i, t)) || !std::isnan(loadF(c, i, t))) {
            nodeccl_test::fail(strcat(simdLevelName(level), " ", dtypeName(t), " ",
                                      reduceOpName(op), " element ", i, " lost its NaN: got ",
                                      loadF(a, i, t), " in place, ", loadF(c, i, t), " fused"));
            return;
          }
        }
      }
    }
  });
}

NODECCL_TEST(reduce_variants_agree_bitwise_on_special_values) {
  // reduceInto, reduceTo, divideInPlace and the half conversions on data full of NaN, inf,
  // signed zeros, subnormals and overflowing values: every variant must match the scalar one.
  const size_t n = 1031;  // prime: every variant ends on a partial vector
  for (DataType t : kAllTypes) {
    Rng rng{0xabcdefull + static_cast<unsigned>(t)};
    Bytes a, b;
    if (isIntType(t)) {
      fillRandom(a, n, t, rng);
      fillRandom(b, n, t, rng);
    } else {
      fillSpecial(a, n, t, rng);
      fillSpecial(b, n, t, rng);
    }
    for (ReduceOp op : kAllOps) {
      std::string what = strcat("reduceInto ", reduceOpName(op));
      expectSameAcrossLevels(what.c_str(), t, n, [&] {
        Bytes out = a;
        reduceInto(out.data(), b.data(), n, t, op);
        return out;
      });
      what = strcat("reduceTo ", reduceOpName(op));
      expectSameAcrossLevels(what.c_str(), t, n, [&] {
        Bytes out(a.size());
        reduceTo(out.data(), a.data(), b.data(), n, t, op);
        return out;
      });
    }
    for (int divisor : {1, 3, 7}) {
      expectSameAcrossLevels("divideInPlace", t, n, [&] {
        Bytes out = a;
        divideInPlace(out.data(), n, t, divisor);
        return out;
      });
    }
  }
}

NODECCL_TEST(reduce_variants_agree_on_every_half_and_random_floats) {
  // Widening: all 65536 bit patterns of each half type. Narrowing: 100003 random float32 bit
  // patterns (all exponents, so subnormal, overflowing and NaN inputs included).
  for (DataType t : {DataType::kFloat16, DataType::kBFloat16}) {
    std::vector<uint16_t> halves(65536);
    for (uint32_t h = 0; h < 65536; ++h) halves[h] = static_cast<uint16_t>(h);
    expectSameAcrossLevels("toFloat32", DataType::kFloat32, halves.size(), [&] {
      Bytes out(halves.size() * 4);
      toFloat32(halves.data(), reinterpret_cast<float*>(out.data()), halves.size(), t);
      return out;
    });
    Rng rng{99u + static_cast<unsigned>(t)};
    std::vector<float> floats(100003);
    for (float& f : floats) f = bitsFloat(static_cast<uint32_t>(rng.next()));
    expectSameAcrossLevels("fromFloat32", t, floats.size(), [&] {
      Bytes out(floats.size() * 2);
      fromFloat32(floats.data(), out.data(), floats.size(), t);
      return out;
    });
  }
}

NODECCL_TEST(reduce_to_accepts_dst_equal_a_and_rejects_overlap) {
  // dst == a is reduceInto: 1 + 10, 2 + 20, 3 + 30.
  float a[4] = {1, 2, 3, 0}, b[3] = {10, 20, 30};
  reduceTo(a, a, b, 3, DataType::kFloat32, ReduceOp::kSum);
  EXPECT_EQ(a[0], 11.0f);
  EXPECT_EQ(a[1], 22.0f);
  EXPECT_EQ(a[2], 33.0f);
  // dst one element past a still overlaps two of its three elements.
  EXPECT_THROWS_CODE(reduceTo(a + 1, a, b, 3, DataType::kFloat32, ReduceOp::kSum),
                     ErrorCode::kInvalidArgument, "overlaps");
  EXPECT_THROWS_CODE(reduceTo(b, a, b, 3, DataType::kFloat32, ReduceOp::kSum),
                     ErrorCode::kInvalidArgument, "overlaps");
}

NODECCL_TEST(reduce_simd_levels_are_named_and_scalar_always_runs) {
  EXPECT_TRUE(simdLevelSupported(SimdLevel::kScalar));
  EXPECT_EQ(std::string(simdLevelName(SimdLevel::kScalar)), "scalar");
  EXPECT_EQ(std::string(simdLevelName(SimdLevel::kAvx2)), "avx2");
  EXPECT_EQ(std::string(simdLevelName(SimdLevel::kAvx512)), "avx512");
  // Without NODECCL_SIMD the active level is the best this CPU supports.
  if (std::getenv("NODECCL_SIMD") == nullptr) {
    int best = 0;
    for (int l = 0; l < kNumSimdLevels; ++l) {
      if (simdLevelSupported(static_cast<SimdLevel>(l))) best = l;
    }
    EXPECT_EQ(static_cast<int>(activeSimdLevel()), best);
  }
  for (int l = 0; l < kNumSimdLevels; ++l) {
    if (simdLevelSupported(static_cast<SimdLevel>(l))) continue;
    EXPECT_THROWS_CODE(setSimdLevel(static_cast<SimdLevel>(l)), ErrorCode::kInvalidArgument,
                       "cannot run on this CPU");
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
  forEachSimdLevel([](SimdLevel) {
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
  });
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
  forEachSimdLevel([](SimdLevel) {
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
  });
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
