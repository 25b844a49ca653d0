// SPDX-License-Identifier: Apache-2.0
// Entry point of the Node addon: registers the exports of each binding file.
#include <napi.h>

#include "modules.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new nodeccl_binding::AddonData());  // freed by napi at env teardown
  nodeccl_binding::InitStore(env, exports);
  nodeccl_binding::InitComm(env, exports);
  nodeccl_binding::InitOptim(env, exports);
  nodeccl_binding::InitQuant(env, exports);
  nodeccl_binding::InitLoss(env, exports);
  nodeccl_binding::InitTensor(env, exports);
  nodeccl_binding::InitCuda(env, exports);
  nodeccl_binding::InitCompress(env, exports);
  nodeccl_binding::InitMpi(env, exports);
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  return exports;
}

}  // namespace

NODE_API_MODULE(nodeccl, Init)
