// SPDX-License-Identifier: Apache-2.0
// Binding of the fused optimizers (cpp/optim): synchronous functions that check their
// arguments, gather the Float32Array pointers of a whole parameter list and run one fused step
// on the calling thread. A step touches local memory for microseconds to milliseconds, far less
// than a thread hop costs, so nothing here is asynchronous.
//
// Exports (typed in lib/native.ts, NativeOptim):
//   sgdValidate(o), rmspropValidate(o), adamValidate(o)
//   sgdStep(o, params, grads, momentumBuffers, steps)
//   rmspropStep(o, params, grads, squareAvgs, momentumBuffers, gradAvgs, steps)
//   adamStep(o, params, grads, expAvgs, expAvgSqs, maxExpAvgSqs, steps)
//   lionValidate(o), lambValidate(o)
//   lionStep(o, params, grads, expAvgs, steps)
//   lambStep(o, params, grads, expAvgs, expAvgSqs, steps)
//   adam8bitStep(o, params, grads, state, steps): state[i] = { mCodes, mAbsmax, vCodes,
//     vAbsmax } for an 8-bit tensor or { expAvg, expAvgSq } for a 32-bit one
//   optimIsa() -> 'baseline' | 'avx2' | 'avx512'
// Every step takes an optional last argument { maxGradNorm, skipNonFinite, threads, gradScale }
// and returns
// { gradNorm, clipScale, skipped, nonFiniteParam, nonFiniteIndex } (see optim.h StepReport).
// Lists are JS arrays of Float32Array matched by position; a state list the options do not use
// is ignored (pass null). Wrong types throw TypeError, wrong lengths or values RangeError, both
// with code ERR_NODECCL_INVALID_ARGUMENT; nothing is written unless every check passes.
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "modules.h"
#include "optim/optim.h"
#include "optim/simd.h"
#include "util.h"

namespace nodeccl_binding {

namespace {

using nodeccl::ErrorCode;
using nodeccl::strcat;
namespace optim = nodeccl::optim;

[[noreturn]] void throwType(Napi::Env env, const std::string& msg) {
  throw makeError(env, ErrorCode::kInvalidArgument, msg);
}

// ---- reading arguments --------------------------------------------------------------------

// The JS type of `v` in words, for messages ("Float64Array", "number", "null").
std::string describe(const Napi::Value& v) {
  if (v.IsNull()) return "null";
  if (v.IsUndefined()) return "undefined";
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
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
      default: return "TypedArray";  // kinds newer than this file (Float16Array)
    }
  }
  if (v.IsArray()) return "Array";
  if (v.IsNumber()) return "number";
  if (v.IsString()) return "string";
  if (v.IsBoolean()) return "boolean";
  return v.IsFunction() ? "function" : "object";
}

double readNumber(const Napi::Object& o, const char* who, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) {
    throwType(o.Env(), strcat(who, ": options.", key, " must be a number, got ", describe(v)));
  }
  return v.As<Napi::Number>().DoubleValue();
}

bool readBool(const Napi::Object& o, const char* who, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) {
    throwType(o.Env(), strcat(who, ": options.", key, " must be a boolean, got ", describe(v)));
  }
  return v.As<Napi::Boolean>().Value();
}

Napi::Object readOptions(const Napi::CallbackInfo& info, const char* who) {
  if (!info[0].IsObject() || info[0].IsArray()) {
    throwType(info.Env(), strcat(who, ": options must be an object, got ", describe(info[0])));
  }
  return info[0].As<Napi::Object>();
}

optim::SgdOptions readSgd(const Napi::CallbackInfo& info, const char* who) {
  Napi::Object o = readOptions(info, who);
  optim::SgdOptions s;
  s.lr = readNumber(o, who, "lr");
  s.momentum = readNumber(o, who, "momentum");
  s.dampening = readNumber(o, who, "dampening");
  s.weightDecay = readNumber(o, who, "weightDecay");
  s.nesterov = readBool(o, who, "nesterov");
  return s;
}

optim::RmspropOptions readRmsprop(const Napi::CallbackInfo& info, const char* who) {
  Napi::Object o = readOptions(info, who);
  optim::RmspropOptions s;
  s.lr = readNumber(o, who, "lr");
  s.alpha = readNumber(o, who, "alpha");
  s.eps = readNumber(o, who, "eps");
  s.weightDecay = readNumber(o, who, "weightDecay");
  s.momentum = readNumber(o, who, "momentum");
  s.centered = readBool(o, who, "centered");
  return s;
}

