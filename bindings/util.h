// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the binding files: turning core errors into JS errors with a stable `code`,
// and reading typed-array arguments without copying.
#pragma once

#include <napi.h>

#include <string>

#include "common/error.h"

namespace nodeccl_binding {

// A JS Error (TypeError/RangeError for invalid arguments) carrying `code`.
inline Napi::Error makeError(Napi::Env env, nodeccl::ErrorCode code, const std::string& msg) {
  Napi::Error err = code == nodeccl::ErrorCode::kInvalidArgument
                        ? static_cast<Napi::Error>(Napi::TypeError::New(env, msg))
                        : Napi::Error::New(env, msg);
  err.Value().Set("code", Napi::String::New(env, nodeccl::errorCodeName(code)));
  return err;
}

inline Napi::Error makeError(Napi::Env env, const nodeccl::Error& e) {
  return makeError(env, e.code(), e.what());
}

inline Napi::Error makeRangeError(Napi::Env env, const std::string& msg) {
  Napi::Error err = Napi::RangeError::New(env, msg);
  err.Value().Set("code", Napi::String::New(env, "ERR_NODECCL_INVALID_ARGUMENT"));
  return err;
}

// A view of a TypedArray argument's bytes (zero copy). Throws a TypeError naming `what` when
// `v` is not a TypedArray.
struct ByteView {
  void* data = nullptr;
  size_t bytes = 0;
  size_t length = 0;  // elements
  napi_typedarray_type type = napi_uint8_array;
};

inline ByteView typedArrayView(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) {
    throw makeError(v.Env(), nodeccl::ErrorCode::kInvalidArgument,
                    std::string(what) + " must be a TypedArray");
  }
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  ByteView view;
  view.type = ta.TypedArrayType();
  view.length = ta.ElementLength();
  view.bytes = ta.ByteLength();
  view.data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  return view;
}

}  // namespace nodeccl_binding
