// SPDX-License-Identifier: Apache-2.0
// Tensor helpers for lib/tensor.ts: float16 and bfloat16 conversion of whole arrays (synchronous:
// a few hundred ns per kilo-element, far below the cost of a thread hop), and the core's dtype
// and reduce-op tables so a test can pin lib/dtype.ts to cpp/common/dtype.h.
#include <cmath>
#include <cstdint>
#include <string>

#include "common/dtype.h"
#include "common/half.h"
#include "modules.h"
#include "util.h"

namespace nodeccl_binding {
namespace {

using nodeccl::ErrorCode;

const char* typedArrayName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

// Rounds a double to float32 with "round to odd": truncate, then set the last bit if anything
// was dropped. A second rounding to a format at least 2 bits narrower (binary16 keeps 11 bits,
// bfloat16 8, float32 24) then gives the correctly rounded result; plain round-to-nearest
// here would round twice and could land on the wrong neighbour at a near-tie.
float doubleToFloatRoundToOdd(double d) {
  float f = static_cast<float>(d);
  if (std::isnan(d) || static_cast<double>(f) == d) return f;
  uint32_t u = nodeccl::floatBits(f);
  // |f| > |d| means it rounded away from zero: step one ulp back (the sign bit is untouched).
  if (std::fabs(static_cast<double>(f)) > std::fabs(d)) u -= 1;
  return nodeccl::bitsFloat(u | 1u);
}

// The typed-array arguments of one conversion, checked: types, equal lengths, no overlap.
struct Conversion {
  ByteView src;
  ByteView dst;
};

Conversion checkConversion(const Napi::CallbackInfo& info, const char* fn, bool srcIsFloat) {
  Napi::Env env = info.Env();
  if (info.Length() != 2) {
    throw makeError(env, ErrorCode::kInvalidArgument,
                    std::string(fn) + "(src, dst) takes 2 arguments, got " +
                        std::to_string(info.Length()));
  }
  std::string srcWhat = std::string(fn) + "(): src";
  std::string dstWhat = std::string(fn) + "(): dst";
  Conversion c{typedArrayView(info[0], srcWhat.c_str()), typedArrayView(info[1], dstWhat.c_str())};

  const bool srcOk = srcIsFloat ? (c.src.type == napi_float32_array ||
                                   c.src.type == napi_float64_array)
                                : c.src.type == napi_uint16_array;
  const napi_typedarray_type dstType = srcIsFloat ? napi_uint16_array : napi_float32_array;
  if (!srcOk) {
    throw makeError(env, ErrorCode::kInvalidArgument,
                    srcWhat + " must be a " +
                        (srcIsFloat ? "Float32Array or Float64Array" : "Uint16Array") +
                        ", got " + typedArrayName(c.src.type));
  }
  if (c.dst.type != dstType) {
    throw makeError(env, ErrorCode::kInvalidArgument,
                    dstWhat + " must be a " + typedArrayName(dstType) + ", got " +
                        typedArrayName(c.dst.type));
  }
  if (c.src.length != c.dst.length) {
    throw makeRangeError(env, std::string(fn) + "(): src has " + std::to_string(c.src.length) +
                                  " elements but dst has " + std::to_string(c.dst.length) +
                                  "; pass arrays of the same length");
  }
  // Converting in place would overwrite elements not yet read (the element sizes differ).
  auto* s = static_cast<uint8_t*>(c.src.data);
  auto* d = static_cast<uint8_t*>(c.dst.data);
  if (c.src.bytes > 0 && c.dst.bytes > 0 && s < d + c.dst.bytes && d < s + c.src.bytes) {
    throw makeRangeError(env, std::string(fn) +
                                  "(): src and dst share memory; pass a separate dst array");
  }
  return c;
}

// Rounds each float (or double, via round-to-odd) with `round`.
template <uint16_t (*Round)(float)>
void roundFloats(const Conversion& c) {
  auto* out = static_cast<uint16_t*>(c.dst.data);
  if (c.src.type == napi_float32_array) {
    const auto* in = static_cast<const float*>(c.src.data);
    for (size_t i = 0; i < c.src.length; i++) out[i] = Round(in[i]);
  } else {
    const auto* in = static_cast<const double*>(c.src.data);
    for (size_t i = 0; i < c.src.length; i++) out[i] = Round(doubleToFloatRoundToOdd(in[i]));
  }
}

template <float (*Widen)(uint16_t)>
void widenHalves(const Conversion& c) {
  const auto* in = static_cast<const uint16_t*>(c.src.data);
  auto* out = static_cast<float*>(c.dst.data);
  for (size_t i = 0; i < c.src.length; i++) out[i] = Widen(in[i]);
}

Napi::Value FloatToHalf(const Napi::CallbackInfo& info) {
  roundFloats<nodeccl::floatToHalf>(checkConversion(info, "floatToHalf", true));
  return info.Env().Undefined();
}

Napi::Value FloatToBFloat16(const Napi::CallbackInfo& info) {
  roundFloats<nodeccl::floatToBf16>(checkConversion(info, "floatToBFloat16", true));
  return info.Env().Undefined();
}

Napi::Value HalfToFloat(const Napi::CallbackInfo& info) {
  widenHalves<nodeccl::halfToFloat>(checkConversion(info, "halfToFloat", false));
  return info.Env().Undefined();
}

Napi::Value BFloat16ToFloat(const Napi::CallbackInfo& info) {
  widenHalves<nodeccl::bf16ToFloat>(checkConversion(info, "bfloat16ToFloat", false));
  return info.Env().Undefined();
}

// { float32: { code: 0, size: 4 }, ... } straight from the core's enum.
Napi::Object DTypeTable(Napi::Env env) {
  Napi::Object table = Napi::Object::New(env);
  for (int i = 0; i < nodeccl::kNumDataTypes; i++) {
    auto t = static_cast<nodeccl::DataType>(i);
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("code", Napi::Number::New(env, i));
    entry.Set("size", Napi::Number::New(env, static_cast<double>(nodeccl::dtypeSize(t))));
    table.Set(nodeccl::dtypeName(t), entry);
  }
  return table;
}

Napi::Object ReduceOpTable(Napi::Env env) {
  Napi::Object table = Napi::Object::New(env);
  for (int i = 0; i < nodeccl::kNumReduceOps; i++) {
    table.Set(nodeccl::reduceOpName(static_cast<nodeccl::ReduceOp>(i)), Napi::Number::New(env, i));
  }
  return table;
}

}  // namespace

void InitTensor(Napi::Env env, Napi::Object exports) {
  exports.Set("floatToHalf", Napi::Function::New(env, FloatToHalf, "floatToHalf"));
  exports.Set("halfToFloat", Napi::Function::New(env, HalfToFloat, "halfToFloat"));
  exports.Set("floatToBFloat16", Napi::Function::New(env, FloatToBFloat16, "floatToBFloat16"));
  exports.Set("bfloat16ToFloat", Napi::Function::New(env, BFloat16ToFloat, "bfloat16ToFloat"));
  exports.Set("dtypeTable", DTypeTable(env));
  exports.Set("reduceOpTable", ReduceOpTable(env));
}

}  // namespace nodeccl_binding