optim::AdamOptions readAdam(const Napi::CallbackInfo& info, const char* who) {
  Napi::Object o = readOptions(info, who);
  optim::AdamOptions s;
  s.lr = readNumber(o, who, "lr");
  s.beta1 = readNumber(o, who, "beta1");
  s.beta2 = readNumber(o, who, "beta2");
  s.eps = readNumber(o, who, "eps");
  s.weightDecay = readNumber(o, who, "weightDecay");
  s.amsgrad = readBool(o, who, "amsgrad");
  s.decoupled = readBool(o, who, "decoupled");
  s.biasCorrection = readBool(o, who, "biasCorrection");
  return s;
}

optim::LionOptions readLion(const Napi::CallbackInfo& info, const char* who) {
  Napi::Object o = readOptions(info, who);
  optim::LionOptions s;
  s.lr = readNumber(o, who, "lr");
  s.beta1 = readNumber(o, who, "beta1");
  s.beta2 = readNumber(o, who, "beta2");
  s.weightDecay = readNumber(o, who, "weightDecay");
  return s;
}

optim::LambOptions readLamb(const Napi::CallbackInfo& info, const char* who) {
  Napi::Object o = readOptions(info, who);
  optim::LambOptions s;
  s.lr = readNumber(o, who, "lr");
  s.beta1 = readNumber(o, who, "beta1");
  s.beta2 = readNumber(o, who, "beta2");
  s.eps = readNumber(o, who, "eps");
  s.weightDecay = readNumber(o, who, "weightDecay");
  s.biasCorrection = readBool(o, who, "biasCorrection");
  return s;
}

// The optional StepControl argument at `index` (undefined: the defaults).
optim::StepControl readControl(const Napi::CallbackInfo& info, const char* who, size_t index) {
  optim::StepControl c;
  if (info.Length() <= index || info[index].IsUndefined()) return c;
  if (!info[index].IsObject() || info[index].IsArray()) {
    throwType(info.Env(), strcat(who, ": control must be an object, got ", describe(info[index])));
  }
  Napi::Object o = info[index].As<Napi::Object>();
  c.maxGradNorm = readNumber(o, who, "maxGradNorm");
  c.skipNonFinite = readBool(o, who, "skipNonFinite");
  double threads = readNumber(o, who, "threads");
  if (!(threads >= 1 && threads <= 256 && threads == static_cast<int>(threads))) {
    throw makeRangeError(info.Env(), strcat(who, ": control.threads must be a whole number in "
                                                 "[1, 256], got ", threads));
  }
  c.threads = static_cast<int>(threads);
  c.gradScale = readNumber(o, who, "gradScale");
  return c;
}

Napi::Object reportObject(Napi::Env env, const optim::StepReport& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("gradNorm", Napi::Number::New(env, r.gradNorm));
  o.Set("clipScale", Napi::Number::New(env, r.clipScale));
  o.Set("skipped", Napi::Boolean::New(env, r.skipped));
  o.Set("nonFiniteParam", Napi::Number::New(env, static_cast<double>(r.nonFiniteParam)));
  o.Set("nonFiniteIndex", Napi::Number::New(env, static_cast<double>(r.nonFiniteIndex)));
  return o;
}

// ---- reading tensor lists ------------------------------------------------------------------

// The float32 memory of one list argument, entry by entry.
struct FloatList {
  std::vector<float*> data;
  std::vector<size_t> sizes;
};

// Reads a JS array of Float32Array named `name`; `expected` is the length it must have (the
// parameter count), or SIZE_MAX for the params list itself.
// LIMITATION: only float32 tensors and state: the kernels are float32 loops; other dtypes would
// need their own kernels and accumulation rules, so they are refused here rather than converted.
FloatList readList(Napi::Env env, const char* who, const char* name, const Napi::Value& v,
                   size_t expected) {
  if (!v.IsArray()) {
    throwType(env, strcat(who, ": ", name, " must be an array of Float32Array, got ",
                          describe(v)));
  }
  Napi::Array arr = v.As<Napi::Array>();
  size_t n = arr.Length();
  if (expected != SIZE_MAX && n != expected) {
    throw makeRangeError(env, strcat(who, ": ", name, " has ", n, " entries but params has ",
                                     expected, "; pass one per parameter, in the same order"));
  }
  FloatList list;
  list.data.resize(n);
  list.sizes.resize(n);
  for (size_t i = 0; i < n; ++i) {
    Napi::Value e = arr.Get(static_cast<uint32_t>(i));
    napi_typedarray_type type = napi_uint8_array;
    void* data = nullptr;
    // (napi_get_typedarray_info itself fails on anything but a TypedArray)
    bool ok = napi_get_typedarray_info(env, e, &type, &list.sizes[i], &data, nullptr,
                                       nullptr) == napi_ok;
    if (!ok || type != napi_float32_array) {
      throwType(env, strcat(who, ": ", name, "[", i, "] must be a Float32Array, got ",
                            describe(e), "; only float32 is supported"));
    }
    list.data[i] = static_cast<float*>(data);
  }
  return list;
}

