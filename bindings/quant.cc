// SPDX-License-Identifier: Apache-2.0
// Binding of the gradient codecs (cpp/quant): synchronous encode/decode of Float32Arrays into
// Uint8Arrays, with and without error feedback. A codec pass streams memory at GB/s, far below
// a thread hop's cost for the sizes a step sends, so nothing here is asynchronous.
//
// Exports (typed in lib/native.ts, NativeQuant):
//   codecEncodedBytes(codec, n) -> number
//   codecEncode(codec, src: Float32Array, dst: Uint8Array)
//   codecDecode(codec, src: Uint8Array, dst: Float32Array, accumulate: boolean)
//   codecEncodeWithFeedback(codec, grad: Float32Array, residual: Float64Array, dst: Uint8Array,
//                           scratch: Float32Array /* 2n */)
//   dynamicMap(signed: boolean) -> Float32Array (the 8-bit optimizer state's value table)
// codec = { kind: 'float16'|'bfloat16'|'int8'|'int4'|'sign1'|'topk'|'randomk', blockSize,
// ratio, seed }, all present (lib/quant.ts fills defaults). Wrong types throw TypeError, wrong
// sizes or values RangeError, code ERR_NODECCL_INVALID_ARGUMENT, before anything is written.
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"
#include "modules.h"
#include "quant/codec.h"
#include "quant/dynamic_map.h"
#include "util.h"

