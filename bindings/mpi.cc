// SPDX-License-Identifier: Apache-2.0
// Binding of the MPI runtime (cpp/backend/mpi/mpi_runtime.h) for init() under mpirun: MPI's
// initialization and the broadcast that gives every rank rank 0's store address and job token.
// Both block in MPI, so both run on their own thread and return a Promise.
//
// Exports (typed in lib/native.ts, NativeMpi):
//   mpiInit() -> Promise<{ rank, size, threadLevel, library, version }>
//   mpiBroadcast(text, root, timeoutMs) -> Promise<string>
#include <memory>
#include <string>

#include "async.h"
#include "backend/mpi/mpi_runtime.h"
#include "common/error.h"
#include "modules.h"
#include "util.h"

namespace nodeccl_binding {
namespace {

using nodeccl::ErrorCode;

// mpiInit(): loads libmpi and calls MPI_Init_thread once per process; later calls resolve to
// the same world (or reject with the same error).
Napi::Value MpiInit(const Napi::CallbackInfo& info) {
  auto world = std::make_shared<nodeccl::mpi::World>();
  return runOnThread(
      info.Env(), "nodeccl-mpi-init", [world] { *world = nodeccl::mpi::initialize(); },
      [world](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("rank", world->rank);
        o.Set("size", world->size);
        o.Set("threadLevel", world->threadLevel);
        o.Set("library", world->library);
        o.Set("version", world->version);
        return o;
      },
      [] {});  // MPI_Init cannot be interrupted; the thread ends when it returns
}

// mpiBroadcast(text, root, timeoutMs): MPI_Bcast of a short text from `root` of the world.
Napi::Value MpiBroadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber()) {
    throw makeError(env, ErrorCode::kInvalidArgument,
                    "mpiBroadcast(text: string, root: number, timeoutMs: number)");
  }
  std::string text = info[0].As<Napi::String>().Utf8Value();
  int root = info[1].As<Napi::Number>().Int32Value();
  auto timeout = nodeccl::mpi::Millis(info[2].As<Napi::Number>().Int64Value());
  auto out = std::make_shared<std::string>();
  return runOnThread(
      env, "nodeccl-mpi-bcast",
      [text, root, timeout, out] { *out = nodeccl::mpi::broadcastText(text, root, timeout); },
      [out](Napi::Env env) -> Napi::Value { return Napi::String::New(env, *out); }, [] {});
}

}  // namespace

void InitMpi(Napi::Env env, Napi::Object exports) {
  exports.Set("mpiInit", Napi::Function::New(env, MpiInit, "mpiInit"));
  exports.Set("mpiBroadcast", Napi::Function::New(env, MpiBroadcast, "mpiBroadcast"));
}

}  // namespace nodeccl_binding