// Every entry of `list` must have as many elements as the parameter at its index.
void requireSameSizes(Napi::Env env, const char* who, const char* name, const FloatList& list,
                      const FloatList& params) {
  for (size_t i = 0; i < list.sizes.size(); ++i) {
    if (list.sizes[i] != params.sizes[i]) {
      throw makeRangeError(env, strcat(who, ": ", name, "[", i, "] has ", list.sizes[i],
                                       " elements but params[", i, "] has ", params.sizes[i]));
    }
  }
}

// A state list the options need: present, one per parameter, sized like it.
FloatList readState(Napi::Env env, const char* who, const char* name, const Napi::Value& v,
                    const FloatList& params) {
  FloatList list = readList(env, who, name, v, params.data.size());
  requireSameSizes(env, who, name, list, params);
  return list;
}

// The per-parameter step counts: a Float64Array with one entry per parameter, updated in place.
double* readSteps(Napi::Env env, const char* who, const Napi::Value& v, size_t count) {
  napi_typedarray_type type = napi_uint8_array;
  size_t length = 0;
  void* data = nullptr;
  bool ok = v.IsTypedArray() &&
            napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) == napi_ok;
  if (!ok || type != napi_float64_array) {
    throwType(env, strcat(who, ": steps must be a Float64Array, got ", describe(v)));
  }
  if (length != count) {
    throw makeRangeError(env, strcat(who, ": steps has ", length, " entries but params has ",
                                     count, "; pass one step count per parameter"));
  }
  return static_cast<double*>(data);
}

// The params and grads of a call, checked against each other.
struct Tensors {
  FloatList params, grads;
  double* steps = nullptr;
  optim::ParamList list() {
    return optim::ParamList{params.data.size(), params.data.data(),
                            const_cast<const float* const*>(grads.data.data()),
                            params.sizes.data(), steps};
  }
};

Tensors readTensors(const Napi::CallbackInfo& info, const char* who, size_t stepsArg) {
  Tensors t;
  t.params = readList(info.Env(), who, "params", info[1], SIZE_MAX);
  t.grads = readList(info.Env(), who, "grads", info[2], t.params.data.size());
  requireSameSizes(info.Env(), who, "grads", t.grads, t.params);
  t.steps = readSteps(info.Env(), who, info[stepsArg], t.params.data.size());
  return t;
}

// Runs a core call; its invalid-argument errors are values out of range, so RangeError.
template <typename Fn>
void callCore(Napi::Env env, Fn fn) {
  try {
    fn();
  } catch (const nodeccl::Error& e) {
    if (e.code() == ErrorCode::kInvalidArgument) throw makeRangeError(env, e.what());
    throw makeError(env, e);
  }
}

// ---- exports ---------------------------------------------------------------------------------

void SgdValidate(const Napi::CallbackInfo& info) {
  optim::SgdOptions o = readSgd(info, "sgdValidate");
  callCore(info.Env(), [&] { optim::validate(o); });
}

void RmspropValidate(const Napi::CallbackInfo& info) {
  optim::RmspropOptions o = readRmsprop(info, "rmspropValidate");
  callCore(info.Env(), [&] { optim::validate(o); });
}

void AdamValidate(const Napi::CallbackInfo& info) {
  optim::AdamOptions o = readAdam(info, "adamValidate");
  callCore(info.Env(), [&] { optim::validate(o); });
}

// sgdStep(options, params, grads, momentumBuffers, steps, control?)
Napi::Value SgdStep(const Napi::CallbackInfo& info) {
  const char* who = "sgdStep";
  optim::SgdOptions o = readSgd(info, who);
  Tensors t = readTensors(info, who, 4);
  FloatList buf;
  if (o.momentum != 0) buf = readState(info.Env(), who, "momentumBuffers", info[3], t.params);
  optim::StepControl c = readControl(info, who, 5);
  optim::StepReport r;
  callCore(info.Env(), [&] { r = optim::sgdStep(o, t.list(), buf.data.data(), c); });
  return reportObject(info.Env(), r);
}

