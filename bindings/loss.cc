// SPDX-License-Identifier: Apache-2.0
// Binding of the loss kernels (cpp/loss): synchronous calls returning the loss as a number and
// writing the gradient into a caller's Float32Array (or none when it is null).
//
// Exports (typed in lib/native.ts, NativeLoss):
//   mseLoss(pred, target, reduction: 'mean'|'sum', grad: Float32Array | null) -> number
//   softmaxCrossEntropy(logits, labels: Int32Array, classes, reduction, ignoreIndex,
//                       grad: Float32Array | null) -> number
// Wrong types throw TypeError, wrong sizes or labels RangeError, code
// ERR_NODECCL_INVALID_ARGUMENT, before anything is written.
#include <cmath>
#include <string>

#include "common/error.h"
#include "loss/loss.h"
#include "modules.h"
#include "util.h"

namespace nodeccl_binding {

namespace {

using nodeccl::ErrorCode;
using nodeccl::strcat;
namespace loss = nodeccl::loss;

ByteView floats(const Napi::Value& v, const char* what) {
  ByteView view = typedArrayView(v, what);
  if (view.type != napi_float32_array) {
    throw makeError(v.Env(), ErrorCode::kInvalidArgument, strcat(what, " must be a Float32Array"));
  }
  return view;
}

loss::Reduction reduction(const Napi::Value& v, const char* who) {
  std::string r = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (r == "mean") return loss::Reduction::kMean;
  if (r == "sum") return loss::Reduction::kSum;
  throw makeError(v.Env(), ErrorCode::kInvalidArgument,
                  strcat(who, ": reduction must be 'mean' or 'sum', got '", r, "'"));
}

// The gradient output: null, or a Float32Array of `n` elements.
float* gradOut(const Napi::Value& v, const char* who, size_t n) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  ByteView g = floats(v, strcat(who, ": grad").c_str());
  if (g.length != n) {
    throw makeRangeError(v.Env(), strcat(who, ": grad has ", g.length, " elements, needs ", n));
  }
  return static_cast<float*>(g.data);
}

Napi::Value MseLoss(const Napi::CallbackInfo& info) {
  const char* who = "mseLoss";
  ByteView p = floats(info[0], "mseLoss: pred");
  ByteView t = floats(info[1], "mseLoss: target");
  if (p.length != t.length) {
    throw makeRangeError(info.Env(), strcat(who, ": pred has ", p.length, " elements but target ",
                                            t.length));
  }
  loss::Reduction r = reduction(info[2], who);
  float* g = gradOut(info[3], who, p.length);
  double l = loss::mse(static_cast<const float*>(p.data), static_cast<const float*>(t.data),
                       p.length, r, g);
  return Napi::Number::New(info.Env(), l);
}

Napi::Value SoftmaxCrossEntropy(const Napi::CallbackInfo& info) {
  const char* who = "softmaxCrossEntropy";
  ByteView x = floats(info[0], "softmaxCrossEntropy: logits");
  ByteView labels = typedArrayView(info[1], "softmaxCrossEntropy: labels");
  if (labels.type != napi_int32_array) {
    throw makeError(info.Env(), ErrorCode::kInvalidArgument,
                    "softmaxCrossEntropy: labels must be an Int32Array");
  }
  double classes = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0;
  if (!(classes >= 1 && std::floor(classes) == classes) ||
      x.length != labels.length * static_cast<size_t>(classes)) {
    throw makeRangeError(info.Env(), strcat(who, ": logits has ", x.length, " elements; with ",
                                            labels.length, " labels and ", classes,
                                            " classes it needs labels x classes"));
  }
  loss::Reduction r = reduction(info[3], who);
  double ignore = info[4].IsNumber() ? info[4].As<Napi::Number>().DoubleValue() : -100;
  float* g = gradOut(info[5], who, x.length);
  double l = 0;
  try {
    l = loss::softmaxCrossEntropy(static_cast<const float*>(x.data),
                                  static_cast<const int32_t*>(labels.data), labels.length,
                                  static_cast<size_t>(classes), r, static_cast<int32_t>(ignore),
                                  g);
  } catch (const nodeccl::Error& e) {
    throw makeRangeError(info.Env(), e.what());
  }
  return Napi::Number::New(info.Env(), l);
}

}  // namespace

void InitLoss(Napi::Env env, Napi::Object exports) {
  exports.Set("mseLoss", Napi::Function::New(env, MseLoss, "mseLoss"));
  exports.Set("softmaxCrossEntropy",
              Napi::Function::New(env, SoftmaxCrossEntropy, "softmaxCrossEntropy"));
}

}  // namespace nodeccl_binding