namespace nodeccl_binding {

namespace {

using nodeccl::ErrorCode;
using nodeccl::strcat;
namespace quant = nodeccl::quant;

[[noreturn]] void throwType(Napi::Env env, const std::string& msg) {
  throw makeError(env, ErrorCode::kInvalidArgument, msg);
}

double readNumber(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throwType(o.Env(), strcat("codec.", key, " must be a number"));
  return v.As<Napi::Number>().DoubleValue();
}

quant::Codec readCodec(const Napi::Value& v) {
  Napi::Env env = v.Env();
  if (!v.IsObject()) throwType(env, "codec must be an object such as { kind: 'int8' }");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value kind = o.Get("kind");
  std::string name = kind.IsString() ? kind.As<Napi::String>().Utf8Value() : "";
  quant::Codec c;
  bool found = false;
  for (int k = 0; k <= static_cast<int>(quant::CodecKind::kRandomK); ++k) {
    if (name == quant::codecName(static_cast<quant::CodecKind>(k))) {
      c.kind = static_cast<quant::CodecKind>(k);
      found = true;
    }
  }
  if (!found) {
    throwType(env, strcat("codec.kind must be one of float16, bfloat16, int8, int4, sign1, topk, "
                          "randomk; got '", name, "'"));
  }
  double block = readNumber(o, "blockSize"), seed = readNumber(o, "seed");
  if (!(block >= 0 && block <= 1e15 && std::floor(block) == block)) {
    throw makeRangeError(env, strcat("codec.blockSize must be a whole number >= 0, got ", block));
  }
  if (!(seed >= 0 && seed <= 9007199254740991.0 && std::floor(seed) == seed)) {
    throw makeRangeError(env, strcat("codec.seed must be a whole number in [0, 2^53), got ",
                                     seed));
  }
  c.blockSize = static_cast<size_t>(block);
  c.ratio = readNumber(o, "ratio");
  c.seed = static_cast<uint64_t>(seed);
  try {
    quant::validate(c);
  } catch (const nodeccl::Error& e) {
    throw makeRangeError(env, e.what());
  }
  return c;
}

ByteView requireType(const Napi::Value& v, const char* what, napi_typedarray_type want,
                     const char* typeName) {
  ByteView view = typedArrayView(v, what);
  if (view.type != want) throwType(v.Env(), strcat(what, " must be a ", typeName));
  return view;
}

template <typename Fn>
void callCore(Napi::Env env, Fn fn) {
  try {
    fn();
  } catch (const nodeccl::Error& e) {
    if (e.code() == ErrorCode::kInvalidArgument) throw makeRangeError(env, e.what());
    throw makeError(env, e);
  }
}

Napi::Value EncodedBytes(const Napi::CallbackInfo& info) {
  quant::Codec c = readCodec(info[0]);
  double n = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
  if (!(n >= 0 && std::floor(n) == n)) {
    throw makeRangeError(info.Env(), "codecEncodedBytes: n must be a whole number >= 0");
  }
  return Napi::Number::New(info.Env(),
                           static_cast<double>(quant::encodedBytes(c, static_cast<size_t>(n))));
}

void Encode(const Napi::CallbackInfo& info) {
  quant::Codec c = readCodec(info[0]);
  ByteView src = requireType(info[1], "codecEncode: src", napi_float32_array, "Float32Array");
  ByteView dst = requireType(info[2], "codecEncode: dst", napi_uint8_array, "Uint8Array");
  callCore(info.Env(), [&] {
    quant::encode(c, static_cast<const float*>(src.data), src.length,
                  static_cast<uint8_t*>(dst.data), dst.bytes);
  });
}

void Decode(const Napi::CallbackInfo& info) {
  quant::Codec c = readCodec(info[0]);
  ByteView src = requireType(info[1], "codecDecode: src", napi_uint8_array, "Uint8Array");
  ByteView dst = requireType(info[2], "codecDecode: dst", napi_float32_array, "Float32Array");
  if (!info[3].IsBoolean()) throwType(info.Env(), "codecDecode: accumulate must be a boolean");
  bool accumulate = info[3].As<Napi::Boolean>().Value();
  callCore(info.Env(), [&] {
    quant::decode(c, static_cast<const uint8_t*>(src.data), src.bytes,
                  static_cast<float*>(dst.data), dst.length, accumulate);
  });
}

void EncodeWithFeedback(const Napi::CallbackInfo& info) {
  const char* who = "codecEncodeWithFeedback";
  quant::Codec c = readCodec(info[0]);
  ByteView g = requireType(info[1], "codecEncodeWithFeedback: grad", napi_float32_array,
                           "Float32Array");
  ByteView r = requireType(info[2], "codecEncodeWithFeedback: residual", napi_float64_array,
                           "Float64Array");
  ByteView dst = requireType(info[3], "codecEncodeWithFeedback: dst", napi_uint8_array,
                             "Uint8Array");
  ByteView scratch = requireType(info[4], "codecEncodeWithFeedback: scratch",
                                 napi_float32_array, "Float32Array");
  if (r.length != g.length || scratch.length < 2 * g.length) {
    throw makeRangeError(info.Env(), strcat(who, ": grad has ", g.length, " elements, residual ",
                                            r.length, " (must match) and scratch ",
                                            scratch.length, " (needs at least ", 2 * g.length,
                                            ")"));
  }
  callCore(info.Env(), [&] {
    quant::encodeWithFeedback(c, static_cast<const float*>(g.data), static_cast<double*>(r.data),
                              g.length, static_cast<uint8_t*>(dst.data), dst.bytes,
                              static_cast<float*>(scratch.data));
  });
}

Napi::Value DynamicMap(const Napi::CallbackInfo& info) {
  bool isSigned = info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
  const quant::DynamicMap& d = isSigned ? quant::signedMagnitudes() : quant::unsignedMagnitudes();
  Napi::Float32Array out = Napi::Float32Array::New(info.Env(), d.size);
  std::memcpy(out.Data(), d.value, d.size * sizeof(float));
  return out;
}

}  // namespace

void InitQuant(Napi::Env env, Napi::Object exports) {
  exports.Set("codecEncodedBytes", Napi::Function::New(env, EncodedBytes, "codecEncodedBytes"));
  exports.Set("codecEncode", Napi::Function::New(env, Encode, "codecEncode"));
  exports.Set("codecDecode", Napi::Function::New(env, Decode, "codecDecode"));
  exports.Set("codecEncodeWithFeedback",
              Napi::Function::New(env, EncodeWithFeedback, "codecEncodeWithFeedback"));
  exports.Set("dynamicMap", Napi::Function::New(env, DynamicMap, "dynamicMap"));
}

}  // namespace nodeccl_binding