// rmspropStep(options, params, grads, squareAvgs, momentumBuffers, gradAvgs, steps, control?)
Napi::Value RmspropStep(const Napi::CallbackInfo& info) {
  const char* who = "rmspropStep";
  optim::RmspropOptions o = readRmsprop(info, who);
  Tensors t = readTensors(info, who, 6);
  FloatList sq = readState(info.Env(), who, "squareAvgs", info[3], t.params);
  FloatList buf, ga;
  if (o.momentum != 0) buf = readState(info.Env(), who, "momentumBuffers", info[4], t.params);
  if (o.centered) ga = readState(info.Env(), who, "gradAvgs", info[5], t.params);
  optim::StepControl c = readControl(info, who, 7);
  optim::StepReport r;
  callCore(info.Env(), [&] {
    r = optim::rmspropStep(o, t.list(), sq.data.data(), buf.data.data(), ga.data.data(), c);
  });
  return reportObject(info.Env(), r);
}

// adamStep(options, params, grads, expAvgs, expAvgSqs, maxExpAvgSqs, steps, control?)
Napi::Value AdamStep(const Napi::CallbackInfo& info) {
  const char* who = "adamStep";
  optim::AdamOptions o = readAdam(info, who);
  Tensors t = readTensors(info, who, 6);
  FloatList m = readState(info.Env(), who, "expAvgs", info[3], t.params);
  FloatList v = readState(info.Env(), who, "expAvgSqs", info[4], t.params);
  FloatList vmax;
  if (o.amsgrad) vmax = readState(info.Env(), who, "maxExpAvgSqs", info[5], t.params);
  optim::StepControl c = readControl(info, who, 7);
  optim::StepReport r;
  callCore(info.Env(), [&] {
    r = optim::adamStep(o, t.list(), m.data.data(), v.data.data(), vmax.data.data(), c);
  });
  return reportObject(info.Env(), r);
}

void LionValidate(const Napi::CallbackInfo& info) {
  optim::LionOptions o = readLion(info, "lionValidate");
  callCore(info.Env(), [&] { optim::validate(o); });
}

void LambValidate(const Napi::CallbackInfo& info) {
  optim::LambOptions o = readLamb(info, "lambValidate");
  callCore(info.Env(), [&] { optim::validate(o); });
}

// lionStep(options, params, grads, expAvgs, steps, control?)
Napi::Value LionStep(const Napi::CallbackInfo& info) {
  const char* who = "lionStep";
  optim::LionOptions o = readLion(info, who);
  Tensors t = readTensors(info, who, 4);
  FloatList m = readState(info.Env(), who, "expAvgs", info[3], t.params);
  optim::StepControl c = readControl(info, who, 5);
  optim::StepReport r;
  callCore(info.Env(), [&] { r = optim::lionStep(o, t.list(), m.data.data(), c); });
  return reportObject(info.Env(), r);
}

// lambStep(options, params, grads, expAvgs, expAvgSqs, steps, control?)
Napi::Value LambStep(const Napi::CallbackInfo& info) {
  const char* who = "lambStep";
  optim::LambOptions o = readLamb(info, who);
  Tensors t = readTensors(info, who, 5);
  FloatList m = readState(info.Env(), who, "expAvgs", info[3], t.params);
  FloatList v = readState(info.Env(), who, "expAvgSqs", info[4], t.params);
  optim::StepControl c = readControl(info, who, 6);
  optim::StepReport r;
  callCore(info.Env(),
           [&] { r = optim::lambStep(o, t.list(), m.data.data(), v.data.data(), c); });
  return reportObject(info.Env(), r);
}

// One typed array property `key` of `o` of the given kind and length.
template <typename T>
T* readArrayProp(Napi::Env env, const char* who, const Napi::Object& o, size_t index,
                 const char* key, napi_typedarray_type want, const char* typeName,
                 size_t length) {
  Napi::Value e = o.Get(key);
  napi_typedarray_type type = napi_int8_array;
  size_t got = 0;
  void* data = nullptr;
  bool ok = e.IsTypedArray() &&
            napi_get_typedarray_info(env, e, &type, &got, &data, nullptr, nullptr) == napi_ok;
  if (!ok || type != want) {
    throwType(env, strcat(who, ": state[", index, "].", key, " must be a ", typeName, ", got ",
                          describe(e)));
  }
  if (got != length) {
    throw makeRangeError(env, strcat(who, ": state[", index, "].", key, " has ", got,
                                     " elements; params[", index, "] needs ", length));
  }
  return static_cast<T*>(data);
}

