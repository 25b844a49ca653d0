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
// Lists are JS arrays of Float32Array matched by position; a state list the options do not use
// is ignored (pass null). Wrong types throw TypeError, wrong lengths or values RangeError, both
// with code ERR_NODECCL_INVALID_ARGUMENT; nothing is written unless every check passes.
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "modules.h"
#include "optim/optim.h"
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

// sgdStep(options, params, grads, momentumBuffers, steps)
void SgdStep(const Napi::CallbackInfo& info) {
  const char* who = "sgdStep";
  optim::SgdOptions o = readSgd(info, who);
  Tensors t = readTensors(info, who, 4);
  FloatList buf;
  if (o.momentum != 0) buf = readState(info.Env(), who, "momentumBuffers", info[3], t.params);
  callCore(info.Env(), [&] { optim::sgdStep(o, t.list(), buf.data.data()); });
}

// rmspropStep(options, params, grads, squareAvgs, momentumBuffers, gradAvgs, steps)
void RmspropStep(const Napi::CallbackInfo& info) {
  const char* who = "rmspropStep";
  optim::RmspropOptions o = readRmsprop(info, who);
  Tensors t = readTensors(info, who, 6);
  FloatList sq = readState(info.Env(), who, "squareAvgs", info[3], t.params);
  FloatList buf, ga;
  if (o.momentum != 0) buf = readState(info.Env(), who, "momentumBuffers", info[4], t.params);
  if (o.centered) ga = readState(info.Env(), who, "gradAvgs", info[5], t.params);
  callCore(info.Env(), [&] {
    optim::rmspropStep(o, t.list(), sq.data.data(), buf.data.data(), ga.data.data());
  });
}

// adamStep(options, params, grads, expAvgs, expAvgSqs, maxExpAvgSqs, steps)
void AdamStep(const Napi::CallbackInfo& info) {
  const char* who = "adamStep";
  optim::AdamOptions o = readAdam(info, who);
  Tensors t = readTensors(info, who, 6);
  FloatList m = readState(info.Env(), who, "expAvgs", info[3], t.params);
  FloatList v = readState(info.Env(), who, "expAvgSqs", info[4], t.params);
  FloatList vmax;
  if (o.amsgrad) vmax = readState(info.Env(), who, "maxExpAvgSqs", info[5], t.params);
  callCore(info.Env(), [&] {
    optim::adamStep(o, t.list(), m.data.data(), v.data.data(), vmax.data.data());
  });
}

}  // namespace

void InitOptim(Napi::Env env, Napi::Object exports) {
  exports.Set("sgdValidate", Napi::Function::New(env, SgdValidate, "sgdValidate"));
  exports.Set("rmspropValidate", Napi::Function::New(env, RmspropValidate, "rmspropValidate"));
  exports.Set("adamValidate", Napi::Function::New(env, AdamValidate, "adamValidate"));
  exports.Set("sgdStep", Napi::Function::New(env, SgdStep, "sgdStep"));
  exports.Set("rmspropStep", Napi::Function::New(env, RmspropStep, "rmspropStep"));
  exports.Set("adamStep", Napi::Function::New(env, AdamStep, "adamStep"));
}

}  // namespace nodeccl_binding
