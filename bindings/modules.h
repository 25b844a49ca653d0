// SPDX-License-Identifier: Apache-2.0
// Each binding file registers its exports through one Init function, called from addon.cc.
#pragma once

#include <napi.h>


namespace nodeccl_binding {

// Per-environment state (the main thread and each worker thread load their own addon instance),
// kept with napi instance data so no static is shared between environments.
struct AddonData {
  Napi::FunctionReference storeClientCtor;
  Napi::FunctionReference communicatorCtor;
  Napi::FunctionReference cudaBufferCtor;  // cuda.cc
  Napi::FunctionReference ncclCommCtor;    // cuda.cc
};

inline AddonData* addonData(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

void InitStore(Napi::Env env, Napi::Object exports);
void InitComm(Napi::Env env, Napi::Object exports);
void InitOptim(Napi::Env env, Napi::Object exports);
void InitQuant(Napi::Env env, Napi::Object exports);
void InitLoss(Napi::Env env, Napi::Object exports);
void InitTensor(Napi::Env env, Napi::Object exports);
void InitCuda(Napi::Env env, Napi::Object exports);
void InitCompress(Napi::Env env, Napi::Object exports);
void InitMpi(Napi::Env env, Napi::Object exports);

}  // namespace nodeccl_binding