// adam8bitStep(options, params, grads, state, steps, control?): state[i] is
// { mCodes, mAbsmax, vCodes, vAbsmax } (8-bit) or { expAvg, expAvgSq } (32-bit).
Napi::Value Adam8bitStep(const Napi::CallbackInfo& info) {
  const char* who = "adam8bitStep";
  Napi::Env env = info.Env();
  optim::AdamOptions o = readAdam(info, who);
  Tensors t = readTensors(info, who, 4);
  size_t count = t.params.data.size();
  if (!info[3].IsArray() || info[3].As<Napi::Array>().Length() != count) {
    throwType(env, strcat(who, ": state must be an array with one entry per parameter (", count,
                          "), got ", describe(info[3])));
  }
  Napi::Array arr = info[3].As<Napi::Array>();
  std::vector<uint8_t*> mc(count, nullptr), vc(count, nullptr);
  std::vector<float*> ma(count, nullptr), va(count, nullptr), m32(count, nullptr),
      v32(count, nullptr);
  for (size_t i = 0; i < count; ++i) {
    Napi::Value e = arr.Get(static_cast<uint32_t>(i));
    if (!e.IsObject()) throwType(env, strcat(who, ": state[", i, "] must be an object"));
    Napi::Object s = e.As<Napi::Object>();
    size_t n = t.params.sizes[i], nb = optim::adam8bitBlocks(n);
    if (s.Has("mCodes")) {
      mc[i] = readArrayProp<uint8_t>(env, who, s, i, "mCodes", napi_uint8_array, "Uint8Array", n);
      vc[i] = readArrayProp<uint8_t>(env, who, s, i, "vCodes", napi_uint8_array, "Uint8Array", n);
      ma[i] = readArrayProp<float>(env, who, s, i, "mAbsmax", napi_float32_array,
                                   "Float32Array", nb);
      va[i] = readArrayProp<float>(env, who, s, i, "vAbsmax", napi_float32_array,
                                   "Float32Array", nb);
    } else {
      m32[i] = readArrayProp<float>(env, who, s, i, "expAvg", napi_float32_array,
                                    "Float32Array", n);
      v32[i] = readArrayProp<float>(env, who, s, i, "expAvgSq", napi_float32_array,
                                    "Float32Array", n);
    }
  }
  optim::StepControl c = readControl(info, who, 5);
  optim::StepReport r;
  callCore(env, [&] {
    optim::Adam8bitState st{mc.data(), ma.data(), vc.data(), va.data(), m32.data(), v32.data()};
    r = optim::adam8bitStep(o, t.list(), st, c);
  });
  return reportObject(env, r);
}

Napi::Value OptimIsa(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), nodeccl::simd::isaName(nodeccl::simd::isa()));
}

}  // namespace

void InitOptim(Napi::Env env, Napi::Object exports) {
  exports.Set("sgdValidate", Napi::Function::New(env, SgdValidate, "sgdValidate"));
  exports.Set("rmspropValidate", Napi::Function::New(env, RmspropValidate, "rmspropValidate"));
  exports.Set("adamValidate", Napi::Function::New(env, AdamValidate, "adamValidate"));
  exports.Set("sgdStep", Napi::Function::New(env, SgdStep, "sgdStep"));
  exports.Set("rmspropStep", Napi::Function::New(env, RmspropStep, "rmspropStep"));
  exports.Set("adamStep", Napi::Function::New(env, AdamStep, "adamStep"));
  exports.Set("lionValidate", Napi::Function::New(env, LionValidate, "lionValidate"));
  exports.Set("lambValidate", Napi::Function::New(env, LambValidate, "lambValidate"));
  exports.Set("lionStep", Napi::Function::New(env, LionStep, "lionStep"));
  exports.Set("lambStep", Napi::Function::New(env, LambStep, "lambStep"));
  exports.Set("adam8bitStep", Napi::Function::New(env, Adam8bitStep, "adam8bitStep"));
  exports.Set("optimIsa", Napi::Function::New(env, OptimIsa, "optimIsa"));
}

}  // namespace nodeccl_binding
